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


def _parse_line(number: int, raw: bytes) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        yield number, InputError(number, f"not valid UTF-8 (byte {error.start + 1}) — re-encode the file as UTF-8")
        return
    if not text.strip():
        return
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        detail = (
            f"{error.msg} at column {error.colno}" if isinstance(error, json.JSONDecodeError) else "nested too deeply"
        )
        yield number, InputError(number, f"invalid JSON ({detail})")
        return
    if not isinstance(value, dict):
        yield number, InputError(number, f"expected a JSON object, got {type(value).__name__}")
        return
    yield number, value
