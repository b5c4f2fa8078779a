"""--target-se / --until-decided: rounds until precise (or decided), capped, deterministic per record."""

from __future__ import annotations

import pytest

from itdd_cli.estimators import MONTE_CARLO, Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.cli import invoke
from tests.support.jsonl import read_jsonl, write_jsonl

TEXTS = ["abcdabcd", "d", "cabbad", "ddcbaabc", "bca", "cadbacbd"]
PAIRS = [("ab", "cadb", "cabb"), (None, "dcbadc", "aaaaaa"), ("c", "abca", "abda"), (None, "bacd", "bacdd")]


@pytest.fixture(scope="module")
def oracle_model(oracle_dir):
    return load_model(LoadOptions(str(oracle_dir), trust_remote_code=True))


def _nll(model, texts, **settings):
    objects = [(i + 1, {"text": t}) for i, t in enumerate(texts)]
    return list(score(Command.nll, objects, model, Settings(**settings)))


@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_every_row_reaches_the_target_se_or_spends_max_samples(oracle_model, estimator):
    rows = _nll(oracle_model, TEXTS, estimator=estimator, samples=16, target_se=0.15, max_samples=160)
    for row in rows:
        assert row["nll_se"] <= 0.15 or row["samples"] == 160, row
        assert row["samples"] <= 160
    if estimator is not Estimator.chain_rule:  # exact on the oracle after one round
        assert any(row["samples"] > 16 for row in rows)  # rounds really ran


def test_a_record_gets_the_same_numbers_alone_in_a_batch_and_with_neighbours_that_stop_elsewhere(oracle_model):
    settings = dict(samples=16, target_se=0.1, max_samples=200, seed=3)
    together = _nll(oracle_model, TEXTS, **settings)
    one_by_one = [_nll(oracle_model, [text], batch_rows=1, **settings)[0] for text in TEXTS]
    reversed_order = _nll(oracle_model, TEXTS[::-1], max_tokens=37, **settings)[::-1]
    rounds_used = {row["samples"] for row in together}
    assert len(rounds_used) > 1  # the records really stopped in different rounds
    for a, b, c in zip(together, one_by_one, reversed_order, strict=True):
        assert {k: a[k] for k in ("nll", "nll_se", "samples")} == {k: b[k] for k in ("nll", "nll_se", "samples")}
        assert (a["nll"], a["samples"]) == (c["nll"], c["samples"])


def test_first_round_alone_equals_a_plain_run(oracle_model):
    plain = _nll(oracle_model, TEXTS, samples=32)
    loose = _nll(oracle_model, TEXTS, samples=32, target_se=100.0)
    assert plain == loose


@pytest.mark.parametrize("estimator", [Estimator.control_variate, Estimator.stratified])
def test_until_decided_stops_each_pair_once_decided_or_at_the_cap(oracle_model, estimator, distribution):
    objects = [
        (i + 1, ({"prompt": p} if p else {}) | {"chosen": c, "rejected": r}) for i, (p, c, r) in enumerate(PAIRS)
    ]
    settings = Settings(estimator=estimator, samples=8, until_decided=0.05, max_samples=128)
    rows = list(score(Command.ratio, objects, oracle_model, settings))
    for row, (prompt, chosen, rejected) in zip(rows, PAIRS, strict=True):
        assert row["decided"] or row["samples"] == 128, row
        truth = distribution.cond_nll(prompt or "", rejected) - distribution.cond_nll(prompt or "", chosen)
        if row["decided"]:  # the decided preference is the true one (each at most α = 0.05 wrong)
            assert (row["log_ratio"] > 0) == (truth > 0), (row, truth)
    assert any(row["decided"] for row in rows)


def _cli(oracle_dir, tmp_path, *options):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    args = ["nll", str(path), "-m", str(oracle_dir), "--trust-remote-code", "--format", "jsonl", *options]
    return invoke(args)


def test_the_cli_says_how_many_records_hit_the_cap_and_counts_every_pass(oracle_dir, tmp_path):
    result = _cli(oracle_dir, tmp_path, "-n", "8", "--target-se", "0.0001", "--max-samples", "24",
                  "--estimator", "stratified")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    capped = sum(row["nll_se"] > 0.0001 for row in rows)
    assert capped > 0 and all(row["samples"] == 24 for row in rows if row["nll_se"] > 0.0001)
    assert f"{capped} record(s) stopped at --max-samples 24" in result.stderr
    assert f"forward passes {sum(row['samples'] for row in rows)} in all" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [(["-n", "64", "--target-se", "0.1", "--max-samples", "32"], "below --samples"),
     (["--max-samples", "256"], "--target-se or --until-decided")],
)  # fmt: skip
def test_inconsistent_round_options_are_usage_errors(oracle_dir, tmp_path, options, message):
    result = _cli(oracle_dir, tmp_path, *options)
    assert result.exit_code == 2 and message in result.stderr


def test_a_target_se_smaller_than_any_float_can_reach_spends_the_cap_without_overflow(oracle_dir, tmp_path):
    result = _cli(oracle_dir, tmp_path, "-n", "8", "--target-se", "1e-300", "--max-samples", "24")
    assert result.exit_code == 0, result.stderr
    for row in read_jsonl(result.stdout):  # enumerated rows (≤ 3 tokens at -n 8) are exact and stop at once
        assert row["samples"] == 24 or (row["nll_se"] == 0 and row["samples"] == 2 ** row["tokens"] - 1), row
