"""Read JSONL lazily, one object at a time, each with its 1-based line number."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from itdd_cli.errors import InputError, UsageError

BOM = b"\xef\xbb\xbf"


def open_input(path: str | None) -> BinaryIO:
    """The named file, or standard input for None / '-'."""
    if path in (None, "-"):
        return sys.stdin.buffer
    file = Path(path)
    if not file.exists():
        raise UsageError(f"cannot read {path}: no such file")
    if file.is_dir():
        raise UsageError(f"cannot read {path}: it is a directory; name a JSONL file")
    try:  # a regular file, or a pipe, FIFO or device: `<(cmd)`, `/dev/stdin`
        return file.open("rb")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error


def read_objects(stream: BinaryIO) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """Yield (line number, JSON object or the InputError that line is); blank lines are skipped,
    a leading BOM is accepted. Errors are values, not raised, so a caller may skip them and read on.
    """
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        yield from _parse_line(number, raw)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: a key given twice is an error (json would keep the last silently)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _json_problem(error: json.JSONDecodeError | RecursionError, text: str) -> str:
    if isinstance(error, RecursionError):
        return "invalid JSON (nested too deeply)"
    if error.pos == len(text) - len(text.lstrip()) and text.lstrip()[:1] not in ("{", "[", '"'):
        return ("not JSON: the input must be JSON Lines, one JSON object per line (for plain text, one "
                "document per line, pass --lines)")  # fmt: skip
    where = "" if error.msg.endswith(" at") else " at"  # "Unterminated string starting at" has its own
    return f"invalid JSON ({error.msg}{where} column {error.colno})"


def _parse_line(number: int, raw: bytes) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        yield number, InputError(number, f"not valid UTF-8 (byte {error.start + 1}) — re-encode the file as UTF-8")
        return
    if not text.strip():
        return
    try:
        text = text.rstrip("\r\n")  # else an object cut short is reported at "column 1" of the next line
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        yield number, InputError(number, f"duplicate key {duplicate.key!r} in one object; keep one of them")
        return
    except (json.JSONDecodeError, RecursionError) as error:
        yield number, InputError(number, _json_problem(error, text))
        return
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else "a string" if isinstance(value, str) else "a scalar"
        yield number, InputError(number, f"expected a JSON object ({{…}} on each line), got {kind}")
        return
    yield number, value
