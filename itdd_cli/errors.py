"""The exception hierarchy; `cli.main` maps each class to one line on stderr and an exit code."""

from __future__ import annotations


class ItddError(Exception):
    """Base class. `exit_code` is what the process returns when this reaches the edge."""

    exit_code = 1


class UsageError(ItddError):
    """A bad option or an unreadable file (exit 2)."""

    exit_code = 2


class ArgumentError(UsageError, ValueError):
    """A bad argument to the Python API: the command line's usage error (same rule, same words,
    naming the keyword), also a ValueError for Python callers."""


class ArgumentTypeError(UsageError, TypeError):
    """The Python API was handed the wrong kind of value, e.g. a str where a list of texts is expected
    (iterating it would score its characters as records)."""


class ModelError(ItddError):
    """The model cannot be loaded or run (exit 1)."""

    exit_code = 1


class GateError(ItddError):
    """A quality gate (--fail-above, --fail-below, compare --fail-if-worse) failed (exit 4)."""

    exit_code = 4


class InputError(ItddError):
    """An invalid input record (exit 3). `line` is the record's 1-based number in the input: a line
    of a text file, or, where `unit` says so, a row of a Parquet file or an index of a dataset."""

    exit_code = 3

    def __init__(self, line: int, message: str, unit: str = "line") -> None:
        super().__init__(f"{unit} {line}: {message}")
        self.line = line
        self.message = message
        self.unit = unit

    def __reduce__(self) -> tuple[type, tuple[int, str, str]]:  # travels between processes intact
        return (InputError, (self.line, self.message, self.unit))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during scoring (exit 130); `kept` says what is on disk and how to go on."""

    def __init__(self, kept: str) -> None:
        super().__init__(kept)
        self.kept = kept
