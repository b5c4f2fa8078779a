"""The estimator table: every member has an entry, test data here, and a planner whose masks
and weights satisfy the identity every estimator stands on, checked against its exact coefficients."""

from __future__ import annotations

import math

import pytest
import torch

from itdd_cli.estimators import Estimator, StandardError, draw_noise
from itdd_cli.estimators.kinds import ESTIMATORS
from itdd_cli.estimators.masks import planner

# What each estimator must say about itself: (Monte Carlo, most scored tokens, error bar, pilot,
# strata per variance group). A new member fails `test_every_estimator_has_an_entry_and_test_data`
# until its line is here.
PROPERTIES = {
    Estimator.control_variate: (True, None, StandardError.stratum_pairs, True, 4),
    Estimator.chain_rule: (True, None, StandardError.between_orders, False, 4),
    Estimator.stratified: (True, None, StandardError.stratum_pairs, False, 4),
    Estimator.time_free: (True, None, StandardError.stratum_pairs, False, 2),
    Estimator.time_integral: (True, None, StandardError.stratum_pairs, False, 4),
    Estimator.exact: (False, 16, StandardError.none, False, 4),
    Estimator.dse: (True, None, StandardError.stratum_pairs, False, 4),  # t in strata; tests/test_sedd.py
}
LENGTH = 4
DRAWS = 60_000


def test_every_estimator_has_an_entry_and_test_data():
    assert set(ESTIMATORS) == set(Estimator) == set(PROPERTIES)
    for estimator in Estimator:
        said = (estimator.monte_carlo, estimator.max_tokens, estimator.standard_error, estimator.uses_pilot,
                estimator.strata_per_group)  # fmt: skip
        assert said == PROPERTIES[estimator], estimator
        assert estimator.spec.advice.strip(), estimator


def _coefficients(masks, scored, weights, value_of):
    """For every masked set S and position i ∈ S: the mean over values of Σ_passes w·1{M = S, i scored},
    with its standard error (0 for a single value, an exact sum)."""
    code = (masks.long() * 2 ** torch.arange(LENGTH)).sum(1)
    values = int(value_of.max()) + 1
    got = {}
    for subset in range(1, 2**LENGTH):
        for i in (i for i in range(LENGTH) if subset >> i & 1):
            per_pass = weights * ((code == subset) & scored[:, i])
            per_value = torch.zeros(values, dtype=torch.float64).index_add_(0, value_of, per_pass)
            se = per_value.std().item() / math.sqrt(values) if values > 1 else 0.0
            got[subset, i] = (per_value.mean().item(), se)
    return got


def _check_identity(got):
    """−log p = Σ_S 1/(|S|·C(L,|S|)) Σ_{i∈S} loss_i(S): each (S, i) must carry exactly that weight on average."""
    for (subset, i), (mean, se) in got.items():
        size = bin(subset).count("1")
        truth = 1 / (size * math.comb(LENGTH, size))
        assert abs(mean - truth) <= 5 * se + 1e-12, (subset, i, mean, truth, se)


@pytest.mark.parametrize("estimator", [e for e in Estimator if e.spec.planner is not None])
def test_each_planner_weighs_every_masked_set_and_scored_position_as_the_identity_does(estimator):
    noise = draw_noise(DRAWS, LENGTH, torch.Generator().manual_seed(5)) if estimator.monte_carlo else None
    plan = planner(estimator.spec.planner)(noise, LENGTH)
    scored = plan.masks if plan.scored is None else plan.scored
    assert bool((scored <= plan.masks).all())  # a pass scores only positions it masks
    rows = len(plan.masks)
    value_of = torch.arange(rows) if estimator.monte_carlo else torch.zeros(rows, dtype=torch.long)  # exact: one sum
    _check_identity(_coefficients(plan.masks, scored, plan.weights, value_of))


@pytest.mark.parametrize("estimator", [e for e in Estimator if e.spec.orders is not None])
def test_each_planner_of_whole_orders_weighs_every_step_as_the_identity_does(estimator):
    orders = DRAWS // LENGTH
    keys = torch.rand(orders, LENGTH, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    masks, scored = planner(estimator.spec.orders)(keys, LENGTH)
    ones = torch.ones(len(masks), dtype=torch.float64)
    _check_identity(_coefficients(masks, scored, ones, torch.arange(orders).repeat_interleave(LENGTH)))
