"""Result files read back (`--resume`, `compare`): kept input fields of any kind, and the summary's counts."""

from __future__ import annotations

import json

import pytest

from itdd_cli.results.reader import NotResults, parse_results
from tests.support.cli import invoke
from tests.support.jsonl import read_jsonl, write_jsonl

# Kept values a spreadsheet or a naive reader would take for something else: text with a comma,
# quotes and a newline, numbers, text that reads as a number, a boolean or a JSON array, nothing.
NOTES = ["plain", 'x, "q"\ny', 5, "5", "true", True, "[1,2]", [1, 2], "1.5", 1.5, None, "", "'quoted", "=f", -3]


@pytest.fixture
def kept_input(tmp_path):
    texts = ["ab", "cd", "abc", "d", "bca"]
    rows = [{"id": f"r{i}", "text": texts[i % len(texts)], "note": note} for i, note in enumerate(NOTES)]
    return write_jsonl(tmp_path / "in.jsonl", rows)


def test_kept_csv_columns_come_back_as_the_text_written():
    text = 'id,nll_per_token,note\n1,2.5,plain\n2,2.5,"x, ""q""\ny"\n3,2.5,\'5\n4,2.5,5\n5,2.5,"[1, 2]"\n6,2.5,\n'
    rows = parse_results(text, csv_format=True)
    assert [row["note"] for row in rows] == ["plain", 'x, "q"\ny', "5", "5", "[1, 2]", ""]
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5, 6] and rows[0]["nll_per_token"] == 2.5


@pytest.mark.parametrize("text", ["id,nll_per_token\n1,2.5,extra\n", "id,nll_per_token,note\n1,2.5\n"])
def test_a_csv_row_with_another_number_of_cells_than_its_header_is_not_a_result(text):
    with pytest.raises(NotResults, match="row 1 has . cells but the header names ."):
        parse_results(text, csv_format=True)


def test_a_csv_with_kept_fields_of_any_kind_resumes_byte_for_byte_and_compares(base, kept_input, tmp_path):
    full = tmp_path / "full.csv"
    assert invoke(["nll", kept_input, *base, "-q", "-o", full, "--keep", "note"]).exit_code == 0
    written = full.read_bytes()
    assert b'"x, ""q""\ny"' in written and b",'5\n" in written  # the hard cells really are in the file
    cut = tmp_path / "cut.csv"
    multi_line = written.index(b"x, ") + 2  # inside the quoted multi-line cell
    for size in (multi_line, len(written) // 2, len(written) - 3):
        cut.write_bytes(written[:size])
        (tmp_path / "cut.csv.meta.json").write_bytes((tmp_path / "full.csv.meta.json").read_bytes())
        resumed = invoke(["nll", kept_input, *base, "-q", "-o", cut, "--keep", "note", "--resume"])
        assert resumed.exit_code == 0, resumed.stderr
        assert cut.read_bytes() == written, f"cut at byte {size}"
    other = tmp_path / "other.csv"
    assert invoke(["nll", kept_input, *base, "-q", "-o", other, "--keep", "note", "--seed", "1"]).exit_code == 0
    compared = invoke(["compare", full, other])
    assert compared.exit_code == 0, compared.stderr
    assert f"over {len(NOTES)} paired records" in compared.stdout


def test_the_summary_writes_counts_as_json_integers(base, kept_input, tmp_path):
    summary = tmp_path / "summary.json"
    assert invoke(["nll", kept_input, *base, "-q", "--summary", summary]).exit_code == 0
    document = json.loads(summary.read_text())
    counts = ("records", "skipped", "lossy", "tokens", "passes", "bytes", "words")
    assert {name: type(document[name]) for name in counts} == dict.fromkeys(counts, int)
    rows = read_jsonl(invoke(["nll", kept_input, *base, "-q"]).stdout)
    assert document["records"] == len(NOTES) and document["passes"] == sum(row["samples"] for row in rows)
    assert isinstance(document["nll_per_token"], float)


def test_a_csv_cell_longer_than_the_csv_modules_default_limit_is_read_whole():
    long_text = "word " * 40_000  # 200,000 characters: over csv's default field limit of 131,072
    rows = parse_results(f"id,nll_per_token,note\n1,2.5,{long_text}\n", csv_format=True)
    assert rows[0]["note"] == long_text
