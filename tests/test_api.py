"""The Python API returns the command line's numbers, bit for bit, for the same settings."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from itdd_cli import ChoiceResult, Scorer
from itdd_cli.errors import ArgumentError, ArgumentTypeError, InputError, UsageError
from itdd_cli.harness import api as api_module
from tests.support.cli import ERROR_PREFIX, invoke_rows, nll_refusal
from tests.support.jsonl import write_jsonl

TEXTS = ["abca", "dd", "cadbac"]
PROMPTS = ["ab", "d", "c"]
RESPONSES = ["cd", "aab", "adbca"]
CHOICES = [["cd", "ca", "dddd"], ["abcd", "abdd"], ["a", "b", "c", "d"]]
LABELS = [1, "abdd", None]
SETTINGS = {"estimator": "time-free", "samples": 12, "seed": 9, "independent": True}


def _cli(oracle_dir, tmp_path, command, rows, settings, *more):
    options = ["--estimator", settings["estimator"], "-n", settings["samples"], "--seed", settings["seed"], *more]
    if settings.get("independent") and command in ("ratio", "choice"):
        options.append("--independent")
    path = write_jsonl(tmp_path / f"{command}.jsonl", rows)
    return invoke_rows([command, path, "-m", oracle_dir, "--trust-remote-code", *options])


@pytest.fixture(scope="module")
def scorer(oracle_dir):
    return Scorer.load(str(oracle_dir), trust_remote_code=True)


@pytest.mark.parametrize("settings", [{"estimator": "stratified", "samples": 16, "seed": 0}, SETTINGS])
def test_every_method_returns_the_rows_of_the_cli_bit_for_bit(scorer, oracle_dir, tmp_path, settings):
    api = scorer.with_settings(**settings)
    calls = {
        "nll": (api.nll(TEXTS), [{"text": t} for t in TEXTS]),
        "cond-nll": (api.cond_nll(PROMPTS, RESPONSES), [{"prompt": p, "response": r} for p, r in
                                                        zip(PROMPTS, RESPONSES, strict=True)]),  # fmt: skip
        "ratio": (api.ratio(RESPONSES, TEXTS, [None, *PROMPTS[1:]]),
                  [{"chosen": c, "rejected": r} | ({"prompt": p} if p else {}) for c, r, p in
                   zip(RESPONSES, TEXTS, [None, *PROMPTS[1:]], strict=True)]),  # fmt: skip
        "choice": (api.choice(CHOICES, PROMPTS, LABELS),
                   [{"prompt": p, "choices": c, "label": label} for p, c, label in
                    zip(PROMPTS, CHOICES, LABELS, strict=True)]),  # fmt: skip
    }
    for command, (results, rows) in calls.items():
        expected = _cli(oracle_dir, tmp_path, command, rows, settings)
        assert [result.row() for result in results] == expected, command
        assert all(dataclasses.asdict(result)["extra"] == {} for result in results)


def test_choice_results_are_typed_and_an_invalid_item_names_its_position(scorer):
    [result] = scorer.with_settings(estimator="exact").choice([["ab", "cd"]], labels=["cd"])
    assert isinstance(result, ChoiceResult)
    assert result.correct == (result.pred == 1)
    with pytest.raises(InputError) as error:
        scorer.choice([["ab", "cd"], ["ab"]])
    assert error.value.line == 2
    assert "at least 2" in error.value.message


def test_scorer_loads_a_bundled_model_by_name():
    scorer = Scorer.load("demo", samples=8)
    [result] = scorer.cond_nll(["import "], ["os"])
    assert result.tokens >= 1 and result.nll > 0


def test_importing_the_package_loads_neither_torch_nor_transformers():
    code = "import sys, itdd_cli; assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("block", [0, 1])
def test_the_readme_api_examples_run_and_print_what_the_readme_says(block):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Python API.**") : readme.index("## The estimators")]
    start = 0
    for _ in range(block + 1):
        start = section.index("```python\n", start) + len("```python\n")
    end = section.index("```\n", start)
    code, quoted = section[start:end], section[end + 4 :].strip().split("\n\n")[0]
    printed = re.findall(r"`([^`]+)`", quoted)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == printed


@pytest.fixture
def no_load(monkeypatch):
    """Scorer.load's checks must come before the model loads."""
    monkeypatch.setattr(api_module, "load_model", lambda options: pytest.fail("the model loaded before the checks"))


