"""The Python API's corpus figures and several-model runs, against exact answers (oracle checkpoints)."""

from __future__ import annotations

import doctest
import math
import shutil

import pytest

from itdd_cli import Corpus, NllResult, Scorer, corpus, score_models
from itdd_cli.errors import ArgumentError, ArgumentTypeError, InputError
from itdd_cli.harness import api, api_corpus
from itdd_cli.oracle import OracleDistribution, write_checkpoint

TEXTS = ["abca", "dd", "cadbac", "b"]
LN2 = math.log(2)


def _result(nll, nll_se, tokens, size, words):
    return NllResult(1, nll, nll_se, tokens, nll / tokens, 0.0, 0.0, 8, 1, size, words, 0.0)


def test_corpus_figures_are_ratios_of_sums_and_the_se_adds_in_quadrature():
    results = [_result(6.0, 0.3, 3, 12, 2), _result(2.0, 0.4, 1, 4, 1)]
    total = corpus(results)
    assert isinstance(total, Corpus)
    assert (total.records, total.tokens, total.bytes, total.words) == (2, 4, 16, 3)
    assert total.nll == 8.0 and total.nll_se == pytest.approx(0.5)
    assert total.nll_per_token == 2.0 and total.nll_per_token_se == pytest.approx(0.125)
    assert total.perplexity == pytest.approx(math.exp(2.0))  # token-weighted, not the mean of 2.0 and 2.0 …
    assert total.mean_perplexity == pytest.approx((math.exp(2.0) + math.exp(2.0)) / 2)
    assert total.bits_per_byte == pytest.approx(8 / (16 * LN2)) and total.bits_per_byte_se == pytest.approx(
        0.5 / (16 * LN2))  # fmt: skip
    assert total.word_perplexity == pytest.approx(math.exp(8 / 3))
    skewed = corpus([_result(30.0, 0.0, 10, 10, 1), _result(1.0, 0.0, 1, 1, 1)])  # per text: 3 and 1 nats/token
    assert skewed.nll_per_token == pytest.approx(31 / 11)
    assert skewed.mean_perplexity == pytest.approx((math.exp(3) + math.exp(1)) / 2)  # `evaluate`'s mean


def test_corpus_of_exact_oracle_results_is_the_exact_corpus_nll(oracle_dir, distribution):
    results = Scorer.load(str(oracle_dir), trust_remote_code=True, estimator="exact").nll(TEXTS)
    truth = [distribution.nll(text) for text in TEXTS]
    total = corpus(results)
    tokens = sum(map(len, TEXTS))
    assert total.nll == pytest.approx(sum(truth), abs=1e-5) and total.nll_se == 0.0
    assert total.perplexity == pytest.approx(math.exp(sum(truth) / tokens), rel=1e-5)
    per_text = [math.exp(t / len(x)) for t, x in zip(truth, TEXTS, strict=True)]
    assert total.mean_perplexity == pytest.approx(sum(per_text) / 4, rel=1e-5)
    assert total.bits_per_byte == pytest.approx(sum(truth) / (LN2 * tokens), rel=1e-5)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ([], ArgumentError, "^results is empty"),
        ("abc", ArgumentTypeError, "^results must be a list"),
        ([3], ArgumentTypeError, r"^results\[0\] must be an NllResult or CondNllResult"),
    ],
)
def test_corpus_refuses_what_it_cannot_sum(value, error, message):
    with pytest.raises(error, match=message):
        corpus(value)


@pytest.fixture(scope="module")
def other_oracle(tmp_path_factory):
    distribution = OracleDistribution.random(11)
    return write_checkpoint(tmp_path_factory.mktemp("other"), distribution), distribution


