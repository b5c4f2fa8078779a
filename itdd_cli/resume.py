"""--resume: read what an interrupted run wrote, check it belongs to this input, skip it.

A row counts as finished only if its line is complete; a trailing partial line (a run killed
mid-write) is cut off. The finished rows must match the first records of the input by id and by
content (their token counts, recomputed with the same framing), else the run stops rather than
mixing results of different inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from itdd_cli.errors import InputError, UsageError
from itdd_cli.records import Record
from itdd_cli.results import NotResults, parse_results


def finished_rows(path: Path, csv_format: bool, truncate: bool) -> list[dict[str, Any]]:
    """The complete rows of an earlier run's output (cutting a partial last line if `truncate`)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if truncate and len(complete) < len(data):
        with path.open("r+b") as file:
            file.truncate(len(complete))
    try:
        return parse_results(complete.decode("utf-8", errors="replace"), csv_format)
    except NotResults as error:
        raise UsageError(f"cannot resume {path}: it is not an itdd result file ({error}); use --overwrite") from None


def skip_finished(
    objects: Iterable[tuple[int, dict[str, Any] | InputError]],
    rows: list[dict[str, Any]],
    parse: Callable[[dict[str, Any], int], Record],
    content: Callable[[Record], dict[str, int]],
    path: str,
) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """Pass over the input records that `rows` already answers; yield the rest untouched."""
    matched = 0
    for line, value in objects:
        if matched == len(rows):
            yield line, value
            continue
        if isinstance(value, InputError):
            continue  # no row was written for it (the earlier run skipped it)
        try:
            record = parse(value, line)
        except InputError:
            continue
        row = rows[matched]
        if str(row["id"]) != str(record.id):
            raise UsageError(
                f"cannot resume {path}: its row {matched + 1} is id {row['id']!r} but input line {line} is "
                f"id {record.id!r} — it belongs to other input; use --overwrite"
            )
        expected = content(record)
        if any(key in row and row[key] != value for key, value in expected.items()):
            raise UsageError(
                f"cannot resume {path}: row {matched + 1} (id {record.id!r}) does not match input line {line} "
                "(different tokens); use --overwrite"
            )
        matched += 1
    if matched < len(rows):
        raise UsageError(f"cannot resume {path}: it has {len(rows)} rows but the input only {matched} records")
