"""Estimates on an exact-conditional checkpoint, whose true −log p is known in closed form."""

from __future__ import annotations

import statistics

import pytest

from itdd_cli.estimators import MONTE_CARLO, Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.cli import invoke, invoke_rows
from tests.support.jsonl import write_jsonl

TEXTS = ["a", "dc", "abc", "bbad", "cadba", "ddcaab", "abcdabc", "dcbadcba"]
CONDITIONALS = [("a", "b"), ("ab", "cd"), ("dcb", "a"), ("c", "adbca"), ("abcd", "dcba")]
PAIRS = [("ab", "cd", "ca"), ("d", "abca", "ab"), (None, "abcd", "abdd"), (None, "dd", "cabac"), ("c", "a", "a")]


def _run(oracle_dir, tmp_path, command, rows, *options):
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    return invoke_rows([command, str(path), "-m", str(oracle_dir), "--trust-remote-code", *options])


def _truths(distribution, command):
    if command == "nll":
        return [{"text": t} for t in TEXTS], [distribution.nll(t) for t in TEXTS]
    if command == "cond-nll":
        rows = [{"prompt": p, "response": r} for p, r in CONDITIONALS]
        return rows, [distribution.cond_nll(p, r) for p, r in CONDITIONALS]
    rows = [{"chosen": c, "rejected": r} | ({"prompt": p} if p else {}) for p, c, r in PAIRS]
    truths = [distribution.cond_nll(p or "", r) - distribution.cond_nll(p or "", c) for p, c, r in PAIRS]
    return rows, truths


@pytest.mark.parametrize("command", ["nll", "cond-nll", "ratio"])
def test_exact_estimator_equals_the_true_value(oracle_dir, distribution, tmp_path, command):
    rows, truths = _truths(distribution, command)
    results = _run(oracle_dir, tmp_path, command, rows, "--estimator", "exact")
    key = "log_ratio" if command == "ratio" else "nll"
    for result, truth in zip(results, truths, strict=True):
        assert result[key] == pytest.approx(truth, abs=1e-5)


@pytest.mark.parametrize("independent", [False, True])
@pytest.mark.parametrize("estimator", MONTE_CARLO)
@pytest.mark.parametrize("command", ["nll", "cond-nll", "ratio"])
def test_monte_carlo_estimates_land_within_four_standard_errors(
    oracle_dir, distribution, tmp_path, command, estimator, independent
):
    if independent and command != "ratio":
        pytest.skip("--independent is a ratio option")
    rows, truths = _truths(distribution, command)
    options = ["--estimator", estimator.value, "--seed", "11"] + (["--independent"] if independent else [])
    results = _run(oracle_dir, tmp_path, command, rows, *options)
    key = "log_ratio" if command == "ratio" else "nll"
    for result, truth in zip(results, truths, strict=True):
        assert abs(result[key] - truth) <= 4 * result[f"{key}_se"] + 1e-5, result  # float32 log-probs


@pytest.fixture(scope="module")
def oracle_model(oracle_dir):
    return load_model(LoadOptions(str(oracle_dir), trust_remote_code=True))


@pytest.mark.slow
@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_reported_standard_errors_match_the_spread_over_seeds(oracle_model, distribution, estimator):
    texts = ["cadbacb", "dcbadcba", "abc"]  # 127 and 255 masked sets are drawn at -n 64; `abc`'s 7 enumerated
    objects = [(i + 1, {"text": t}) for i, t in enumerate(texts)]
    runs = [list(score(Command.nll, objects, oracle_model, Settings(estimator, 64, seed))) for seed in range(40)]
    for index, text in enumerate(texts):
        values = [run[index]["nll"] for run in runs]
        spread = statistics.stdev(values)
        mean_se = statistics.mean(run[index]["nll_se"] for run in runs)
        if len(text) == 3:  # enumerated: the exact value, the same for every seed
            assert spread == 0 and mean_se == 0 and values[0] == pytest.approx(distribution.nll(text), abs=1e-5)
            continue
        if estimator is Estimator.chain_rule:  # the oracle's conditionals are consistent: every order is exact
            assert spread < 1e-4 and mean_se < 1e-4, (text, spread, mean_se)
            assert statistics.mean(values) == pytest.approx(distribution.nll(text), abs=1e-4)
            continue
        assert 0.7 <= mean_se / spread <= 1.3, (text, spread, mean_se)
        assert abs(statistics.mean(values) - distribution.nll(text)) < 4 * spread / len(values) ** 0.5


def test_a_short_record_at_small_n_is_exact_never_a_wrong_number_with_no_error(oracle_dir, distribution, tmp_path):
    """Issue #20's repro: `nll` of "cab" at -n 8 --seed 9 was 6.522 ± 0 against an exact 5.522."""
    (row,) = _run(oracle_dir, tmp_path, "nll", [{"text": "cab"}], "-n", "8", "--seed", "9")
    assert row["nll_se"] == 0 and row["samples"] == 7  # every one of the 2^3 − 1 masked sets, once
    assert row["nll"] == pytest.approx(distribution.nll("cab"), abs=1e-5)
    for samples in ("8", "12"):  # fewer passes than "abcd"'s 15 masked sets: drawn, with a real error bar
        for seed in range(10):
            (row,) = _run(oracle_dir, tmp_path, "nll", [{"text": "abcd"}], "-n", samples, "--seed", str(seed))
            assert row["nll_se"] > 0 and row["samples"] == int(samples), row
    refused = invoke(["nll", "-", "-m", oracle_dir, "--trust-remote-code", "-n", "6"], stdin='{"text": "cab"}\n')
    assert refused.exit_code == 2 and "--samples must be ≥ 8" in refused.stderr  # below 8 no error bar is honest
    pair = [{"chosen": "abcd", "rejected": "ddda"}]
    (row,) = _run(oracle_dir, tmp_path, "ratio", pair, "-n", "8", "--seed", "9")
    assert row["log_ratio_se"] > 0 and row["samples"] == 8  # 15 masked sets a side: drawn
    (row,) = _run(oracle_dir, tmp_path, "ratio", pair, "-n", "15")
    truth = distribution.nll("ddda") - distribution.nll("abcd")
    assert row["log_ratio_se"] == 0 and row["log_ratio"] == pytest.approx(truth, abs=1e-5)