@pytest.mark.parametrize(
    ("argument", "value", "option", "text"),
    [
        ("seed", 2**200, "--seed", str(2**200)),
        ("seed", 1.5, "--seed", "1.5"),
        ("samples", "8", "--samples", "2.5"),  # a number as text: Python passes numbers
        ("samples", 0, "--samples", "0"),
        ("estimator", "foo", "--estimator", "foo"),
        ("dtype", "int8", "--dtype", "int8"),
        ("device", "foo", "--device", "foo"),
        ("max_tokens", 0, "--max-tokens", "0"),
        ("batch_size", 0, "--batch-size", "0"),
    ],
)
def test_a_bad_load_argument_is_the_cli_options_message_before_the_model_loads(no_load, argument, value, option,
                                                                                 text):  # fmt: skip
    with pytest.raises(ArgumentError) as error:
        Scorer.load("demo", **{argument: value})
    assert str(error.value) == nll_refusal(option, text).removeprefix(ERROR_PREFIX).replace(option, argument)
    assert isinstance(error.value, ValueError) and isinstance(error.value, UsageError)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": 1.5}, "seed must be an integer"),
        ({"batch_rows": 0}, "batch_rows '0': expected a positive integer or 'auto'"),
        ({"max_tokens": 0}, "max_tokens must be ≥ 1"),
        ({"samples": True}, "samples must be an integer ≥ 8"),
        ({"target_se": -1}, "target_se must be ≥ 0.0"),
        ({"target_se": float("nan")}, "target_se must be a number ≥ 0.0"),
        ({"context": 5}, "context 5 applies to long rolling only; pass long rolling or drop context"),
        ({"max_samples": 256}, "max_samples caps target_se or until_decided rounds; pass one of them"),
        ({"target_se": 0.1, "max_samples": 8, "samples": 16}, "max_samples 8 is below samples 16; raise it or "
         "lower samples"),
        ({"independent": 1}, "independent must be True or False, got 1"),
        ({"long": "roll"}, "long 'roll': choose one of error, rolling"),
        ({"sample": 8}, "unknown setting 'sample'; choose from estimator, samples, seed, independent, batch_rows, "
         "max_tokens, chat_template, long, context, keep_boundary, strict, target_se, until_decided, max_samples, "
         "per_token, cfg"),
    ],
)
def test_with_settings_refuses_what_the_cli_refuses(scorer, changes, message):
    with pytest.raises(ArgumentError) as error:
        scorer.with_settings(**changes)
    assert str(error.value) == message
    assert scorer.with_settings(seed=2**127 - 1, batch_rows=3, max_tokens=1).settings.seed == 2**127 - 1


def test_the_cli_words_the_combined_rules_as_the_api_does():
    assert nll_refusal("--context", "5") == ERROR_PREFIX + (
        "--context 5 applies to --long rolling only; pass --long rolling or drop --context")
    assert nll_refusal("-n", "16", "--target-se", "0.1", "--max-samples", "8") == ERROR_PREFIX + (
        "--max-samples 8 is below --samples 16; raise it or lower --samples")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.nll("abc"), "texts must be a list, one per item, got a single str 'abc': wrap one item in a "
         "list, [item]"),
        (lambda s: s.cond_nll("ab", ["c", "d"]), "prompts must be a list, one per item, got a single str 'ab': "
         "wrap one item in a list, [item]"),
        (lambda s: s.ratio(["a"], ["b"], prompts="p"), "prompts must be a list, one per item, got a single str "
         "'p': wrap one item in a list, [item]"),
        (lambda s: s.choice(["ab", "cd"]), "choices[0] must be a list of the question's choices, got a single str "
         "'ab': choices is one list per question, e.g. [[' yes', ' no']]"),
        (lambda s: s.choice([["ab", "cd"]], labels="cd"), "labels must be a list, one per item, got a single str "
         "'cd': wrap one item in a list, [item]"),
        (lambda s: s.nll(7), "texts must be a list, got int"),
    ],
)
def test_a_str_where_a_list_of_texts_is_expected_is_a_type_error_not_its_characters(scorer, call, message):
    with pytest.raises(ArgumentTypeError) as error:
        call(scorer)
    assert str(error.value) == message
    assert isinstance(error.value, TypeError) and isinstance(error.value, UsageError)


def test_lists_of_different_lengths_are_one_clear_error(scorer):
    with pytest.raises(ArgumentError, match=r"^lists of different lengths \(prompts 2, responses 1\); give one of "
                                            r"each per item$"):  # fmt: skip
        scorer.cond_nll(["ab", "d"], ["cd"])
    with pytest.raises(ArgumentError, match=r"^lists of different lengths \(choices 1, prompts 1, labels 2\)"):
        scorer.choice([["ab", "cd"]], ["a"], [0, 1])


def test_a_model_is_named_by_a_string_or_a_path(no_load):
    with pytest.raises(ArgumentTypeError, match=r"^model must be a string or a path, got int$"):
        Scorer.load(3)
    with pytest.raises(ArgumentTypeError, match=r"^tokenizer must be a string or a path, got list$"):
        Scorer.load("demo", tokenizer=["tok"])


