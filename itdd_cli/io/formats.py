"""The input formats, declared once in `READERS`, the output formats, and how `auto` resolves.

Kept apart from the readers and writers so that `itdd --help` can name the choices without
importing them (or rich): a format names its reader, a function in `io/sources`, by name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO


class InputFormat(StrEnum):
    auto = "auto"  # by the file's extension (`READERS`), else JSONL
    jsonl = "jsonl"
    lines = "lines"  # plain text, one record per non-empty line
    text = "text"  # plain text, the whole file one record
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"


@dataclass(frozen=True)
class Reader:
    """How one input format is read. `read` names the function in `io/sources` that takes
    (source, text field, exit stack) and yields (record number, object or InputError) lazily."""

    read: str
    extensions: tuple[str, ...] = ()  # what `auto` reads as this format (lower case)
    noun: str = "line"  # what a record number counts, in errors
    needs: tuple[str, str] | None = None  # (module it imports, the itdd extra that installs it)
    title: str = ""  # its name in errors about what it needs
    stdin: bool = True  # False: only a named file can be read
    line_records: bool = False  # each non-blank line is one record, so a file's lines count them
    named: bool = True  # errors name the file ("in.csv line 3"); JSONL's say "line 3" alone
    help: str = ""  # --input-format's words for a format no extension picks
    note: str = ""  # after its extension in --input-format's help


# In --input-format's help order: extensions as `auto` lists them, then the formats it never picks.
READERS: dict[InputFormat, Reader] = {
    InputFormat.jsonl: Reader("read_jsonl", line_records=True, named=False),
    InputFormat.csv: Reader("read_csv", (".csv",)),
    InputFormat.tsv: Reader("read_tsv", (".tsv",)),
    InputFormat.parquet: Reader("read_parquet", (".parquet",), noun="row", needs=("pyarrow", "parquet"),
                                title="Parquet", stdin=False),  # fmt: skip
    InputFormat.lines: Reader("read_lines_of", line_records=True, help="one record per non-empty line"),
    InputFormat.text: Reader("read_whole_of", (".txt",), noun="document", help="the whole file one record",
                             note=" = one document"),  # fmt: skip
}
DEFAULT_INPUT = InputFormat.jsonl  # standard input, and a file `auto` finds no extension for


def input_format(requested: InputFormat, path: str | None) -> InputFormat:
    """`auto`: by the file's extension, else JSONL (standard input is JSONL unless told otherwise)."""
    if requested is not InputFormat.auto:
        return requested
    if path in (None, "-"):
        return DEFAULT_INPUT
    suffix = Path(str(path)).suffix.lower()
    return next((name for name, reader in READERS.items() if suffix in reader.extensions), DEFAULT_INPUT)


def input_format_help() -> str:
    extensions = ", ".join(f"{ext}{reader.note}" for reader in READERS.values() for ext in reader.extensions)
    described = "; ".join(f"{name.value}: {reader.help}" for name, reader in READERS.items() if reader.help)
    return f"auto: by extension ({extensions}), else {DEFAULT_INPUT.name.upper()}; {described}"


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
