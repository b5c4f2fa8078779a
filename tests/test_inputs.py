"""Inputs people have: plain text, CSV/TSV, Parquet and Hugging Face datasets give the JSONL rows."""

from __future__ import annotations

import io
import json

import pytest

from itdd_cli.io.sources import read_delimited, read_lines
from tests.support.cli import invoke, invoke_rows
from tests.support.jsonl import read_jsonl, write_jsonl

RECORDS = [{"id": "a1", "text": "abca", "src": "web"}, {"id": "a2", "text": "dd", "src": "book"},
           {"id": "a3", "text": "cab", "src": "web"}]  # fmt: skip


@pytest.fixture
def oracle(oracle_dir):
    return ["-m", oracle_dir, "--trust-remote-code", "-n", "8", "--seed", "4", "-q"]


def _score(oracle, *args):
    return invoke_rows(["nll", *args, *oracle])


def _delimited(path, delimiter):
    lines = [delimiter.join(["id", "text", "src"])] + [delimiter.join(r.values()) for r in RECORDS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _parquet(path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({key: [r[key] for r in RECORDS] for key in RECORDS[0]}), path)
    return path


def _dataset(path):
    pytest.importorskip("datasets")
    path.mkdir()
    write_jsonl(path / "validation.jsonl", RECORDS)
    return path


SOURCES = {
    "csv": lambda tmp: [_delimited(tmp / "in.csv", ",")],
    "tsv": lambda tmp: [_delimited(tmp / "in.tsv", "\t")],
    "tsv by option": lambda tmp: [_delimited(tmp / "in.data", "\t"), "--input-format", "tsv"],
    "parquet": lambda tmp: [_parquet(tmp / "in.parquet")],
    "dataset": lambda tmp: ["--dataset", _dataset(tmp / "ds"), "--split", "validation"],
}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_each_format_gives_the_rows_of_the_equivalent_jsonl_and_keeps_fields(oracle, tmp_path, kind):
    expected = _score(oracle, write_jsonl(tmp_path / "in.jsonl", RECORDS), "--keep", "src")
    assert [row["src"] for row in expected] == ["web", "book", "web"]
    assert _score(oracle, *SOURCES[kind](tmp_path), "--keep", "src") == expected


def test_plain_text_lines_give_the_rows_of_jsonl_with_line_numbers_as_ids(oracle, tmp_path):
    texts = tmp_path / "in.txt"
    texts.write_text("abca\n\ndd\r\ncab", encoding="utf-8")  # a blank line is skipped but counted
    expected = _score(oracle, write_jsonl(tmp_path / "in.jsonl", [{"text": "abca"}]))
    rows = _score(oracle, texts, "--lines")
    assert [row["id"] for row in rows] == [1, 3, 4] and [row["tokens"] for row in rows] == [4, 2, 3]
    assert rows[0] == expected[0]


def test_a_whole_text_file_is_one_document(oracle, tmp_path):
    document = tmp_path / "doc.txt"
    document.write_text("abcdab", encoding="utf-8")
    (row,) = _score(oracle, document)
    (same,) = _score(oracle, write_jsonl(tmp_path / "in.jsonl", [{"text": "abcdab"}]))
    assert row == same


def _lines(path):
    path.write_text("\n\n".join(r["text"] for r in RECORDS) + "\n", encoding="utf-8")  # blank lines: no records
    return path


@pytest.mark.parametrize("kind", ["jsonl", "stdin", "lines", *SOURCES])
def test_limit_scores_the_first_n_records_of_every_input(oracle, tmp_path, kind):
    jsonl = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    sources = SOURCES | {"jsonl": lambda tmp: [jsonl], "stdin": lambda tmp: ["-"],
                         "lines": lambda tmp: [_lines(tmp / "in.txt"), "--lines"]}  # fmt: skip
    stdin = jsonl.read_text(encoding="utf-8") if kind == "stdin" else None
    result = invoke(["nll", *sources[kind](tmp_path), "--limit", "2", *oracle], stdin=stdin)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    expected = [1, 3] if kind == "lines" else ["a1", "a2"]  # lines are named by their line numbers
    assert [row["id"] for row in rows] == expected
    assert [row["tokens"] for row in rows] == [4, 2]


def test_limit_counts_an_invalid_record_and_a_whole_text_is_one_record(oracle, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "nope": 1}, *RECORDS])
    rows = _score(oracle, path, "--limit", "2", "--skip-invalid")
    assert [row["id"] for row in rows] == ["a1"]
    document = tmp_path / "doc.txt"
    document.write_text("abcdab", encoding="utf-8")
    assert len(_score(oracle, document, "--limit", "1")) == 1


@pytest.mark.parametrize("value", ["0", "-1"])
def test_limit_below_one_is_a_one_line_usage_error(oracle, tmp_path, value):
    result = invoke(["nll", write_jsonl(tmp_path / "in.jsonl", RECORDS), "--limit", value, *oracle])
    assert result.exit_code == 2 and not result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "--limit" in result.stderr, result.stderr


