"""The table of input formats: every format has a reader, test data here, and `auto` picks it by
the extensions it declares; what each reader yields is the known records of its file."""

from __future__ import annotations

import sys
from contextlib import ExitStack

import pytest

from itdd_cli.errors import UsageError
from itdd_cli.io.formats import READERS, InputFormat
from itdd_cli.io.sources import Source, read_source
from tests.support.jsonl import write_jsonl

A, B = {"id": "a1", "text": "abca"}, {"id": "a2", "text": "dd"}


def _text(content):
    return lambda path: path.write_text(content, encoding="utf-8")


def _parquet(path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"id": ["a1", "a2"], "text": ["abca", "dd"]}), path)


# Per format: a file name, how to write it, the (record number, object) items it holds, and what
# a record number counts. A new format fails `test_every_input_format_has_a_reader_and_test_data`
# until its line is here.
FILES = {
    InputFormat.jsonl: ("in.jsonl", lambda path: write_jsonl(path, [A, B]), [(1, A), (2, B)], "line"),
    InputFormat.csv: ("in.csv", _text("id,text\na1,abca\n\na2,dd\n"), [(2, A), (4, B)], "line"),
    InputFormat.tsv: ("in.tsv", _text("id\ttext\na1\tabca\na2\tdd\n"), [(2, A), (3, B)], "line"),
    InputFormat.parquet: ("in.parquet", _parquet, [(1, A), (2, B)], "row"),
    InputFormat.lines: ("in.lines", _text("abca\n\ndd\n"), [(1, {"text": "abca"}), (3, {"text": "dd"})], "line"),
    InputFormat.text: ("in.txt", _text("abca\ndd\n"), [(1, {"text": "abca\ndd\n"})], "document"),
}
AUTO = {"in.csv": InputFormat.csv, "IN.TSV": InputFormat.tsv, "in.parquet": InputFormat.parquet,
        "in.txt": InputFormat.text, "in.jsonl": InputFormat.jsonl, "in.data": InputFormat.jsonl,
        "noext": InputFormat.jsonl, "-": InputFormat.jsonl}  # fmt: skip


def test_every_input_format_has_a_reader_and_test_data():
    assert set(READERS) == set(InputFormat) - {InputFormat.auto} == set(FILES)


@pytest.mark.parametrize(("name", "expected"), list(AUTO.items()))
def test_auto_picks_the_format_by_extension_else_jsonl(name, expected):
    assert Source(name).kind is expected


def _read(source):
    with ExitStack() as stack:
        return list(read_source(source, "text", stack))


@pytest.mark.parametrize("kind", list(FILES))
def test_each_reader_yields_the_records_of_its_file_numbered_by_what_it_counts(tmp_path, kind):
    name, write, items, noun = FILES[kind]
    path = tmp_path / name
    write(path)
    assert _read(Source(str(path), kind)) == items
    assert Source(str(path), kind).noun == noun
    if AUTO.get(name) is kind:  # the same file by its extension
        assert _read(Source(str(path))) == items
    unit = Source(str(path), kind).unit()
    assert unit == (noun if kind is InputFormat.jsonl else f"{path} {noun}")  # JSONL errors say "line 5" alone


def test_a_format_that_needs_a_package_or_a_file_says_so_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="^Parquet cannot be read from standard input; name the file$"):
        _read(Source("-", InputFormat.parquet))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed: importing it fails
    with pytest.raises(UsageError, match=r"^reading Parquet needs pyarrow: pip install 'itdd\[parquet\]'$"):
        _read(Source(str(tmp_path / "in.parquet")))
