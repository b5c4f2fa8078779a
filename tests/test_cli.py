"""The command line as a user meets it: inputs, formats, fields and exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.support.cli import invoke, one_error_line
from tests.support.jsonl import read_jsonl, write_jsonl

PER_BYTE = ["bytes", "words", "bits_per_byte"]
NLL_FIELDS = [
    "id",
    "nll",
    "nll_se",
    "tokens",
    "nll_per_token",
    "bits_per_token",
    "ppl",
    "samples",
    "windows",
    *PER_BYTE,
]
COND_FIELDS = [
    "id", "nll", "nll_se", "tokens", "prompt_tokens", "nll_per_token", "bits_per_token", "ppl", "samples", *PER_BYTE
]  # fmt: skip
RATIO_FIELDS = [
    "id",
    "log_ratio",
    "log_ratio_se",
    "nll_chosen",
    "nll_rejected",
    "tokens_chosen",
    "tokens_rejected",
    "samples",
    "prefers",
    "decided",
]
INPUTS = {
    "nll": [{"text": "abca"}, {"text": "dd", "id": "second"}],
    "cond-nll": [{"prompt": "ab", "response": "cd"}, {"prompt": "d", "response": "aab"}],
    "ratio": [{"prompt": "a", "chosen": "bc", "rejected": "dd"}, {"chosen": "abcd", "rejected": "ab"}],
}
FIELDS = {"nll": NLL_FIELDS, "cond-nll": COND_FIELDS, "ratio": RATIO_FIELDS}


@pytest.mark.parametrize("source", ["file", "stdin", "dash"])
@pytest.mark.parametrize("command", ["nll", "cond-nll", "ratio"])
def test_each_command_writes_one_jsonl_row_per_record_with_the_documented_fields(base, tmp_path, command, source):
    rows = INPUTS[command]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    text = path.read_text()
    args = {"file": [command, path], "stdin": [command], "dash": [command, "-"]}[source]
    result = invoke([*args, *base], stdin=None if source == "file" else text)
    assert result.exit_code == 0, result.stderr
    out = read_jsonl(result.stdout)
    assert [list(row) for row in out] == [FIELDS[command]] * len(rows)
    assert [row["id"] for row in out] == [rows[0].get("id", 1), rows[1].get("id", 2)]
    assert "records 2" in result.stderr  # the summary goes to stderr, data stays clean


def test_ratio_prefers_names_the_side_with_the_higher_likelihood(base, tmp_path):
    result = invoke(["ratio", write_jsonl(tmp_path / "in.jsonl", INPUTS["ratio"]), *base])
    for row in read_jsonl(result.stdout):
        assert row["prefers"] == ("chosen" if row["log_ratio"] > 0 else "rejected")
        assert row["log_ratio"] == pytest.approx(row["nll_rejected"] - row["nll_chosen"])


def test_csv_format_has_a_header_and_the_same_numbers_as_jsonl(base, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", INPUTS["nll"])
    as_csv = invoke(["nll", path, *base, "--format", "csv"])
    as_jsonl = invoke(["nll", path, *base, "--format", "jsonl"])
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(table[0]) == NLL_FIELDS
    for csv_row, json_row in zip(table, read_jsonl(as_jsonl.stdout), strict=True):
        assert float(csv_row["nll"]) == pytest.approx(json_row["nll"], rel=1e-12)


def test_table_format_shows_rows_and_a_summary_with_the_framing(base, tmp_path):
    result = invoke(["nll", write_jsonl(tmp_path / "in.jsonl", INPUTS["nll"]), *base, "--format", "table"])
    assert result.exit_code == 0
    assert "nll_per_token" in result.stdout and "second" in result.stdout
    assert result.stdout.count("nll_per_token") == 1 and result.stdout.count("second") == 1  # one table
    assert "records 2" in result.stdout and "corpus perplexity" in result.stdout and "framing: none" in result.stdout


def test_ratio_table_summary_gives_the_share_preferring_chosen(base, tmp_path):
    result = invoke(["ratio", write_jsonl(tmp_path / "in.jsonl", INPUTS["ratio"]), *base, "--format", "table"])
    assert "prefers chosen" in result.stdout and "coupled masks" in result.stdout


@pytest.mark.parametrize(
    "suffix,parse", [(".jsonl", read_jsonl), (".csv", lambda t: list(csv.DictReader(io.StringIO(t))))]
)
def test_output_file_format_follows_its_extension(base, tmp_path, suffix, parse):
    target = tmp_path / f"out{suffix}"
    result = invoke(["nll", write_jsonl(tmp_path / "in.jsonl", INPUTS["nll"]), *base, "-o", target])
    assert result.exit_code == 0 and result.stdout == ""
    assert len(parse(target.read_text())) == 2


def test_an_existing_output_file_is_not_overwritten_without_the_flag(base, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("precious\n")
    path = write_jsonl(tmp_path / "in.jsonl", INPUTS["nll"])
    refused = invoke(["nll", path, *base, "-o", target])
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr
    assert target.read_text() == "precious\n"
    assert invoke(["nll", path, *base, "-o", target, "--overwrite"]).exit_code == 0
    assert len(read_jsonl(target.read_text())) == 2


def test_custom_field_names(base, tmp_path):
    rows = [{"key": "k1", "body": "abc"}]
    result = invoke(
        ["nll", write_jsonl(tmp_path / "in.jsonl", rows), *base, "--text-field", "body", "--id-field", "key"]
    )
    assert read_jsonl(result.stdout)[0]["id"] == "k1"


def test_the_model_can_come_from_the_environment(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", INPUTS["nll"])
    result = invoke(["nll", path, "--trust-remote-code", "-n", "8"], env={"ITDD_MODEL": str(oracle_dir)})
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["nll", "missing.jsonl"], "cannot read missing.jsonl"),
        (["nll", "-", "--batch-size", "zero"], "--batch-size 'zero'"),
        (["nll", "-", "--samples", "1"], "--samples"),
        (["nll", "-", "--estimator", "magic"], "--estimator"),
        (["nll", "-", "--family", "nope"], "--family 'nope'"),
    ],
)
def test_usage_errors_exit_2(base, args, message):
    result = invoke([args[0], *base, *args[1:]], stdin='{"text": "ab"}\n')  # later options win
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("setup", ["missing", "broken"])
def test_a_model_that_cannot_load_exits_1_with_one_line(tmp_path, setup):
    target = tmp_path / "model"
    if setup == "broken":
        target.mkdir()
        (target / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    result = invoke(["nll", "-m", target], stdin='{"text": "ab"}\n')
    one_error_line(result, 1)


def test_inspect_reports_what_was_detected(oracle_dir):
    result = invoke(["inspect", "-m", oracle_dir, "--trust-remote-code"])
    assert result.exit_code == 0
    for expected in ("generic", "mask id", "framing", "maximum length", "8"):
        assert expected in result.stdout


def test_models_lists_the_families():
    result = invoke(["models"])
    assert result.exit_code == 0 and "generic" in result.stdout


def test_the_same_model_twice_is_a_usage_error_naming_it(oracle_dir, tmp_path):
    """Its rows would carry the same `model` and could not be told apart; nothing is scored."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "abca"}])
    out = tmp_path / "out.jsonl"
    result = invoke(["nll", source, "-m", oracle_dir, "-m", "demo", "-m", oracle_dir, "--trust-remote-code",
                     "-n", "8", "-o", out])  # fmt: skip
    one_error_line(result, 2, f"-m {oracle_dir} is given twice")
    assert not out.exists()