def test_a_csv_row_with_the_wrong_number_of_fields_names_the_file_and_line(oracle, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,text\nx,abca\ny,dd,extra\nz,cab\n", encoding="utf-8")
    result = invoke(["nll", path, *oracle])
    assert result.exit_code == 3
    assert f"{path} line 3: 3 fields but the header has 2" in result.stderr
    skipped = invoke(["nll", path, *oracle[:-1], "--skip-invalid"])
    assert skipped.exit_code == 0 and [r["id"] for r in read_jsonl(skipped.stdout)] == ["x", "z"]
    assert f"skipped {path} line 3" in skipped.stderr


def test_a_missing_parquet_column_names_the_row(oracle, tmp_path):
    path = _parquet(tmp_path / "in.parquet")
    result = invoke(["nll", path, *oracle, "--text-field", "body"])
    assert result.exit_code == 3 and f"{path} row 1: missing field 'body'" in result.stderr


def test_a_duplicate_parquet_id_names_rows_not_lines(oracle, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["ab", "cd", "da"]}), path)
    result = invoke(["nll", path, *oracle])
    assert result.exit_code == 3
    assert result.stderr == f"itdd: error: {path} row 3: duplicate id 'a' (first on row 1)\n"


def test_a_missing_keep_field_names_the_record(oracle, tmp_path):
    result = invoke(["nll", write_jsonl(tmp_path / "in.jsonl", RECORDS), *oracle, "--keep", "src,lang"])
    assert result.exit_code == 3 and "line 1: missing field 'lang' named by --keep" in result.stderr


def test_keep_may_not_shadow_an_output_field(oracle, tmp_path):
    result = invoke(["nll", write_jsonl(tmp_path / "in.jsonl", RECORDS), *oracle, "--keep", "nll"])
    assert result.exit_code == 2 and "--keep nll" in result.stderr


def test_a_binary_file_given_as_text_and_an_undecodable_line_are_named(oracle, tmp_path):
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"abca\n\x00\x01\x02\n")
    result = invoke(["nll", binary, "--lines", *oracle])
    assert result.exit_code == 3 and f"{binary} line 2" in result.stderr and "binary" in result.stderr
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"abca\ncaf\xe9\n")
    result = invoke(["nll", latin, "--lines", *oracle])
    assert result.exit_code == 3 and f"{latin} line 2: not valid UTF-8" in result.stderr


def test_a_dataset_that_cannot_be_found_offline_is_a_usage_error(oracle):
    pytest.importorskip("datasets")
    result = invoke(["nll", "--dataset", "no-such-org/no-such-set", "--split", "test", *oracle],
                    env={"HF_DATASETS_OFFLINE": "1"})  # fmt: skip
    assert result.exit_code == 2 and "cannot load dataset 'no-such-org/no-such-set'" in result.stderr
    assert "\n" not in result.stderr.strip()


class _Endless(io.RawIOBase):
    """A stream that never ends: reading it whole would never return."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        line = b"abca,x\n"
        buffer[: len(line)] = line
        return len(line)


@pytest.mark.parametrize("reader", ["lines", "csv"])
def test_readers_stream_record_by_record(reader):
    stream = io.BufferedReader(_Endless())
    items = read_lines(stream, "text") if reader == "lines" else read_delimited(stream, ",", "endless")
    first, second = next(items), next(items)
    assert first[0] + 1 == second[0]
    assert json.dumps(first[1])  # an object, not an error


def test_a_lone_carriage_return_ends_a_line_as_lf_and_crlf_do(oracle, tmp_path):
    """As Python's universal newlines read text: a CR never stays inside a record's text."""
    raw = b"abca\rdd\r\ncab\n\rbb\r"
    assert list(read_lines(io.BytesIO(raw), "text")) == [
        (1, {"text": "abca"}), (2, {"text": "dd"}), (3, {"text": "cab"}), (5, {"text": "bb"})
    ]  # fmt: skip
    texts = tmp_path / "cr.txt"
    texts.write_bytes(raw)
    rows = _score(oracle, texts, "--lines")
    assert [row["id"] for row in rows] == [1, 2, 3, 5] and [row["tokens"] for row in rows] == [4, 2, 3, 2]


QUESTIONS = [{"id": "q1", "prompt": "ab", "choices": ["c", "ba"], "label": 0, "src": "web"},
             {"id": "q2", "prompt": "c", "choices": ["ab", "cab", "b"], "label": 1, "src": "book"}]  # fmt: skip


def _choice(oracle, *args):
    result = invoke(["choice", *args, *oracle])
    assert result.exit_code == 0, result.stderr
    return read_jsonl(result.stdout)


def test_choice_takes_every_input_option_the_other_commands_take(oracle, tmp_path):
    """choice once lacked --input-format and --dataset: the same questions from Parquet, a dataset and a
    JSONL file under another extension give the JSONL's rows, with --keep carried."""
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("datasets")
    import pyarrow as pa

    expected = _choice(oracle, write_jsonl(tmp_path / "q.jsonl", QUESTIONS), "--keep", "src")
    assert [row["src"] for row in expected] == ["web", "book"]
    pq.write_table(pa.table({key: [q[key] for q in QUESTIONS] for key in QUESTIONS[0]}), tmp_path / "q.parquet")
    (tmp_path / "ds").mkdir()
    write_jsonl(tmp_path / "ds" / "test.jsonl", QUESTIONS)
    (tmp_path / "q.data").write_text((tmp_path / "q.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    for source in ([tmp_path / "q.parquet"], ["--dataset", tmp_path / "ds", "--split", "test"],
                   [tmp_path / "q.data", "--input-format", "jsonl"]):  # fmt: skip
        assert _choice(oracle, *source, "--keep", "src") == expected


def test_every_scoring_command_declares_the_same_input_options():
    import inspect

    from itdd_cli.cli import scoring
    from itdd_cli.cli.signature import INPUT

    for name, (command, _) in scoring.COMMANDS.items():
        assert {param for param, *_ in INPUT} <= set(inspect.signature(command).parameters), name