def test_ids_extra_fields_and_per_token_output_are_the_cli_rows(scorer, oracle_dir, tmp_path):
    api = scorer.with_settings(estimator="stratified", samples=8, per_token=True)
    results = api.nll(TEXTS, ids=["a", 7, "c"], extra=[{"src": "x"}, {"src": [1, 2]}, {"src": None}])
    records = [{"id": i, "text": t, "src": s} for i, t, s in zip(["a", 7, "c"], TEXTS, ["x", [1, 2], None],
                                                                  strict=True)]  # fmt: skip
    path = write_jsonl(tmp_path / "in.jsonl", records)
    rows = invoke_rows(["nll", path, "-m", oracle_dir, "--trust-remote-code", "--estimator", "stratified", "-n", "8",
                        "--per-token", "--keep", "src"])  # fmt: skip
    assert [result.row() for result in results] == rows
    for result, text in zip(results, TEXTS, strict=True):  # the oracle's tokens are its letters
        assert result.token_strings == list(text) and sum(result.token_nll) == pytest.approx(result.nll)
    assert [result.extra["src"] for result in results] == ["x", [1, 2], None]


def test_long_rolling_windows_score_the_exact_conditionals_of_their_cuts(scorer, distribution):
    document = "cadbabcdacbd"  # the oracle's window is 8 letters: cut by hand at context 3
    truth = distribution.nll("cadbabcd") + distribution.cond_nll("bcd", "acbd")
    [result] = scorer.with_settings(estimator="exact", long="rolling", context=3).nll([document])
    assert result.nll == pytest.approx(truth, abs=1e-5) and (result.windows, result.nll_se) == (2, 0.0)
    with pytest.raises(ArgumentError, match="^context 8 leaves no room to score"):
        scorer.with_settings(long="rolling", context=8).nll([document])


def test_target_se_and_until_decided_give_the_cli_rows(scorer, oracle_dir, tmp_path):
    nll = scorer.with_settings(samples=8, target_se=0.05, max_samples=64).nll(TEXTS)
    assert [result.row() for result in nll] == _cli(oracle_dir, tmp_path, "nll", [{"text": t} for t in TEXTS],
                                                     {"estimator": "control-variate", "samples": 8, "seed": 0},
                                                     "--target-se", "0.05", "--max-samples", "64")  # fmt: skip
    assert any(result.samples > 8 for result in nll)
    choice = scorer.with_settings(samples=8, until_decided=0.05).choice(CHOICES, PROMPTS, LABELS)
    rows = [{"prompt": p, "choices": c, "label": label} for p, c, label in zip(PROMPTS, CHOICES, LABELS, strict=True)]
    assert [result.row() for result in choice] == _cli(oracle_dir, tmp_path, "choice", rows, {
        "estimator": "control-variate", "samples": 8, "seed": 0}, "--until-decided", "0.05")  # fmt: skip
    assert all(result.decided is not None for result in choice)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"long": "rolling", "target_se": 0.1}, "long rolling draws a fixed samples per window; it does not combine "
         "with target_se or until_decided"),
        ({"until_decided": 0.05, "estimator": "chain-rule"}, "until_decided plans its looks in passes, which "
         "estimator chain-rule spends in whole orders; choose another estimator"),
        ({"per_token": "yes"}, "per_token must be True or False, got 'yes'"),
        ({"long": "rolling", "context": -1}, "context must be ≥ 0"),
        ({"until_decided": 0.0}, None),
    ],
)
def test_new_load_arguments_are_checked_before_the_model_loads(no_load, arguments, message):
    with pytest.raises(ArgumentError) as error:
        Scorer.load("demo", **arguments)
    assert message is None or str(error.value) == message


def test_the_cli_refuses_rolling_with_target_se_in_the_same_words():
    assert nll_refusal("--long", "rolling", "--target-se", "0.1").removeprefix(ERROR_PREFIX) == (
        "--long rolling draws a fixed --samples per window; it does not combine with --target-se or --until-decided")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.nll(["ab", "cd"], ids=["x", "x"]), InputError, "duplicate id 'x'"),
        (lambda s: s.nll(["ab"], ids=[1.5]), ArgumentTypeError, r"^ids\[0\] must be a string or an integer, got float"),
        (lambda s: s.nll(["ab"], ids=[" "]), ArgumentError, r"^ids\[0\] is an empty id"),
        (lambda s: s.nll(["ab"], ids="x"), ArgumentTypeError, "ids must be a list"),
        (lambda s: s.nll(["ab"], ids=[1, 2]), ArgumentError, r"lists of different lengths \(items 1, ids 2\)"),
        (lambda s: s.nll(["ab"], extra=[{"nll": 1}]), ArgumentError,
         "^extra nll: the output row already has a field of that name$"),
        (lambda s: s.nll(["ab"], extra=[{"extra": 1}]), ArgumentError, "^extra extra: the output row"),
        (lambda s: s.nll(["ab"], extra=["x"]), ArgumentTypeError, r"^extra\[0\] must be a dict of named fields"),
        (lambda s: s.with_settings(per_token=True).ratio(["a"], ["b"]), ArgumentError,
         "^per_token=True is for nll and cond-nll, not ratio"),
    ],
)
def test_misused_ids_extra_and_per_token_are_one_clear_error_before_scoring(scorer, monkeypatch, call, error,
                                                                             message):  # fmt: skip
    monkeypatch.setattr(api_module, "score", lambda *a, **k: pytest.fail("scored before the check"))
    with pytest.raises(error, match=message):
        call(scorer)
