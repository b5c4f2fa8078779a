"""The estimators' mathematics, against answers known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from itdd_cli.estimators import Estimator, draw_noise, plan_masks, record_generator, summarise
from itdd_cli.estimators.masks import harmonic
from itdd_cli.estimators.stats import _stratified_variance
from tests.support.fakes import uniform_rows


def test_noise_is_stratified_two_draws_per_stratum_and_odd_counts_join_the_last():
    noise = draw_noise(7, 5, torch.Generator().manual_seed(0))
    assert noise.strata.tolist() == [0, 0, 1, 1, 2, 2, 2]
    lows = torch.tensor([0, 0, 2, 2, 4, 4, 4]) / 7
    highs = torch.tensor([2, 2, 4, 4, 7, 7, 7]) / 7
    assert bool(((noise.u >= lows) & (noise.u < highs)).all())
    assert noise.keys.shape == (7, 5)


def test_draws_depend_only_on_seed_and_token_ids():
    first = draw_noise(8, 4, record_generator(3, [5, 6, 7], [1]))
    again = draw_noise(8, 4, record_generator(3, [5, 6, 7], [1]))
    other_seed = draw_noise(8, 4, record_generator(4, [5, 6, 7], [1]))
    other_ids = draw_noise(8, 4, record_generator(3, [5, 6, 8], [1]))
    assert torch.equal(first.u, again.u) and torch.equal(first.keys, again.keys)
    assert not torch.equal(first.u, other_seed.u)
    assert not torch.equal(first.u, other_ids.u)


@pytest.mark.parametrize("length", [1, 2, 5, 9])
def test_stratified_counts_are_uniform_over_one_to_length_and_include_the_fully_masked_case(length):
    noise = draw_noise(length * 400, length, torch.Generator().manual_seed(1))
    plan = plan_masks(Estimator.stratified, noise, length)
    counts = plan.masks.sum(1)
    assert torch.equal(torch.bincount(counts, minlength=length + 1)[1:], torch.full((length,), 400))
    assert torch.allclose(plan.weights, length / counts.double())


def test_time_free_counts_follow_one_over_l_harmonic():
    length, draws = 6, 60000
    noise = draw_noise(draws, length, torch.Generator().manual_seed(2))
    plan = plan_masks(Estimator.time_free, noise, length)
    observed = torch.bincount(plan.masks.sum(1), minlength=length + 1)[1:].double() / draws
    expected = torch.tensor([1 / (k * harmonic(length)) for k in range(1, length + 1)], dtype=torch.float64)
    assert torch.allclose(observed, expected, atol=2e-3)  # stratified u: nearly exact frequencies
    assert torch.allclose(plan.weights, torch.full((draws,), harmonic(length), dtype=torch.float64))


def test_time_integral_draws_a_nonempty_bernoulli_mask_with_the_counts_weights_of_the_identity():
    """Σ_k (1/k)·E_{|M|=k}[loss] needs E[weight · 1{|M| = k}] = 1/k and M uniform given its count."""
    length, draws = 6, 200000
    noise = draw_noise(draws, length, torch.Generator().manual_seed(3))
    plan = plan_masks(Estimator.time_integral, noise, length)
    counts = plan.masks.sum(1)
    assert counts.min() >= 1 and plan.weights.max() <= length  # bounded: a finite variance
    for k in range(1, length + 1):
        assert (plan.weights * (counts == k)).mean().item() == pytest.approx(1 / k, rel=0.02)
    per_position = (plan.weights[:, None] * plan.masks).mean(0)
    assert torch.allclose(per_position, torch.ones(length, dtype=torch.float64), atol=0.02)
    small = noise.u < 0.05  # at a low rate, a Bernoulli(u) mask conditioned on |M| ≥ 1 masks one position mostly
    assert (counts[small] == 1).double().mean() > 0.85


def test_exact_enumerates_every_nonempty_subset_once_with_weights_one_over_l_binomial():
    plan = plan_masks(Estimator.exact, None, 4)
    assert plan.masks.shape == (15, 4) and plan.strata is None
    assert len({tuple(row.tolist()) for row in plan.masks}) == 15
    counts = plan.masks.sum(1)
    expected = torch.tensor([1 / (int(c) * math.comb(4, int(c))) for c in counts], dtype=torch.float64)
    assert torch.allclose(plan.weights, expected)


def test_exact_refuses_sequences_above_its_limit():
    with pytest.raises(ValueError, match="limited to 16"):
        plan_masks(Estimator.exact, None, 17)


def test_stratified_standard_error_is_the_within_stratum_formula():
    values = torch.tensor([1.0, 3.0, 2.0, 6.0, 4.0, 4.0, 7.0], dtype=torch.float64)
    strata = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    estimate = summarise(values, strata)
    variance = (2 * 2.0 + 2 * 8.0 + 3 * 3.0) / 49  # Σ n_h s_h² / n²
    assert estimate.value == pytest.approx(values.mean().item())
    assert _stratified_variance(values, strata) == pytest.approx(variance)
    # ν = 7 values − 3 strata = 4 degrees of freedom: error/SE has variance ν/(ν − 2) = 2, so the SE is scaled,
    # for strata and for fewer than 16 whole orders (scale=False) alike
    assert estimate.se == pytest.approx(math.sqrt(variance * 2))
    assert summarise(values, strata, scale=False).se == pytest.approx(math.sqrt(variance * 2))
    many = torch.arange(40, dtype=torch.float64) % 7  # 40 whole orders, one stratum: ν = 39, no scaling either way
    assert summarise(many, torch.zeros(40, dtype=torch.long), scale=False).se == pytest.approx(
        math.sqrt(_stratified_variance(many, torch.zeros(40, dtype=torch.long))))


@pytest.mark.parametrize("batch_rows", [1, 7, None])
def test_stratified_estimate_is_exact_for_uniform_logits_at_any_batch_size(batch_rows):
    texts = ["hello", "a", "masked diffusion"]
    for row, text in zip(uniform_rows(Estimator.stratified, texts, batch_rows=batch_rows), texts, strict=True):
        assert row["nll"] == pytest.approx(len(text) * math.log(50), rel=1e-6)
        assert row["nll_se"] == pytest.approx(0.0, abs=1e-5)  # every draw equals L·log V


def test_exact_estimator_gives_length_times_log_v_for_uniform_logits():
    for row in uniform_rows(Estimator.exact, ["abcdefgh", "xy"]):
        assert row["nll"] == pytest.approx(row["tokens"] * math.log(50), rel=1e-6)
        assert row["nll_se"] == 0.0


@pytest.mark.parametrize("estimator", [Estimator.time_free, Estimator.time_integral])
def test_time_free_and_time_integral_are_right_in_expectation_for_uniform_logits(estimator):
    """Each draw varies (H_L·l·log V, or |M|·log V / λ) but the mean is L·log V."""
    text = "twelve chars"
    truth = len(text) * math.log(50)
    estimates = [uniform_rows(estimator, [text], samples=64, seed=seed)[0] for seed in range(40)]
    values = torch.tensor([row["nll"] for row in estimates])
    assert values.std() > 0  # draws really vary: this is not the stratified identity
    standard_error_of_mean = math.sqrt(sum(r["nll_se"] ** 2 for r in estimates)) / len(estimates)
    assert abs(values.mean().item() - truth) < 4 * standard_error_of_mean


