"""Honest error bars at small -n (issue #20): on the oracle, whose exact answer is known, a row is
either exact (every masked set enumerated, SE 0, the true value) or a Monte Carlo estimate whose
error divided by its SE has a spread near 1 and rarely passes 3 — never an SE of 0 on a wrong number.

The draws run in-process (`tests.support.oracle_draws`: the runner's `RecordDraws` with the engine replaced
by the oracle's exact conditionals), so 200 seeds per setting take seconds.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from itdd_cli.core.settings import Settings
from itdd_cli.estimators import MONTE_CARLO, Estimator
from itdd_cli.estimators.stats import summarise
from itdd_cli.oracle import OracleDistribution
from tests.support.oracle_draws import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS = 200
ROUNDING = 1e-9  # the table is float64: an estimate this close to the truth is the truth


@pytest.fixture(scope="module")
def examples_distribution():
    """The distribution `scripts/make_oracle.py` wrote the examples from (its default seed, 0)."""
    distribution = OracleDistribution.random(0)
    for line in (EXAMPLES / "oracle-nll.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert distribution.nll(row["text"]) == pytest.approx(row["true_nll"], abs=1e-9)
    return distribution


def _extremes():
    texts = [json.loads(line)["text"] for line in (EXAMPLES / "oracle-nll.jsonl").read_text().splitlines()]
    return [min(texts, key=len), max(texts, key=len)]


def z_scores(distribution, text, estimator, samples):
    """Error / SE over SEEDS seeds; exact rows are checked (true value, 2^L − 1 passes) and left out."""
    truth = distribution.nll(text)
    scores = []
    for seed in range(SEEDS):
        draws = run(distribution, "", [text], Settings(estimator, samples, seed))
        estimate, error = draws.estimates()[0], draws.estimates()[0].value - truth
        if draws.tallies[0].exact:
            assert estimate.se == 0 and abs(error) < ROUNDING and draws.passes == 2 ** len(text) - 1
            continue
        assert estimate.se > 0 or abs(error) < ROUNDING, (seed, estimate)  # never ± 0 on a wrong number
        if abs(error) < ROUNDING:  # the chain rule's whole orders on consistent conditionals: each is exact
            continue
        scores.append(error / estimate.se)
    return scores


@pytest.mark.slow
@pytest.mark.parametrize("samples", [8, 16, 32])
@pytest.mark.parametrize("estimator", MONTE_CARLO)
@pytest.mark.parametrize("which", ["shortest", "longest"])
def test_error_over_se_has_unit_spread_and_light_tails_at_small_n(examples_distribution, which, estimator, samples):
    text = _extremes()[0 if which == "shortest" else 1]
    scores = z_scores(examples_distribution, text, estimator, samples)
    if not scores:  # every row exact (the 1-token record; whole orders of the chain rule)
        return
    spread = math.sqrt(statistics.fmean(z * z for z in scores))
    beyond = sum(abs(z) > 3 for z in scores) / len(scores)
    print(f"{text} {estimator.value} -n {samples}: rms z {spread:.2f}, |z| > 3 for {beyond:.1%} of {len(scores)}")
    assert len(scores) == SEEDS
    assert 0.8 <= spread <= 1.25 and beyond <= 0.03, (spread, beyond)


@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_a_record_whose_masked_sets_fit_the_budget_is_enumerated_exactly(examples_distribution, estimator):
    for text in ["b", "cab", "abcd"]:
        masks = 2 ** len(text) - 1
        draws = run(examples_distribution, "", [text], Settings(estimator, masks, seed=5))
        estimate = draws.estimates()[0]
        assert draws.tallies[0].exact and draws.passes == masks and estimate.se == 0
        assert estimate.value == pytest.approx(examples_distribution.nll(text), abs=ROUNDING)
        if masks > 2:  # one pass short: drawn, with an error bar
            short = run(examples_distribution, "", [text], Settings(estimator, masks - 1, seed=5))
            assert not short.tallies[0].exact and short.passes <= masks - 1  # whole orders may leave some


def test_an_enumerated_record_takes_no_second_round_of_target_se(examples_distribution):
    settings = Settings(Estimator.control_variate, 8, 0, target_se=1e-9, max_samples=64)
    draws = run(examples_distribution, "", ["cab"], settings)
    assert draws.tallies[0].exact and draws.passes == 7 and draws.round == 0


@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_coupled_pairs_never_report_a_zero_se_on_a_wrong_log_ratio(examples_distribution, estimator):
    rows = [json.loads(line) for line in (EXAMPLES / "oracle-pairs.jsonl").read_text().splitlines()]
    for row in rows:
        for samples in (4, 8):
            for seed in range(40):
                sides = [row["chosen"], row["rejected"]]
                draws = run(examples_distribution, row.get("prompt", ""), sides, Settings(estimator, samples, seed))
                log_ratio = draws.difference()
                error = log_ratio.value - row["true_log_ratio"]
                # an SE, or NaN (the runner refuses: draws that all agree) — never 0 on a wrong number
                assert log_ratio.se != 0 or abs(error) < ROUNDING, (row["id"], samples, seed, log_ratio)


def test_draws_that_disagree_never_give_an_se_of_zero():
    import torch

    # two strata, each drawing one mask twice: the old within-stratum SE was 0
    values = torch.tensor([1.0, 1.0, 3.0, 3.0], dtype=torch.float64)
    assert summarise(values, torch.tensor([0, 0, 1, 1])).se > 0
    # two draws of one mask: nothing to measure an error by
    assert math.isnan(summarise(torch.tensor([2.0, 2.0], dtype=torch.float64), torch.tensor([0, 0])).se)
    assert math.isnan(summarise(torch.full((6,), 2.0, dtype=torch.float64), torch.arange(6) // 2).se)
    # eight or more agreeing draws across strata: a flat integrand (a uniform model), exact
    assert summarise(torch.full((8,), 2.0, dtype=torch.float64), torch.arange(8) // 2).se == 0
