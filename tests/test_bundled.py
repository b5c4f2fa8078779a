"""The bundled models: the default demo model and the paper's DNA ground-truth experiment."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tests.support.cli import invoke, invoke_rows
from tests.support.jsonl import read_jsonl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_nll_without_a_model_scores_with_the_bundled_demo_and_says_so():
    result = invoke(["nll", str(EXAMPLES / "demo.jsonl"), "-n", "8"], env={"ITDD_MODEL": None})
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert len(rows) == len((EXAMPLES / "demo.jsonl").read_text().splitlines())
    assert all(row["nll"] > 0 and row["tokens"] > 0 for row in rows)
    assert "bundled 'demo' model" in result.stderr and "pass -m" in result.stderr
    assert "(llada, float32 on cpu)" in result.stderr


def _r2(estimates: list[float], truths: list[float]) -> float:
    mean = statistics.fmean(truths)
    residual = sum((e - t) ** 2 for e, t in zip(estimates, truths, strict=True))
    return 1 - residual / sum((t - mean) ** 2 for t in truths)


def _dna8_truths() -> list[float]:
    return [json.loads(line)["true_nll"] for line in (EXAMPLES / "dna8.jsonl").read_text().splitlines()]


def _dna8_nll(*options: str) -> list[float]:
    return [row["nll"] for row in invoke_rows(["nll", str(EXAMPLES / "dna8.jsonl"), "-m", "dna8", "-q", *options])]


def test_the_dna8_model_tracks_the_true_likelihoods_with_the_default_estimator():
    """The paper's Section 5.1 check: 256 `stratified` draws per sequence (Monte Carlo SE ≈ 0.11
    nats, the floor a perfect model would show) against the true NLL of all 128 sequences."""
    truths = _dna8_truths()
    assert _r2(_dna8_nll("-n", "256"), truths) >= 0.9


def test_the_dna8_model_itself_has_learnt_the_distribution():
    """`exact` removes the Monte Carlo noise: what is left is the model's own error."""
    truths = _dna8_truths()
    exact = _dna8_nll("--estimator", "exact")
    assert _r2(exact, truths) >= 0.98
    assert statistics.fmean(abs(e - t) for e, t in zip(exact, truths, strict=True)) <= 0.05


def test_the_demo_model_prefers_real_sentences_to_word_shuffled_copies():
    lines = (EXAMPLES / "shuffled-pairs.jsonl").read_text().splitlines()[:12]
    result = invoke(["ratio", "-", "-m", "demo", "-n", "32", "-q"], stdin="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    preferences = [row["prefers"] for row in read_jsonl(result.stdout)]
    assert preferences.count("chosen") >= 10, preferences


def test_models_lists_the_bundled_models():
    result = invoke(["models"])
    assert "demo" in result.stdout and "dna8" in result.stdout
