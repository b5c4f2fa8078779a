"""What CI reads: the summary file and the quality gates (exit 4)."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import invoke
from tests.support.jsonl import read_jsonl, write_jsonl


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
        (["--fail-above", "share_chosen=0.5"], 2),  # not reported by nll: refused before scoring, never passes silently
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
