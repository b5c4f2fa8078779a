"""Bad input as a user meets it: one line naming the record, exit 3, never a traceback or a lost row."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itdd_cli.errors import ModelError
from itdd_cli.io.reader import read_objects
from itdd_cli.io.records import flag_duplicate_ids
from itdd_cli.scoring.runner import Command, Settings, Skipped, score
from tests.support.cli import invoke, one_error_line
from tests.support.fakes import UniformModel
from tests.support.jsonl import read_jsonl, write_jsonl

BAD_INPUT = [  # (content, line named in the message, what the message says)
    (b'{"text": "ab"}\n{"text": "ab"\n', 2, "invalid JSON"),
    (b'"just a string"\n', 1, "expected a JSON object ({…} on each line), got a string"),
    (b'{"text": "ab"}\n{"other": "x"}\n', 2, "missing field 'text'"),
    (b'{"text": null}\n', 1, "got null"),
    (b'{"text": ["a"]}\n', 1, "got list"),
    (b'{"text": ""}\n', 1, "is empty"),
    (b'{"text": "a\xff"}\n', 1, "not valid UTF-8"),
    (b'{"text": "\\ud800"}\n', 1, "unpaired surrogate"),
    (b'{"text": "abcdabcdab"}\n', 1, "exceed the model's maximum"),
    (b'{"id": "x", "text": "ab"}\n{"id": "x", "text": "cd"}\n', 2, "duplicate id 'x' (first on line 1)"),
    (b'{"text": "ab"}\n' + b"[" * 100_000 + b"\n", 2, "invalid JSON"),
]


@pytest.mark.parametrize("source", ["file", "stdin"])
@pytest.mark.parametrize("content,line,message", BAD_INPUT)
def test_each_kind_of_bad_input_is_one_line_with_its_line_number_and_exit_3(base, tmp_path, source, content, line,
                                                                            message):  # fmt: skip
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    if source == "file":
        result = invoke(["nll", path, *base])
    else:
        result = invoke(["nll", *map(str, base)], stdin=content)
    assert one_error_line(result, 3, message).startswith(f"itdd: error: line {line}: ")
    assert len(read_jsonl(result.stdout)) == line - 1 - content.count(b"\n\n")  # the good lines before it


def test_a_byte_order_mark_is_accepted_and_blank_lines_are_skipped(base, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "ab"}\n\n   \n{"text": "cd"}\n\n')
    result = invoke(["nll", path, *base])
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == [1, 4]


def test_skip_invalid_reports_each_bad_record_writes_no_row_and_counts_it(base, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "ab"}\nnot json\n{"text": ""}\n{"text": "cd"}\n{"text": "\xfe"}\n')
    result = invoke(["nll", path, *base, "--skip-invalid", "--summary", tmp_path / "s.json"])
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == [1, 4]
    for line in (2, 3, 5):
        assert f"itdd: skipped line {line}: " in result.stderr
    assert "skipped 3" in result.stderr
    assert json.loads((tmp_path / "s.json").read_text())["skipped"] == 3


def _reader_outcomes(data: bytes):
    """Every line through the reader and the runner: rows and errors, in order."""
    rows = score(Command.nll, flag_duplicate_ids(read_objects(iter(data.splitlines(keepends=True))), "id"),
                 UniformModel(vocab_size=50, max_length=64), Settings(samples=8), skip_invalid=True)  # fmt: skip
    return list(rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_give_scored_records_or_one_line_errors(data):
    for outcome in _reader_outcomes(data):
        if isinstance(outcome, Skipped):
            assert outcome.line >= 1 and "\n" not in outcome.message
        else:
            assert math.isfinite(outcome["nll"]) and outcome["tokens"] >= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["text", "id", "x"]), json_values, max_size=3) | json_values,
                max_size=5))  # fmt: skip
def test_random_json_gives_scored_records_or_one_line_errors(values):
    data = "".join(json.dumps(value) + "\n" for value in values).encode()
    outcomes = _reader_outcomes(data)
    assert len(outcomes) == len(values)  # every line accounted for: a row or a reported skip
    for value, outcome in zip(values, outcomes, strict=True):
        valid = isinstance(value, dict) and isinstance(value.get("text"), str) and 0 < len(value["text"]) <= 64
        if not valid:
            assert isinstance(outcome, Skipped) and "\n" not in outcome.message


class NaNModel(UniformModel):
    def target_logprobs(self, input_ids, attention_mask, score_mask, targets):  # type: ignore[no-untyped-def]
        return torch.full((int(score_mask.sum()),), math.nan)


def test_nan_log_probs_end_the_run_naming_the_record():
    with pytest.raises(ModelError, match="line 2: the model returned non-finite"):
        list(score(Command.nll, [(2, {"text": "ab"})], NaNModel(), Settings(samples=8)))


BAD_LINES = [
    ('{"text": "ab"}\n{"text": \n', 2, "invalid JSON"),
    ('{"text": "ab"}\n[1, 2]\n', 2, "expected a JSON object"),
    ('{"body": "ab"}\n', 1, "missing field 'text' (the record has fields 'body') — use --text-field"),
    ('{"text": null}\n', 1, "must be a string, got null"),
    ('{"text": 5}\n', 1, "must be a string, got int"),
    ('{"text": ""}\n', 1, "is empty"),
    ('{"text": "ab"}\n\n{"text": "abcdabcda"}\n', 3, "exceed the model's maximum of 8"),
    ('{"text": "ab", "id": [1]}\n', 1, "must be a string or an integer"),
]


@pytest.mark.parametrize("source", ["file", "stdin"])
@pytest.mark.parametrize("content,line,message", BAD_LINES)
def test_an_invalid_record_exits_3_with_its_line_number_and_no_traceback(
    base, tmp_path, source, content, line, message
):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    args = ["nll", path, *base] if source == "file" else ["nll", *base]
    result = invoke(args, stdin=None if source == "file" else content)
    assert one_error_line(result, 3, message).startswith(f"itdd: error: line {line}: ")


def test_records_before_an_invalid_line_are_still_written(base, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "ab"}\n{"text": "cd"}\n{"oops": 1}\n')
    result = invoke(["nll", path, *base])
    assert result.exit_code == 3
    assert len(read_jsonl(result.stdout)) == 2


def test_invalid_utf8_is_reported_with_its_line(base, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "ab"}\n{"text": "\xff"}\n')
    result = invoke(["nll", path, *base])
    assert result.exit_code == 3 and "line 2: not valid UTF-8" in result.stderr


def test_exact_refuses_long_records_with_their_line(oracle_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("itdd_cli.estimators.kinds.EXACT_MAX_TOKENS", 3)
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "ab"}, {"text": "abcd"}])
    result = invoke(["nll", path, "-m", oracle_dir, "--trust-remote-code", "--estimator", "exact"])
    assert result.exit_code == 3 and "line 2: 4 scored tokens" in result.stderr
