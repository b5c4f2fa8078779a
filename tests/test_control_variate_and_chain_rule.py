"""The control variate and the chain rule, against answers known exactly; every estimator from the enum."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
import torch

from itdd_cli.estimators import MONTE_CARLO, Estimator, StandardError
from itdd_cli.estimators.chain_rule import order_masks
from itdd_cli.estimators.control_variate import adjusted_values, covariates, pilot_levels, plan_pilot
from itdd_cli.io.records import Fields, text_record
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.engine import Engine, Job
from itdd_cli.scoring.runner import Command, Settings, prepare, score
from tests.support.fakes import uniform_rows


def test_every_estimator_says_whether_it_is_monte_carlo_its_limit_and_its_error_bar():
    assert [e for e in Estimator if not e.monte_carlo] == [Estimator.exact]
    assert Estimator.exact.max_tokens == 16 and Estimator.exact.standard_error is StandardError.none
    assert all(e.max_tokens is None and e.standard_error is not StandardError.none for e in MONTE_CARLO)
    assert Estimator.chain_rule.standard_error is StandardError.between_orders
    assert Settings().estimator is Estimator.control_variate


@pytest.mark.parametrize(
    ("samples", "length", "levels"), [(128, 20, 4), (32, 20, 3), (128, 3, 2), (10, 9, 1), (8, 9, 0), (3, 9, 0)]
)
def test_pilot_takes_about_two_root_n_passes_never_more_blocks_than_tokens_and_leaves_eight_draws(
    samples, length, levels
):
    assert pilot_levels(samples, length) == levels


def test_no_pilot_is_measured_below_three_positions():
    assert pilot_levels(128, 1) == pilot_levels(128, 2) == 0 < pilot_levels(128, 3)


@pytest.mark.parametrize("length", [3, 5, 8, 13])
def test_each_pilot_level_masks_every_position_exactly_once(length):
    levels = pilot_levels(128, length)
    pilot = plan_pilot(torch.rand(levels, length, generator=torch.Generator().manual_seed(0)), length)
    assert len(pilot.masks) == 2**levels - 1
    for level in range(levels):
        assert torch.equal(pilot.masks[pilot.level == level].sum(0), torch.ones(length, dtype=torch.long))


def test_covariates_interpolate_linearly_in_the_rate_and_stay_constant_below_the_lowest():
    table = torch.tensor([[4.0, 8.0], [2.0, 6.0], [1.0, 0.0]], dtype=torch.float64)  # rates 1, 1/2, 1/4
    rates = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    got = covariates(table, rates, torch.tensor([2, 1]))  # L = 2: rates 1 and 1/2
    assert torch.allclose(got, table[:2])
    wide = torch.cat([table, table], dim=1)  # L = 4: counts 3 (rate 3/4) and 1 (rate 1/4)
    got = covariates(wide, rates, torch.tensor([3, 1]))
    assert torch.allclose(got[0], (wide[0] + wide[1]) / 2) and torch.allclose(got[1], wide[2])
    eight = torch.cat([table] * 4, dim=1)  # L = 8, count 1: rate 1/8 below the lowest measured
    assert torch.allclose(covariates(eight, rates, torch.tensor([1]))[0], eight[2])


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_adjusted_values_average_to_the_plain_values_over_all_subsets_of_a_count(count):
    """The covariate's mean is exact: over every l-subset the correction cancels, whatever the pilot."""
    length, generator = 5, torch.Generator().manual_seed(count)
    table = torch.rand(3, length, generator=generator, dtype=torch.float64) * 3
    rates = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    masks = torch.stack([torch.isin(torch.arange(length), torch.tensor(s)) for s in
                         itertools.combinations(range(length), count)])  # fmt: skip
    losses = torch.rand(masks.shape, generator=generator, dtype=torch.float64) * masks
    weights = torch.full((len(masks),), length / count, dtype=torch.float64)
    adjusted = adjusted_values(table, rates, masks, weights, losses)
    assert adjusted.mean().item() == pytest.approx((weights * losses.sum(1)).mean().item(), rel=1e-12)


@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_every_estimator_is_right_in_expectation_for_uniform_logits(estimator):
    text = "twelve chars"
    truth = len(text) * math.log(50)
    rows = [uniform_rows(estimator, [text], samples=48, seed=seed)[0] for seed in range(40)]
    values = torch.tensor([row["nll"] for row in rows], dtype=torch.float64)
    standard_error_of_mean = math.sqrt(sum(r["nll_se"] ** 2 for r in rows)) / len(rows)
    assert abs(values.mean().item() - truth) <= 4 * standard_error_of_mean + 1e-4
    assert all(row["samples"] == 48 for row in rows)


