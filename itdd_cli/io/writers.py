"""Ordered writers: each result is written and flushed as soon as it is handed over.

CSV text cells are protected with a leading apostrophe when a spreadsheet would run them as a
formula (they start with = + - @, a tab or a carriage return), when they read as an integer (so
the string id "1" stays distinct from the number 1), and when they start with an apostrophe
themselves; itdd's reader removes exactly one. Numbers, negative ones included, are written as is.
"""

from __future__ import annotations

import csv
import json
import math
import re
from typing import Any, TextIO

TEXT_MARK = "'"
_NEEDS_MARK = re.compile(r"[=+\-@\t\r']|-?[0-9]+\Z")


def csv_cell(value: Any) -> Any:
    """A value as its CSV cell (None: empty; text protected as described above)."""
    if value is None:
        return ""
    if isinstance(value, list):  # a choice row's per-choice values: one JSON array per cell
        return json.dumps(_json_safe(value))
    if isinstance(value, str) and _NEEDS_MARK.match(value):
        return TEXT_MARK + value
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no Infinity; a null is honest and parseable
    return value


class JsonlWriter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, row: dict[str, Any]) -> None:
        safe = {key: _json_safe(value) for key, value in row.items()}
        self.stream.write(json.dumps(safe, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class CsvWriter:
    def __init__(self, stream: TextIO, header: bool = True) -> None:
        self.stream = stream
        self.header = header
        self._writer: Any = None

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = csv.DictWriter(self.stream, fieldnames=list(row), lineterminator="\n")
            if self.header:
                self._writer.writeheader()
        self._writer.writerow({key: csv_cell(value) for key, value in row.items()})
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