def test_two_models_give_each_exact_nll_and_the_paired_difference(oracle_dir, distribution, other_oracle):
    other_dir, other = other_oracle
    first, second = score_models([str(oracle_dir), str(other_dir)], TEXTS, estimator="exact", trust_remote_code=True)
    a, b = [distribution.nll(t) for t in TEXTS], [other.nll(t) for t in TEXTS]
    assert [r.nll for r in first.results] == pytest.approx(a, abs=1e-5)
    assert [r.nll for r in second.results] == pytest.approx(b, abs=1e-5)
    assert (first.model, first.delta_nll_per_token, second.coupled) == (str(oracle_dir), 0.0, True)
    tokens = [len(t) for t in TEXTS]
    ratio = (sum(b) - sum(a)) / sum(tokens)
    assert second.delta_nll_per_token == pytest.approx(ratio, abs=1e-6)
    residual = sum((y - x - ratio * n) ** 2 for x, y, n in zip(a, b, tokens, strict=True))
    assert second.delta_nll_per_token_se == pytest.approx(math.sqrt(4 / 3 * residual) / sum(tokens), rel=1e-4)
    assert second.delta_bits_per_byte == pytest.approx(ratio / LN2, abs=1e-6)  # one byte per letter
    assert second.corpus.nll == pytest.approx(sum(b), abs=1e-5)


def test_copies_of_a_model_share_draws_so_their_difference_is_zero_with_zero_se(oracle_dir, tmp_path):
    copy = shutil.copytree(oracle_dir, tmp_path / "checkpoint-5")
    first, second = score_models([str(oracle_dir), str(copy)], prompts=["a", "b", "c", "d"], responses=TEXTS,
                                 samples=8, trust_remote_code=True, ids=list("wxyz"))  # fmt: skip
    assert [r.row() for r in first.results] == [r.row() for r in second.results]
    assert first.results[0].nll_se > 0 and [r.id for r in second.results] == list("wxyz")
    assert (second.step, second.delta_nll_per_token, second.delta_nll_per_token_se) == (5, 0.0, 0.0)


@pytest.fixture
def no_load(monkeypatch):
    monkeypatch.setattr(api_corpus, "load_model", lambda options: pytest.fail("a model loaded before the checks"))
    monkeypatch.setattr(api, "load_model", lambda options: pytest.fail("a model loaded before the checks"))


@pytest.mark.parametrize(
    ("models", "arguments", "error", "message"),
    [
        ("demo", {"texts": ["a"]}, ArgumentTypeError, "^models must be a list, one per item, got a single str"),
        ([], {"texts": ["a"]}, ArgumentError, "^models is empty"),
        (["demo", 3], {"texts": ["a"]}, ArgumentTypeError, r"^models\[1\] must be a string or a path, got int$"),
        (["demo", "demo"], {"texts": ["a"]}, ArgumentError, "^model 'demo' is given twice"),
        (["demo"], {}, ArgumentError, "^give texts .scored as nll., or prompts and responses"),
        (["demo"], {"texts": ["a"], "prompts": ["b"]}, ArgumentError, "^give texts"),
        (["demo"], {"texts": "a"}, ArgumentTypeError, "^texts must be a list"),
        (["demo"], {"prompts": ["a"], "responses": ["b", "c"]}, ArgumentError, "^lists of different lengths"),
        (["demo"], {"texts": ["a", "b"], "ids": [1, 1]}, InputError, "duplicate id 1"),
        (["demo"], {"texts": ["a"], "extra": [{"tokens": 1}]}, ArgumentError, "^extra tokens: the output row"),
        (["demo"], {"texts": ["a"], "samples": 0}, ArgumentError, "^samples must be ≥ 8$"),
        (["demo"], {"texts": ["a"], "batch_size": 0}, ArgumentError, "^batch_size '0'"),
        (["demo"], {"texts": ["a"], "dtype": "int8"}, ArgumentError, "^dtype 'int8'"),
        (["demo"], {"texts": ["a"], "sample": 8}, ArgumentError, "^unknown setting 'sample'"),
    ],
)
def test_score_models_checks_every_argument_before_the_first_model_loads(no_load, models, arguments, error,
                                                                          message):  # fmt: skip
    with pytest.raises(error, match=message):
        score_models(models, **arguments)


@pytest.mark.parametrize("module", [api, api_corpus])
def test_the_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
