"""The one reader of itdd result files (JSONL or CSV), typed by the rows' declarations.

Used by --resume and by `itdd compare`, so both see the same rows with the same types: CSV cells
come back as the JSON types the writer started from. A text cell the writer protected with a
leading apostrophe (see `io/writers.py`: formulas, and text that would read as an integer) is
that text; an unprotected id cell that reads as a plain integer is the integer. A column no
row declares (a field kept with --keep) is the text written, whatever it looks like: the file
cannot say whether `1.5` was a number or a string, and nothing here computes with it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.io.writers import TEXT_MARK
from itdd_cli.results.rows import TOKEN_FIELDS, all_specs, spec_of_columns

NATS = TOKEN_FIELDS[1].name  # token_nll: each token's share of nll


class NotResults(ValueError):
    """The text is not an itdd result file; the message says why."""


def _csv_id(value: str) -> str | int:
    digits = value.lstrip("-")
    if digits.isdigit() and str(int(value)) == value:
        return int(value)
    return value


def _declared_kinds() -> dict[str, Any]:
    """Every command's column kinds, for a partial file no one command matches; a name two commands
    declare differently (`tokens`: a count, or one per choice) is read as the JSON it was written as."""
    kinds: dict[str, Any] = {}
    for spec in all_specs():  # guided (--cfg) rows too
        for field in (*spec.fields, *spec.per_token):
            kinds[field.name] = field.kind if kinds.get(field.name, field.kind) is field.kind else json.loads
    return kinds


_KIND_NAMES = {float: "a number", int: "an integer", list: "a JSON array"}


def _cell(key: str, kind: Any, value: str) -> Any:
    if value.startswith(TEXT_MARK) and (kind is str or key == "id"):
        return value[len(TEXT_MARK) :]
    if key == "id":
        return _csv_id(value)
    if kind is str:
        return value
    if kind is bool:
        return value == "True"
    if kind is list:  # a choice row's per-choice values, written as a JSON array
        return json.loads(value)
    return kind(value)


# The writer puts no bound on a cell (a kept document, a long text's per-token strings); neither may its reader.
CELL_LIMIT = 2**31 - 1


def _typed_csv(text: str) -> list[dict[str, Any]]:
    if csv.field_size_limit() < CELL_LIMIT:
        csv.field_size_limit(CELL_LIMIT)
    try:
        lines = [cells for cells in csv.reader(io.StringIO(text)) if cells]  # a blank line is no row
    except csv.Error as error:
        raise NotResults(f"not CSV ({error})") from None
    if len(lines) < 2:
        return []
    header, *cells_of_rows = lines
    spec = spec_of_columns(set(header))
    kinds = {field.name: field.kind for field in (*spec.fields, *spec.per_token)} if spec else _declared_kinds()
    typed: list[dict[str, Any]] = []
    for number, cells in enumerate(cells_of_rows, start=1):
        if len(cells) != len(header):
            raise NotResults(f"row {number} has {len(cells)} cells but the header names {len(header)}")
        out: dict[str, Any] = {}
        for key, value in zip(header, cells, strict=True):
            if key not in kinds:  # a kept input field: its text as written, whatever it looks like
                out[key] = value[len(TEXT_MARK) :] if value.startswith(TEXT_MARK) else value
            elif value == "":
                out[key] = None
            else:
                try:
                    out[key] = _cell(key, kinds[key], value)
                except ValueError:
                    expected = _KIND_NAMES.get(kinds[key], "a JSON value")
                    raise NotResults(f"row {number}: {value!r} in column '{key}' is not {expected}") from None
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
            return _typed_csv(text)
        rows = [_json_row(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    except (ValueError, TypeError) as error:
        raise NotResults(str(error)) from None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "id" not in row:
            raise NotResults(f"row {number} is not an object with an 'id'")
        if isinstance(row["id"], bool) or not isinstance(row["id"], str | int):
            raise NotResults(f"row {number}: the id {row['id']!r} is not a string or an integer")
        _check_shares(number, row)
    return rows


def _check_shares(number: int, row: dict[str, Any]) -> None:
    """itdd writes every token's share as a finite number (Python's json reads NaN and Infinity,
    which no itdd file holds): anything else would rank "nan" as the worst token."""
    shares = row.get(NATS)
    if not isinstance(shares, list):
        return
    for index, share in enumerate(shares, start=1):
        if isinstance(share, float) and not math.isfinite(share):
            raise NotResults(f"row {number} (id {row['id']!r}): {NATS} holds {share} at token {index}, "
                             "where itdd writes a finite number")  # fmt: skip


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
