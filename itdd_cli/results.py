"""The one reader of itdd result files (JSONL or CSV), typed by the rows' declarations.

Used by --resume and by `itdd compare`, so both see the same rows with the same types: CSV cells
come back as the JSON types the writer started from. A text cell the writer protected with a
leading apostrophe (see `io/writers.py`: formulas, and text that would read as an integer) is
that text; an unprotected id cell that reads as a plain integer is the integer.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.io.writers import TEXT_MARK
from itdd_cli.rows import spec_of_columns


class NotResults(ValueError):
    """The text is not an itdd result file; the message says why."""


def _csv_id(value: str) -> str | int:
    digits = value.lstrip("-")
    if digits.isdigit() and str(int(value)) == value:
        return int(value)
    return value


def _typed_csv(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    spec = spec_of_columns(set(rows[0]))
    kinds = {field.name: field.kind for field in (*spec.fields, *spec.per_token)} if spec else {}
    typed: list[dict[str, Any]] = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            kind = kinds.get(key, float)
            if value == "" or value is None:
                out[key] = None
            elif value.startswith(TEXT_MARK) and (kind is str or key == "id"):
                out[key] = value[len(TEXT_MARK) :]
            elif key == "id":
                out[key] = _csv_id(value)
            elif kind is str:
                out[key] = value
            elif kind is bool:
                out[key] = value == "True"
            elif kind is list:  # a choice row's per-choice values, written as a JSON array
                out[key] = json.loads(value)
            else:
                out[key] = kind(value)
        typed.append(out)
    return typed


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ValueError(f"the key {next(k for k in keys if keys.count(k) > 1)!r} is given twice")
    return dict(pairs)


def _json_row(number: int, line: str) -> Any:
    try:
        return json.loads(line, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise NotResults(f"line {number}: invalid JSON ({error.msg} at column {error.colno})") from None
    except ValueError as error:
        raise NotResults(f"line {number}: {error}") from None


def parse_results(text: str, csv_format: bool) -> list[dict[str, Any]]:
    """Rows of a result file's text; raises `NotResults` for anything else."""
    try:
        if csv_format:
            return _typed_csv(list(csv.DictReader(io.StringIO(text))))
        rows = [_json_row(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    except (ValueError, TypeError) as error:
        raise NotResults(str(error)) from None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "id" not in row:
            raise NotResults(f"row {number} is not an object with an 'id'")
        if isinstance(row["id"], bool) or not isinstance(row["id"], str | int):
            raise NotResults(f"row {number}: the id {row['id']!r} is not a string or an integer")
    return rows


def row_key(row: dict[str, Any]) -> tuple[str, Any]:
    """Rows pair by id as written: the number 1 and the string "1" are different ids."""
    value = row.get("id")
    return (type(value).__name__, value)


def read_results(path: str) -> list[dict[str, Any]]:
    """The typed rows of the result file at `path`; every failure is a one-line UsageError naming it."""
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"cannot read {path}: it is a directory; name a result file (JSONL or CSV)")
    if not file.exists():
        raise UsageError(f"cannot read {path}: no such file")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not an itdd result file: not UTF-8 text (byte {error.start + 1})") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    try:
        return parse_results(text, path.lower().endswith(".csv"))
    except NotResults as error:
        raise UsageError(f"{path} is not an itdd result file: {error}") from None
