"""A record's numbers depend only on (seed, its token ids): not batch size, order or neighbours."""

from __future__ import annotations

import random
import statistics

import pytest

from itdd_cli.estimators import Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.cli import invoke_rows
from tests.support.jsonl import write_jsonl

ROWS = [{"id": f"r{i}", "text": t} for i, t in enumerate(["abcd", "d", "cabbad", "dd", "abcdabcd", "bca", "cc"])]


def _score_file(oracle_dir, path, *options):
    args = ["nll", str(path), "-m", str(oracle_dir), "--trust-remote-code", "-n", "16", *options]
    return {row["id"]: row for row in invoke_rows(args)}


def test_same_numbers_at_batch_size_one_auto_and_a_small_token_budget(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    auto = _score_file(oracle_dir, path)
    assert auto == _score_file(oracle_dir, path, "--batch-size", "1")
    assert auto == _score_file(oracle_dir, path, "--max-tokens", "20")


def test_same_numbers_when_the_input_lines_are_shuffled(oracle_dir, tmp_path):
    shuffled = ROWS[:]
    random.Random(5).shuffle(shuffled)
    original = _score_file(oracle_dir, write_jsonl(tmp_path / "a.jsonl", ROWS))
    reordered = _score_file(oracle_dir, write_jsonl(tmp_path / "b.jsonl", shuffled))
    assert original == reordered
    assert list(reordered) == [row["id"] for row in shuffled]  # output follows input order


def test_a_different_seed_gives_different_draws(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", ROWS)
    seed_0, seed_1 = _score_file(oracle_dir, path), _score_file(oracle_dir, path, "--seed", "1")
    assert seed_0["r4"]["nll"] != seed_1["r4"]["nll"]  # 8 tokens: 255 masked sets, drawn at -n 16
    assert seed_0["r0"]["nll"] == seed_1["r0"]["nll"]  # 4 tokens: 15 masked sets ≤ 16, enumerated


@pytest.fixture(scope="module")
def oracle_model(oracle_dir):
    return load_model(LoadOptions(str(oracle_dir), trust_remote_code=True))


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [Estimator.stratified, Estimator.time_free, Estimator.time_integral])
def test_coupling_reduces_the_variance_of_ratios_of_similar_pairs(oracle_model, estimator):
    """Pairs that differ in one letter share most of their loss; coupled masks cancel it."""
    # 2^L − 1 = 63 and 255 masked sets: drawn, not enumerated, at -n 32
    pairs = [(1, {"prompt": "ab", "chosen": "cadbcd", "rejected": "cabbcd"}),
             (2, {"chosen": "dcbadcba", "rejected": "dcbcdcba"})]
    spreads = {}
    for independent in (False, True):
        settings = [Settings(estimator, 32, seed, independent) for seed in range(30)]
        runs = [list(score(Command.ratio, pairs, oracle_model, s)) for s in settings]
        spreads[independent] = [statistics.stdev(run[i]["log_ratio"] for run in runs) for i in range(len(pairs))]
    for coupled, independent in zip(spreads[False], spreads[True], strict=True):
        assert coupled < independent
