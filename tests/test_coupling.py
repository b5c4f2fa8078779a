"""Coupled draws for the sides of a record: the identity alignment, each side's marginal draws,
unbiasedness and calibration of the coupled difference on the oracle, and the variance it saves."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from itdd_cli.bundled import bundled_path
from itdd_cli.estimators import DEFAULT_ESTIMATOR, MONTE_CARLO, Estimator
from itdd_cli.estimators.coupling import MIN_SHARED, align, key_columns, reference_side, shared_share
from itdd_cli.io.records import Fields
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.models.base import Framed
from itdd_cli.results.rows import SPECS
from itdd_cli.scoring.draws import RecordDraws, run_rounds
from itdd_cli.scoring.engine import Engine
from itdd_cli.scoring.runner import Command, Settings, prepare, score

ROOT = Path(__file__).resolve().parents[1]


def test_identical_sides_pair_every_position_with_itself():
    assert align([5, 6, 7, 5], [5, 6, 7, 5]) == [0, 1, 2, 3]


def test_a_shuffled_side_pairs_every_token_with_the_same_token_of_the_reference():
    reference, shuffled = [10, 11, 12, 13, 11], [12, 11, 13, 11, 10]
    paired = align(reference, shuffled)
    assert [reference[p] for p in paired] == shuffled
    assert sorted(paired) == list(range(5))


def test_a_substituted_token_keeps_the_position_of_the_token_it_replaces():
    assert align([1, 2, 3, 4], [1, 2, 9, 4]) == [0, 1, 2, 3]
    assert align([1, 2, 3, 4, 5], [1, 9, 8, 5]) == [0, 1, 2, 4]  # 9, 8 take 2 and 3 in order; 4 stays alone


def test_an_inserted_token_gets_a_fresh_column_and_the_rest_keep_their_partners():
    columns, count = key_columns([[1, 2, 3], [1, 7, 2, 3]])
    # the longer side is the reference: columns 0–3; the shorter side's 1, 2, 3 take 0, 2, 3
    assert reference_side([[1, 2, 3], [1, 7, 2, 3]]) == 1
    assert columns[1].tolist() == [0, 1, 2, 3] and columns[0].tolist() == [0, 2, 3] and count == 4


@given(st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=12), min_size=2, max_size=4))
def test_every_side_takes_distinct_columns_so_its_keys_stay_iid_uniform(sides):
    columns, count = key_columns(sides)
    assert columns[reference_side(sides)] is not None
    for tokens, own in zip(sides, columns, strict=True):
        if own is None:  # draws alone
            continue
        assert len(own) == len(tokens) and len(set(own.tolist())) == len(tokens)
        assert 0 <= int(own.min()) and int(own.max()) < count


def test_shuffled_sides_mask_the_same_tokens_in_every_draw_and_pilot_pass():
    chosen, rejected = [20, 21, 22, 23, 24, 21], [23, 21, 20, 24, 21, 22]
    framed = [Framed([0, *ids, 1], 1, len(ids)) for ids in (chosen, rejected)]
    draws = RecordDraws([], framed, Settings(samples=32, seed=4))
    plans = draws.plans
    assert plans[0].pilot is not None and len(plans[0].masks) == 32
    for mask_a, mask_b in zip(plans[0].masks, plans[1].masks, strict=True):
        assert Counter(torch.tensor(chosen)[mask_a].tolist()) == Counter(torch.tensor(rejected)[mask_b].tolist())


def _ratio_records(objects):
    return [SPECS[Command.ratio].parse(obj, i + 1, Fields()) for i, obj in enumerate(objects)]


def _log_ratios(model, records, estimator, samples, seeds, independent):
    """(records, seeds) values and SEs of the coupled (or independent) log_ratio."""
    prepared = [prepare(model, record, Settings(estimator, samples, seed, independent)) for record in records
                for seed in range(seeds)]  # fmt: skip
    list(run_rounds(Engine(model), iter(prepared), lambda item: item.draws, adaptive=False))
    found = [item.draws.difference() for item in prepared]
    values = torch.tensor([e.value for e in found], dtype=torch.float64).view(len(records), seeds)
    ses = torch.tensor([e.se for e in found], dtype=torch.float64).view(len(records), seeds)
    return values, ses


@pytest.fixture(scope="module")
def oracle_model(oracle_dir):
    return load_model(LoadOptions(str(oracle_dir), trust_remote_code=True))


def test_coupled_ratios_do_not_depend_on_the_batch_size(oracle_model):
    pairs = [(1, {"prompt": "ab", "chosen": "cdab", "rejected": "dcba"}), (2, {"chosen": "abc", "rejected": "cabdd"})]
    auto = list(score(Command.ratio, pairs, oracle_model, Settings(samples=16, seed=2)))
    single = list(score(Command.ratio, pairs, oracle_model, Settings(samples=16, seed=2, batch_rows=1)))
    assert [row["log_ratio"] for row in auto] == pytest.approx([row["log_ratio"] for row in single], abs=1e-9)


# a shuffle, a substitution next to a shared prefix, and different lengths after a prompt
# long enough (7–8 letters on a side) that -n 64 draws rather than enumerates the 2^L − 1 masked sets
ORACLE_PAIRS = [(None, "abcdabcd", "dbcadbca"), (None, "abcdabcd", "abcdabca"), ("a", "ca", "cabadcb")]


@pytest.mark.slow
@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_the_coupled_log_ratio_is_unbiased_and_its_se_calibrated_on_the_oracle(oracle_model, distribution, estimator):
    seeds = 100
    records = _ratio_records([{"chosen": c, "rejected": r} | ({"prompt": p} if p else {}) for p, c, r in ORACLE_PAIRS])
    values, ses = _log_ratios(oracle_model, records, estimator, 64, seeds, independent=False)
    for (prompt, chosen, rejected), row, se in zip(ORACLE_PAIRS, values, ses, strict=True):
        truth = distribution.cond_nll(prompt or "", rejected) - distribution.cond_nll(prompt or "", chosen)
        spread = float(row.std())
        assert abs(float(row.mean()) - truth) <= 4 * spread / seeds**0.5 + 1e-5, (chosen, rejected)
        if estimator is Estimator.chain_rule:  # exact on the oracle: every order gives −log p (float32 noise)
            assert spread < 1e-5 and float(se.mean()) < 1e-5
            continue
        assert 0.75 <= spread / float(se.mean()) <= 1.33, (chosen, rejected, spread, float(se.mean()))


@pytest.mark.slow
def test_coupling_with_the_default_estimator_is_less_noisy_than_independent_draws_on_shuffled_pairs():
    """The case bench/coupling.py measures: the demo model on held-out sentences against their shuffles."""
    model = load_model(LoadOptions(str(bundled_path("demo"))))
    lines = [json.loads(line) for line in (ROOT / "examples" / "shuffled-pairs.jsonl").read_text().splitlines()]
    pairs = [{"chosen": p["chosen"], "rejected": p["rejected"]} for p in lines
             if 16 <= len(model.encode(p["chosen"])) <= 25][:4]  # fmt: skip
    records = _ratio_records(pairs)
    coupled = _log_ratios(model, records, DEFAULT_ESTIMATOR, 32, 30, independent=False)[0].var(1)
    independent = _log_ratios(model, records, DEFAULT_ESTIMATOR, 32, 30, independent=True)[0].var(1)
    gains = (independent / coupled).tolist()
    assert float(independent.sum()) > 1.2 * float(coupled.sum()), gains  # measured ≈ 1.9× (bench/coupling.py)
    assert statistics.median(gains) > 1.0, gains


@pytest.mark.parametrize("estimator", [Estimator.control_variate, Estimator.chain_rule, Estimator.time_integral])
def test_k_choices_that_permute_the_same_letters_mask_the_same_letters_in_every_pass(oracle_model, estimator):
    choices = ["abcd", "dcba", "bdac"]
    record = SPECS[Command.choice].parse({"prompt": "a", "choices": choices}, 1, Fields())
    plans = prepare(oracle_model, record, Settings(estimator, 14, 0)).draws.plans  # 14 < 2^4 − 1: drawn
    letters = [list(choice) for choice in choices]
    for row in range(len(plans[0].masks)):
        masked = [Counter(c for c, m in zip(word, plan.masks[row].tolist(), strict=True) if m) for word, plan in
                  zip(letters, plans, strict=True)]  # fmt: skip
        assert masked[0] == masked[1] == masked[2]


def test_a_side_sharing_under_half_its_tokens_draws_alone_as_under_independent():
    assert shared_share([1, 2, 3, 4], [1, 9, 9, 9]) == 0.25 < MIN_SHARED <= shared_share([1, 2, 3, 4], [4, 9, 9, 1])
    framed = [Framed([0, *ids, 1], 1, len(ids)) for ids in ([20, 21, 22, 23], [20, 30, 31, 32])]
    coupled = RecordDraws([], framed, Settings(samples=32, seed=4)).plans
    independent = RecordDraws([], framed, Settings(samples=32, seed=4, independent=True)).plans
    assert torch.equal(coupled[1].masks, independent[1].masks)
    assert key_columns([[20, 21, 22, 23], [20, 30, 31, 32]])[0][1] is None