def test_accuracy_over_one_labelled_record_has_no_standard_error(tmp_path):
    """√(p(1 − p)/1) is 0 whatever the answer: the summary says n/a and the JSON holds null."""
    source = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "The value is", "choices": [" None.", " banana."],
                                                "label": 0}, {"choices": [" a", " b"]}])  # fmt: skip
    summary = tmp_path / "s.json"
    result = invoke(["choice", source, "-m", "demo", "-n", "8", "-o", tmp_path / "o.jsonl", "--summary", summary])
    assert result.exit_code == 0, result.stderr
    assert "over 1 labelled records" in result.stderr and "± n/a over" in result.stderr
    assert "acc_norm (per byte)" in result.stderr and "± 0.0%" not in result.stderr
    document = json.loads(summary.read_text())
    assert document["accuracy"] in (0.0, 1.0) and document["accuracy_se"] is None
    assert document["accuracy_norm_se"] is None
    gated = invoke(["choice", source, "-m", "demo", "-n", "8", "-o", tmp_path / "g.jsonl", "--overwrite",
                    "--fail-below", "accuracy_se=0"])  # fmt: skip
    assert gated.exit_code == 4 and "accuracy_se is undefined: a binomial standard error needs at least 2" in (
        gated.stderr
    )


def test_an_error_line_shows_the_control_characters_of_what_it_names_escaped(base, tmp_path):
    missing = tmp_path / "in\x1b]0;owned\x07\u202e.jsonl"
    result = invoke(["nll", missing, *base])
    assert result.exit_code == 2 and "no such file" in result.stderr
    assert not any(raw in result.stderr for raw in ("\x1b", "\x07", "\u202e")), repr(result.stderr)
    assert "in\\x1b]0;owned\\x07\\u202e.jsonl" in result.stderr
