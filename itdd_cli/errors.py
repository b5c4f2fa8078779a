"""The exception hierarchy; `cli.main` maps each class to one line on stderr and an exit code."""

from __future__ import annotations


class ItddError(Exception):
    """Base class. `exit_code` is what the process returns when this reaches the edge."""

    exit_code = 1


class UsageError(ItddError):
    """A bad option or an unreadable file (exit 2)."""

    exit_code = 2


class ModelError(ItddError):
    """The model cannot be loaded or run (exit 1)."""

    exit_code = 1


class GateError(ItddError):
    """A quality gate (--fail-above, --fail-below, compare --fail-if-worse) failed (exit 4)."""

    exit_code = 4


class InputError(ItddError):
    """An invalid input record (exit 3). `line` is the 1-based line number in the input."""

    exit_code = 3

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[int, str]]:  # travels between processes intact
        return (InputError, (self.line, self.message))
