"""The names of input and output formats, and how `auto` resolves for output.

Kept apart from the readers and writers so that `itdd --help` can name the choices without
importing them (or rich)."""

from __future__ import annotations

from enum import StrEnum
from typing import TextIO


class InputFormat(StrEnum):
    auto = "auto"  # by extension: .csv, .tsv, .parquet, .txt (whole file); anything else JSONL
    jsonl = "jsonl"
    lines = "lines"  # plain text, one record per non-empty line
    text = "text"  # plain text, the whole file one record
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"


class Format(StrEnum):
    auto = "auto"
    jsonl = "jsonl"
    csv = "csv"
    table = "table"


def resolve_format(requested: Format, output: str | None, stream: TextIO) -> Format:
    """`auto`: by the output file's extension, else a table on a terminal and JSONL in a pipe."""
    if requested is not Format.auto:
        return requested
    if output is not None:
        return Format.csv if output.lower().endswith(".csv") else Format.jsonl
    return Format.table if stream.isatty() else Format.jsonl