@pytest.mark.parametrize("estimator", [Estimator.control_variate, Estimator.chain_rule])
@pytest.mark.parametrize("batch_rows", [1, 7, None])
def test_control_variate_and_chain_rule_are_exact_for_uniform_logits_at_any_batch_size(estimator, batch_rows):
    """Uniform logits: the covariate equals the loss, and every chain step costs log V."""
    texts = ["hello", "a", "masked diffusion"]
    for row, text in zip(uniform_rows(estimator, texts, batch_rows=batch_rows), texts, strict=True):
        assert row["nll"] == pytest.approx(len(text) * math.log(50), rel=1e-6)
        assert row["nll_se"] == pytest.approx(0.0, abs=1e-4)


def test_chain_rule_passes_mask_the_rest_of_the_order_and_score_one_position():
    keys = torch.tensor([[0.3, 0.1, 0.9, 0.5]], dtype=torch.float64)  # ranks 1, 0, 3, 2
    masks, scored = order_masks(keys, 4)
    assert masks.sum(1).tolist() == [1, 2, 3, 4]
    assert scored.sum(1).tolist() == [1, 1, 1, 1]
    assert bool((scored <= masks).all())
    assert scored.nonzero()[:, 1].tolist() == [1, 0, 3, 2]


@pytest.fixture(scope="module")
def oracle_model(oracle_dir):
    return load_model(LoadOptions(str(oracle_dir), trust_remote_code=True))


@pytest.mark.parametrize("text", ["abcd", "dca", "badcb"])
def test_every_order_of_the_chain_rule_gives_the_exact_nll_on_the_oracle(oracle_model, distribution, text):
    length = len(text)
    prepared = prepare(oracle_model, text_record({"text": text}, 1, Fields()),
                       Settings())  # fmt: skip
    framed = prepared.framed[0]
    orders = list(itertools.permutations(range(length)))
    keys = torch.tensor(orders, dtype=torch.float64)  # key = rank: each row realises one order
    masks, scored = order_masks(keys, length)
    [(_, [losses])] = list(
        Engine(oracle_model).run([(0, [Job(torch.tensor(framed.ids), framed.start, masks, scored)])])
    )
    per_order = losses.sum(1).view(len(orders), length).sum(1)
    assert torch.allclose(per_order, torch.full_like(per_order, distribution.nll(text)), atol=2e-5)


def test_control_variate_main_draws_are_the_stratified_draws_and_the_pilot_comes_on_top(oracle_model):
    record = text_record({"text": "abcdabcd"}, 1, Fields())
    variate = prepare(oracle_model, record, Settings(estimator=Estimator.control_variate, samples=32)).draws
    plain = prepare(oracle_model, record, Settings(estimator=Estimator.stratified, samples=32 - 7)).draws
    [variate_plan], [plain_plan] = variate.plans, plain.plans
    assert variate_plan.pilot is not None and len(variate_plan.pilot.masks) == 7
    assert torch.equal(variate_plan.masks[7:], plain_plan.masks)  # the pilot's noise is a stream of its own
    assert len(variate_plan.masks) == 32


@pytest.mark.slow
@pytest.mark.parametrize("estimator", MONTE_CARLO)
@pytest.mark.parametrize("command", [Command.nll, Command.ratio])
def test_every_estimator_is_unbiased_and_calibrated_on_the_oracle_over_many_seeds(
    oracle_model, distribution, estimator, command
):
    if command is Command.nll:
        objects = [(1, {"text": "cadbacb"}), (2, {"text": "dcbadcba"}), (3, {"text": "abc"})]  # `abc`: exact
        truths = [distribution.nll(o["text"]) for _, o in objects]
    else:
        objects = [
            (1, {"chosen": "abcdabcd", "rejected": "abddabcd"}),  # 255 masked sets a side: drawn at -n 64
            (2, {"prompt": "d", "chosen": "abcabca", "rejected": "ab"}),
        ]
        truths = [distribution.cond_nll(o.get("prompt", ""), o["rejected"])
                  - distribution.cond_nll(o.get("prompt", ""), o["chosen"]) for _, o in objects]  # fmt: skip
    key = "log_ratio" if command is Command.ratio else "nll"
    runs = [list(score(command, objects, oracle_model, Settings(estimator=estimator, samples=64, seed=seed)))
            for seed in range(40)]  # fmt: skip
    for index, truth in enumerate(truths):
        values = [run[index][key] for run in runs]
        spread = statistics.stdev(values)
        mean_se = statistics.mean(run[index][f"{key}_se"] for run in runs)
        assert abs(statistics.mean(values) - truth) < 4 * spread / len(values) ** 0.5 + 1e-5
        if spread > 1e-4:  # the chain rule is exact on the oracle: nothing to calibrate
            assert 0.75 <= spread / mean_se <= 1.33, (estimator, index, spread, mean_se)
