"""--resume: read what an earlier run wrote, check it belongs to this input, and find where to
continue so that the finished file equals an uninterrupted run's byte for byte.

A row counts as finished only if it is complete (a CSV row cut inside a quoted field included).
The finished rows must match the input records by id (as written) and by content (their token
counts, recomputed), with the lines the earlier run skipped taken from its settings record.
The engine sorts and batches rows inside windows of records, and a row's last digits depend on
its batch; so scoring restarts at the start of the window the cut fell in (the same record
positions an uninterrupted run would start a window at), and the rows of that window written
before the cut are scored again. Imports no torch: the caller hands in how to inspect a record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from itdd_cli.errors import InputError, UsageError
from itdd_cli.results.reader import NotResults, parse_results, row_key

Item = tuple[int, dict[str, Any] | InputError]


@dataclass(frozen=True)
class Finished:
    rows: list[dict[str, Any]]
    ends: list[int]  # byte offset just after each row
    start: int  # byte offset of the first row (after a CSV header; 0 without one)


def _record_ends(data: bytes, csv_format: bool) -> list[int]:
    """Offsets just after each complete record: a newline outside CSV quotes ('""' escapes keep parity)."""
    ends: list[int] = []
    quotes = 0
    position = 0
    while (newline := data.find(b"\n", position)) != -1:
        if csv_format:
            quotes += data.count(b'"', position, newline)
        position = newline + 1
        if quotes % 2 == 0:
            ends.append(position)
    return ends


def read_finished(path: Path, csv_format: bool) -> Finished:
    """The complete rows of an earlier run's output, with where each ends in the file."""
    if not path.exists():
        return Finished([], [], 0)
    data = path.read_bytes()
    ends = _record_ends(data, csv_format)
    start = ends.pop(0) if csv_format and ends else 0  # the header
    complete = data[: ends[-1] if ends else start]
    try:
        rows = parse_results(complete.decode("utf-8", errors="replace"), csv_format)
    except NotResults as error:
        raise UsageError(f"cannot resume {path}: it is not an itdd result file ({error}); use --overwrite") from None
    if len(rows) != len(ends):
        raise UsageError(f"cannot resume {path}: it is not an itdd result file (blank or broken rows); use --overwrite")
    return Finished(rows, ends, start)


@dataclass(frozen=True)
class ResumePoint:
    rows: int  # finished rows kept
    offset: int  # the file is cut here: everything after is scored again
    line: int | None  # first input line scored again (None: the input is done)


@dataclass(frozen=True)
class Inspected:
    """What scoring a record would produce: its id key, its row's token counts, its engine rows."""

    key: tuple[str, Any]
    counts: dict[str, int]
    draws: int


def plan_resume(
    objects: Iterable[Item],
    finished: Finished,
    skipped: set[int],
    inspect: Callable[[dict[str, Any], int], Inspected],
    window_rows: int,
    path: str,
) -> tuple[ResumePoint, Iterator[Item]]:
    """Where to continue, and the input items to score from there (the engine starts a window there)."""
    rows = finished.rows
    window: list[Item] = []  # items since the current window started
    window_draws = 0
    rows_at_window = 0
    matched = 0
    iterator = iter(objects)
    for line, value in iterator:
        if matched == len(rows):
            point = ResumePoint(rows_at_window, _offset(finished, rows_at_window), window[0][0] if window else line)
            return point, chain(window, [(line, value)], iterator)
        window.append((line, value))
        draws = 0
        if line not in skipped:
            if isinstance(value, InputError):
                raise _other_input(path, matched, f"input line {line} is invalid ({value.message})")
            try:
                found = inspect(value, line)
            except InputError as error:
                raise _other_input(path, matched, f"input line {line} is invalid ({error.message})") from None
            row = rows[matched]
            if row_key(row) != found.key:  # ids as written: 1 and "1" differ
                raise _other_input(path, matched, f"its row {matched + 1} is id {row['id']!r} but input line {line} "
                                                  f"is id {found.key[1]!r}")  # fmt: skip
            if any(key in row and row[key] != count for key, count in found.counts.items()):
                raise _other_input(path, matched, f"row {matched + 1} (id {row['id']!r}) does not match input line "
                                                  f"{line} (different tokens)")  # fmt: skip
            matched += 1
            draws = found.draws
        window_draws += draws
        if window_draws >= window_rows:  # the engine's rule: a window closes after the record that fills it
            window, window_draws, rows_at_window = [], 0, matched
    if matched < len(rows):
        raise UsageError(f"cannot resume {path}: it has {len(rows)} rows but the input only {matched} records")
    return ResumePoint(len(rows), _offset(finished, len(rows)), None), iter(())


def _offset(finished: Finished, rows: int) -> int:
    return finished.ends[rows - 1] if rows else finished.start


def _other_input(path: str, matched: int, detail: str) -> UsageError:
    return UsageError(f"cannot resume {path}: {detail} — it belongs to other input; use --overwrite")
