"""Bad input, interrupts and resumes, safe loading, and CI gating — as a user meets them."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from itdd_cli.cli import app
from itdd_cli.errors import InputError, ModelError
from itdd_cli.io.reader import read_objects
from itdd_cli.records import flag_duplicate_ids
from itdd_cli.runner import Command, Settings, Skipped, score
from tests.conftest import read_jsonl, write_jsonl
from tests.fakes import UniformModel


def invoke(args, stdin=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


@pytest.fixture
def base(oracle_dir):
    return ["-m", oracle_dir, "--trust-remote-code", "-n", "4"]


BAD_INPUT = [  # (content, line named in the message, what the message says)
    (b'{"text": "ab"}\n{"text": "ab"\n', 2, "invalid JSON"),
    (b'"just a string"\n', 1, "expected a JSON object, got str"),
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
        result = CliRunner().invoke(app, ["nll", *map(str, base)], input=content)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith(f"itdd: error: line {line}: ") and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
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
                 UniformModel(vocab_size=50, max_length=64), Settings(samples=2), skip_invalid=True)  # fmt: skip
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
        list(score(Command.nll, [(2, {"text": "ab"})], NaNModel(), Settings(samples=4)))


def _itdd(*args, **kwargs):
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "itdd_cli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def slow_oracle_dir(tmp_path_factory, distribution):
    """The oracle with a short sleep in every forward call, so a run can be caught mid-way."""
    from itdd_cli.oracle import write_checkpoint

    directory = write_checkpoint(tmp_path_factory.mktemp("slow-oracle"), distribution)
    code = (directory / "modeling_oracle.py").read_text()
    marker = "        batch, width = input_ids.shape\n"
    code = code.replace(marker, "        time.sleep(0.004)\n" + marker).replace(
        "import itertools\n", "import itertools\nimport time\n"
    )
    (directory / "modeling_oracle.py").write_text(code)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("signum,suffix", [(signal.SIGINT, ".jsonl"), (signal.SIGTERM, ".csv")])
def test_an_interrupted_run_keeps_whole_rows_and_resume_finishes_it_byte_for_byte(slow_oracle_dir, tmp_path, signum,
                                                                                   suffix):  # fmt: skip
    texts = ["abc", "dcba", "cd", "abab", "dab"]
    rows = [{"id": f"r{i}", "text": texts[i % 5]} for i in range(4000)]  # 4 look-ahead windows at 8 draws
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ["nll", source, "-m", slow_oracle_dir, "--trust-remote-code", "-n", "8", "--batch-size", "32", "-q"]
    partial_path = tmp_path / f"partial{suffix}"
    interrupted = _itdd(*common, "-o", partial_path)
    while not partial_path.exists() or partial_path.stat().st_size < 200:
        assert interrupted.poll() is None, interrupted.stderr.read()
        time.sleep(0.02)
    interrupted.send_signal(signum)
    _, stderr = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = partial_path.read_text()
    assert written.endswith("\n") and 0 < len(written.splitlines()) < len(rows)
    resumed = _itdd(*common, "-o", partial_path, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    full = _itdd(*common, "-o", tmp_path / f"full{suffix}")
    assert full.wait(timeout=300) == 0
    assert partial_path.read_bytes() == (tmp_path / f"full{suffix}").read_bytes()


def test_resume_cuts_a_partial_last_line_and_refuses_output_of_other_input(base, tmp_path):
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(["ab", "cd", "abc", "d"])]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    full = invoke(["nll", source, *base, "-q"]).stdout
    target = tmp_path / "out.jsonl"
    target.write_text(full.splitlines()[0] + "\n" + full.splitlines()[1][:20])  # killed mid-write
    assert invoke(["nll", source, *base, "-q", "-o", target, "--resume"]).exit_code == 0
    assert target.read_text() == full
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "zz", "text": "ab"}, *rows])
    refused = invoke(["nll", other, *base, "-o", target, "--resume"])
    assert refused.exit_code == 2 and "belongs to other input" in refused.stderr
    changed = write_jsonl(tmp_path / "changed.jsonl", [rows[0] | {"text": "abcd"}, *rows[1:]])
    refused = invoke(["nll", changed, *base, "-o", target, "--resume"])
    assert refused.exit_code == 2 and "does not match" in refused.stderr


def test_resume_needs_an_output_file_and_does_not_mix_with_overwrite(base, tmp_path):
    assert invoke(["nll", "-", *base, "--resume"], stdin='{"text": "ab"}\n').exit_code == 2
    both = invoke(["nll", "-", *base, "--resume", "--overwrite", "-o", tmp_path / "o.jsonl"], stdin="")
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_pickle_only_checkpoints_are_refused_unless_allowed(tmp_path):
    from tests.test_generic_adapter import write_tiny_bert

    directory = write_tiny_bert(tmp_path / "bert")
    from safetensors.torch import load_file

    torch.save(load_file(str(directory / "model.safetensors")), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    refused = invoke(["nll", "-", "-m", directory, "-n", "4"], stdin='{"text": "abc"}\n')
    assert refused.exit_code == 1 and "--allow-pickle" in refused.stderr and "pytorch_model.bin" in refused.stderr
    allowed = invoke(["nll", "-", "-m", directory, "-n", "4", "--allow-pickle"], stdin='{"text": "abc"}\n')
    assert allowed.exit_code == 0, allowed.stderr


def test_summary_file_has_what_ci_needs(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"chosen": "ab", "rejected": "dd"}, {"chosen": "ca", "rejected": "c"}])
    assert invoke(["ratio", source, *base, "--summary", tmp_path / "s.json"]).exit_code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    for key in ("version", "model", "revision", "family", "estimator", "samples", "seed", "records", "skipped",
                "nll_per_token", "perplexity", "share_chosen", "share_chosen_se", "wall_seconds"):  # fmt: skip
        assert key in summary
    assert summary["records"] == 2 and summary["family"] == "generic" and summary["coupled"] is True


@pytest.mark.parametrize(
    "gate,code",
    [
        (["--fail-above", "nll_per_token=0.01"], 4),
        (["--fail-above", "nll_per_token=100"], 0),
        (["--fail-below", "records=3"], 4),
        (["--fail-below", "records=2", "--fail-above", "perplexity=1e6"], 0),
        (["--fail-above", "share_chosen=0.5"], 4),  # not reported by nll: a gate cannot pass silently
        (["--fail-above", "f1=1"], 2),  # no command reports it
        (["--fail-above", "nll_per_token"], 2),
    ],
)
def test_quality_gates_exit_4_when_violated(base, tmp_path, gate, code):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "ab"}, {"text": "cd"}])
    result = invoke(["nll", source, *base, "-q", *gate])
    assert result.exit_code == code, result.stderr
    if code == 4:
        assert "quality gate failed" in result.stderr and len(read_jsonl(result.stdout)) == 2


def _results(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_compare_reports_the_paired_difference_and_fails_only_when_significantly_worse(tmp_path):
    base_rows = [{"id": i, "nll_per_token": 2.0 + 0.1 * (i % 3)} for i in range(20)]
    same = _results(tmp_path / "same.jsonl", [r | {"nll_per_token": r["nll_per_token"] + 0.001 * (-1) ** i}
                                              for i, r in enumerate(base_rows)])  # fmt: skip
    worse = _results(tmp_path / "worse.jsonl", [r | {"nll_per_token": r["nll_per_token"] + 0.2 + 0.01 * (i % 2)}
                                                for i, r in enumerate(base_rows)])  # fmt: skip
    better = _results(tmp_path / "better.jsonl", [r | {"nll_per_token": r["nll_per_token"] - 0.2 - 0.01 * (i % 2)}
                                                  for i, r in enumerate(base_rows)])  # fmt: skip
    base = _results(tmp_path / "base.jsonl", base_rows)
    result = invoke(["compare", base, same, "--fail-if-worse"])
    assert result.exit_code == 0 and "no significant difference" in result.stdout
    result = invoke(["compare", base, worse, "--fail-if-worse"])
    assert result.exit_code == 4 and "significantly worse" in result.stdout
    assert "+0.205" in result.stdout
    assert invoke(["compare", base, worse]).exit_code == 0  # reported, not gated
    assert invoke(["compare", base, better, "--fail-if-worse"]).exit_code == 0


def test_compare_on_ratio_files_treats_a_lower_log_ratio_as_worse(tmp_path):
    base = _results(tmp_path / "b.jsonl", [{"id": i, "log_ratio": 1.0 + (i % 2)} for i in range(10)])
    new = _results(tmp_path / "n.jsonl", [{"id": i, "log_ratio": 0.5 + (i % 2) + 0.01 * i} for i in range(12)])
    result = invoke(["compare", base, new, "--fail-if-worse"])
    assert result.exit_code == 4 and "log_ratio" in result.stdout and "2 only in new" in result.stdout


def test_compare_usage_errors(tmp_path):
    base = _results(tmp_path / "b.jsonl", [{"id": 1, "nll_per_token": 1.0}])
    assert invoke(["compare", base, tmp_path / "missing.jsonl"]).exit_code == 2
    assert invoke(["compare", base, base, "--metric", "tokens"]).exit_code == 2
    other = _results(tmp_path / "o.jsonl", [{"id": 2, "nll_per_token": 1.0}])
    assert invoke(["compare", base, other]).exit_code == 2


def test_input_errors_survive_the_trip_between_processes():
    import pickle

    error = pickle.loads(pickle.dumps(InputError(7, "missing field 'text'")))
    assert isinstance(error, InputError) and str(error) == "line 7: missing field 'text'"
