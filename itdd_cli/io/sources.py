"""Input sources besides JSONL: plain text (one record per line, or the whole file), CSV/TSV with
a header, Parquet (pyarrow) and Hugging Face datasets. Each reader is lazy — a 10 GB file never
loads whole — and yields `(record number, object or InputError)` like `io.reader.read_objects`,
so errors name the record and --skip-invalid works unchanged.
"""

from __future__ import annotations

import codecs
import csv
import importlib
import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from itdd_cli.errors import InputError, UsageError
from itdd_cli.io.formats import READERS, InputFormat, Reader, input_format
from itdd_cli.io.reader import BOM, open_input, read_objects

Item = tuple[int, dict[str, Any] | InputError]


@dataclass(frozen=True)
class Source:
    """Where records come from: a file (or standard input) in a format, or a Hugging Face dataset."""

    path: str | None = None
    format: InputFormat = InputFormat.auto
    dataset: str | None = None
    dataset_config: str | None = None
    split: str | None = None
    limit: int | None = None

    @property
    def kind(self) -> InputFormat:
        return input_format(self.format, self.path)

    @property
    def reader(self) -> Reader:
        return READERS[self.kind]

    @property
    def name(self) -> str:
        return "standard input" if self.path in (None, "-") else str(self.path)

    def unit(self) -> str:
        """How an error names a record of this source: `line 5` for JSONL as before, else with the source."""
        if self.dataset is not None:
            return f"dataset {self.dataset} {self.noun}"
        return f"{self.name} {self.noun}" if self.reader.named else self.noun

    @property
    def noun(self) -> str:
        """What a record number counts: a line, a Parquet row, a text document, a dataset index."""
        return "index" if self.dataset is not None else self.reader.noun

    @property
    def countable_path(self) -> str | None:
        """A file whose non-blank lines count its records (for the progress bar), else None."""
        return self.path if self.dataset is None and self.reader.line_records else None


def read_source(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    """The source's records, lazily (the first `limit` of them, invalid ones counted), by the reader `READERS`
    names; files opened here are closed by `stack`."""
    items = _read_all(source, text_field, stack)
    return items if source.limit is None else itertools.islice(items, source.limit)


def _read_all(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    if source.dataset is not None:
        return read_dataset(source)
    reader = source.reader
    if not reader.stdin and source.path in (None, "-"):
        raise UsageError(f"{reader.title} cannot be read from standard input; name the file")
    if reader.needs is not None:
        module, extra = reader.needs
        try:
            importlib.import_module(module)
        except ImportError:
            raise UsageError(f"reading {reader.title} needs {module}: pip install 'itdd[{extra}]'") from None
    read: Callable[[Source, str, ExitStack], Iterator[Item]] = globals()[reader.read]
    return read(source, text_field, stack)


def _opened(source: Source, stack: ExitStack) -> BinaryIO:
    stream = open_input(source.path)
    if sys.stdin is None or stream is not sys.stdin.buffer:  # stdin closed (`<&-`) with a file as input
        stack.callback(stream.close)
    return stream


def read_jsonl(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    return read_objects(_opened(source, stack))


def read_lines_of(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    return read_lines(_opened(source, stack), text_field)


def read_whole_of(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    return read_whole(_opened(source, stack), text_field)


def read_csv(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    return read_delimited(_opened(source, stack), ",", source.name)


def read_tsv(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    return read_delimited(_opened(source, stack), "\t", source.name)


def _decoded(number: int, raw: bytes) -> str | InputError:
    if b"\x00" in raw:
        return InputError(number, "holds a NUL byte: this looks like a binary file, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return InputError(number, f"not valid UTF-8 (byte {error.start + 1}) — re-encode the file as UTF-8")


def _physical_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines ended by LF, CRLF or a lone CR (as Python's universal newlines read text), without
    their endings: a CR never stays inside a record's text."""
    for raw in stream:
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        yield from body.split(b"\r")


def read_lines(stream: BinaryIO, text_field: str) -> Iterator[Item]:
    """One record per non-empty line (its text without the line ending); numbers are line numbers."""
    for number, raw in enumerate(_physical_lines(stream), start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        text = _decoded(number, raw)
        if isinstance(text, InputError):
            yield number, text
        elif text.strip():
            yield number, {text_field: text}


def read_whole(stream: BinaryIO, text_field: str) -> Iterator[Item]:
    """The whole file as one record (a document must be in memory to be tokenized anyway)."""
    raw = stream.read()
    raw = raw[len(BOM) :] if raw.startswith(BOM) else raw
    text = _decoded(1, raw)
    if isinstance(text, InputError):
        yield 1, text
    else:
        yield 1, {text_field: text}


def read_delimited(stream: BinaryIO, delimiter: str, name: str) -> Iterator[Item]:
    """CSV/TSV with a header row; a record is numbered by the file line it starts on."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    lines = _Lines(stream, decoder)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (csv.Error, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the header of {name}: {error}") from None
    if len(set(header)) != len(header):
        raise UsageError(f"{name}: the header names a column twice ({', '.join(header)})")
    while True:
        start = lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as error:
            yield start, InputError(start, f"not valid UTF-8 (byte {error.start + 1}) — re-encode the file as UTF-8")
            return  # the decoder cannot find the next record boundary reliably
        except csv.Error as error:
            yield start, InputError(start, f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {error}")
            continue
        if not cells or cells == [""]:
            continue
        if len(cells) != len(header):
            yield start, InputError(start, f"{len(cells)} fields but the header has {len(header)}")
            continue
        yield start, dict(zip(header, cells, strict=True))


class _Lines:
    """Decoded lines of a byte stream, counting them (csv.reader pulls one per physical line)."""

    def __init__(self, stream: BinaryIO, decoder: codecs.IncrementalDecoder) -> None:
        self.stream, self.decoder, self.number = stream, decoder, 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.stream.readline()
        if not raw:
            raise StopIteration
        self.number += 1
        if b"\x00" in raw:
            raise UnicodeDecodeError("utf-8", raw, raw.index(b"\x00"), raw.index(b"\x00") + 1, "NUL byte: binary file")
        return self.decoder.decode(raw)


def read_parquet(source: Source, text_field: str, stack: ExitStack) -> Iterator[Item]:
    """Rows of a Parquet file in record batches (bounded memory); numbers are 1-based rows."""
    import pyarrow.parquet as pq

    path = source.path
    if not Path(str(path)).is_file():
        raise UsageError(f"cannot read {path}: no such file")
    try:
        file = pq.ParquetFile(str(path))
    except Exception as error:  # pyarrow raises its own ArrowInvalid for a non-Parquet file
        raise UsageError(f"cannot read {path} as Parquet: {error}") from None
    number = 0
    for batch in file.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def read_dataset(source: Source) -> Iterator[Item]:
    """A Hugging Face dataset (hub name or local path), streamed; numbers are 1-based indices."""
    if source.split is None:
        raise UsageError("--dataset needs --split (e.g. --split validation)")
    try:
        import datasets
    except ImportError:
        raise UsageError("reading --dataset needs the datasets package: pip install 'itdd[datasets]'") from None
    name = source.dataset
    try:
        stream = datasets.load_dataset(name, source.dataset_config, split=source.split, streaming=True)
        records = iter(stream)
        first = next(records, None)
    except Exception as error:  # offline, unknown name, bad config or split: one line, exit 2
        detail = " ".join(str(error).split())[:300]
        raise UsageError(f"cannot load dataset {name!r} (split {source.split!r}): {detail}") from None
    if first is None:
        return
    for number, record in enumerate(itertools.chain([first], records), start=1):
        yield number, dict(record)
