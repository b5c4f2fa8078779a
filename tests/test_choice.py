"""`itdd choice` on the exact-conditional oracle: values known in closed form, coupling, bad input, files."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from tests.support.cli import invoke, invoke_rows
from tests.support.jsonl import read_jsonl, write_jsonl

CHOICE_FIELDS = ["id", "pred", "pred_norm", "label", "logliks", "logliks_se", "margin", "margin_se", "tokens", "bytes",
                 "correct", "correct_norm", "samples", "decided", "passes"]  # fmt: skip
QUESTIONS = [("ab", ["cd", "ca", "dddd"]), (None, ["abcd", "abdd"]), ("c", ["ab", "bcd", "aaa", "dc"]),
             ("dcb", ["a", "abca"]), ("a", ["bbbb", "bcda", "cdab"])]  # fmt: skip



@pytest.fixture
def base(oracle_dir):
    return ["-m", oracle_dir, "--trust-remote-code"]


def _true_logliks(distribution, prompt, choices):
    return [-distribution.cond_nll(prompt or "", choice) for choice in choices]


def _records(distribution, label_best=True):
    rows = []
    for prompt, choices in QUESTIONS:
        truths = _true_logliks(distribution, prompt, choices)
        row = {"choices": choices, "label": truths.index(max(truths)) if label_best else 0}
        rows.append(row | ({"prompt": prompt} if prompt else {}))
    return rows


def _choice(base, tmp_path, rows, *options):
    return invoke_rows(["choice", write_jsonl(tmp_path / "in.jsonl", rows), *base, *options])


def test_exact_logliks_equal_the_closed_form_and_pick_the_most_likely_choice(base, distribution, tmp_path):
    rows = _records(distribution)
    results = _choice(base, tmp_path, rows, "--estimator", "exact")
    assert [list(result) for result in results] == [CHOICE_FIELDS] * len(rows)
    for (prompt, choices), result in zip(QUESTIONS, results, strict=True):
        truths = _true_logliks(distribution, prompt, choices)
        assert result["logliks"] == pytest.approx(truths, abs=1e-5)
        assert result["logliks_se"] == [0.0] * len(choices)
        ranked = sorted(truths, reverse=True)
        assert result["margin"] == pytest.approx(ranked[0] - ranked[1], abs=1e-5)
        assert result["correct"] is True
        per_byte = [value / len(choice) for value, choice in zip(truths, choices, strict=True)]
        assert result["pred_norm"] == per_byte.index(max(per_byte))
        assert result["tokens"] == result["bytes"] == [len(choice) for choice in choices]  # one token per letter


@pytest.mark.parametrize("independent", [False, True])
@pytest.mark.parametrize("estimator", ["stratified", "time-free", "time-integral"])
def test_monte_carlo_logliks_and_margin_land_within_four_standard_errors(base, distribution, tmp_path, estimator,
                                                                        independent):  # fmt: skip
    options = ["--estimator", estimator, "--seed", "11"]  # the settings of test_oracle
    options += (["--independent"] if independent else [])
    results = _choice(base, tmp_path, _records(distribution), *options)
    for (prompt, choices), result in zip(QUESTIONS, results, strict=True):
        truths = _true_logliks(distribution, prompt, choices)
        for value, se, truth in zip(result["logliks"], result["logliks_se"], truths, strict=True):
            assert abs(value - truth) <= 4 * se + 1e-5, (choices, result)
        others = [v for i, v in enumerate(truths) if i != result["pred"]]
        true_margin = truths[result["pred"]] - max(others)
        assert abs(result["margin"] - true_margin) <= 4 * result["margin_se"] + 1e-5, (choices, result)


@pytest.mark.parametrize("independent", [False, True])
def test_two_choices_give_the_margin_and_se_of_ratio_with_the_same_seed(base, tmp_path, independent):
    pairs = [("ab", "cd", "ca"), (None, "abcd", "abdd"), ("c", "aab", "dcba"), ("d", "abca", "ab")]
    options = ["-n", "16", "--seed", "3"] + (["--independent"] if independent else [])
    ratio_rows = [{"chosen": c, "rejected": r} | ({"prompt": p} if p else {}) for p, c, r in pairs]
    ratio = invoke(["ratio", write_jsonl(tmp_path / "r.jsonl", ratio_rows), *base, *options])
    assert ratio.exit_code == 0, ratio.stderr
    choice_rows = [{"choices": [c, r]} | ({"prompt": p} if p else {}) for p, c, r in pairs]
    choice = _choice(base, tmp_path, choice_rows, *options)
    for pair, picked in zip(read_jsonl(ratio.stdout), choice, strict=True):
        assert picked["margin"] == abs(pair["log_ratio"])
        assert picked["margin_se"] == pair["log_ratio_se"]
        assert picked["pred"] == (0 if pair["prefers"] == "chosen" else 1)
        assert picked["logliks"] == [-pair["nll_chosen"], -pair["nll_rejected"]]
        assert picked["samples"] == pair["samples"]


def test_coupling_shrinks_the_margin_error_against_independent_draws(base, tmp_path):
    rows = [{"prompt": "ab", "choices": ["cdab", "cdaa", "cdba"]}, {"choices": ["abcdab", "abcdaa"]}]
    # stratified: with the control variate (the default) coupling still does not shrink the second
    # row's margin SE (0.555 coupled vs 0.283 independent, seed 0): a one-letter substitution whose
    # per-token covariates differ between the sides; bench/coupling.py measures where it helps
    # fewer passes than 2^L − 1 masked sets, so the rows are drawn (at -n 64 both are enumerated,
    # exact); a single seed each: at -n 62 the second row's coupled SE was 0.80 against 0.73
    for row, samples in zip(rows, ("14", "48"), strict=True):
        (tied,) = _choice(base, tmp_path, [row], "-n", samples, "--estimator", "stratified")
        (free,) = _choice(base, tmp_path, [row], "-n", samples, "--independent", "--estimator", "stratified")
        assert 0 < tied["margin_se"] < free["margin_se"]


BAD = [
    ({"prompt": "a"}, "missing field 'choices'"),
    ({"choices": "ab"}, "must be a list of at least 2 strings, got str"),
    ({"choices": ["ab"]}, "must be a list of at least 2 strings, got a list of 1"),
    ({"choices": ["ab", ""]}, "choice 1 of 'choices' must be a non-empty string, got an empty string"),
    ({"choices": ["ab", 3]}, "choice 1 of 'choices' must be a non-empty string, got int"),
    ({"choices": ["ab", "cd"], "label": 2}, "label 2 is out of range"),
    ({"choices": ["ab", "cd"], "label": -1}, "label -1 is out of range"),
    ({"choices": ["ab", "cd"], "label": "dd"}, "label 'dd' is none of the choices"),
    ({"choices": ["ab", "cd"], "label": True}, "must be a choice index or the text of a choice"),
]


@pytest.mark.parametrize(("record", "message"), BAD)
def test_a_bad_choice_record_stops_with_its_line_number_and_exit_3(base, tmp_path, record, message):
    path = write_jsonl(tmp_path / "in.jsonl", [{"choices": ["ab", "cd"]}, record])
    result = invoke(["choice", path, *base, "-n", "8"])
    assert result.exit_code == 3
    assert result.stderr.startswith("itdd: error: line 2: ")
    assert message in result.stderr
    assert len(read_jsonl(result.stdout)) == 1  # the good record before it is written


def test_skip_invalid_passes_over_bad_choice_records(base, tmp_path):
    rows = [{"choices": ["ab", "cd"]}] + [record for record, _ in BAD] + [{"choices": ["a", "b"], "id": "last"}]
    result = invoke(["choice", write_jsonl(tmp_path / "in.jsonl", rows), *base, "-n", "8", "--skip-invalid"])
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == [1, "last"]
    assert result.stderr.count("skipped line") == len(BAD)


def test_label_given_as_text_and_custom_field_names(base, tmp_path):
    rows = [{"q": "ab", "opts": ["cd", "ca"], "gold": "ca", "key": "k1"}]
    options = ["--prompt-field", "q", "--choices-field", "opts", "--label-field", "gold", "--id-field", "key"]
    (labelled,) = _choice(base, tmp_path, rows, "--estimator", "exact", *options)
    (by_index,) = _choice(base, tmp_path, [rows[0] | {"gold": 1}], "--estimator", "exact", *options)
    assert labelled["id"] == "k1"
    assert labelled["correct"] == by_index["correct"] == (labelled["pred"] == 1)


def test_csv_keeps_lists_as_json_cells_and_resume_continues_it_byte_for_byte(base, distribution, tmp_path):
    rows = _records(distribution)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    for suffix in ("csv", "jsonl"):
        full, partial = tmp_path / f"full.{suffix}", tmp_path / f"partial.{suffix}"
        assert invoke(["choice", source, *base, "-n", "8", "-q", "-o", full]).exit_code == 0
        lines = full.read_text().splitlines(keepends=True)
        partial.write_text("".join(lines[:3]) + lines[3][:10])  # two or three rows and a cut-off one
        shutil.copy(f"{full}.meta.json", f"{partial}.meta.json")  # the run's settings record, as an interrupt leaves it
        resumed = invoke(["choice", source, *base, "-n", "8", "-q", "-o", partial, "--resume"])
        assert resumed.exit_code == 0, resumed.stderr
        assert partial.read_bytes() == full.read_bytes()
    table = list(csv.DictReader(io.StringIO((tmp_path / "full.csv").read_text())))
    assert list(table[0]) == CHOICE_FIELDS
    assert [len(json.loads(row["logliks"])) for row in table] == [len(choices) for _, choices in QUESTIONS]


def test_resume_refuses_a_choice_file_of_other_choices(base, tmp_path):
    target = tmp_path / "out.jsonl"
    first = invoke(["choice", "-", *base, "-n", "8", "-q", "-o", target], stdin='{"choices": ["ab", "cd"]}\n')
    assert first.exit_code == 0, first.stderr
    changed = invoke(["choice", "-", *base, "-n", "8", "-o", target, "--resume"], stdin='{"choices": ["ab", "cda"]}\n')
    assert changed.exit_code == 2
    assert "different tokens" in changed.stderr


def test_accuracy_gates_and_the_json_summary(base, distribution, tmp_path):
    wrong = _records(distribution, label_best=False)  # label 0 everywhere: right only where 0 is the best
    source = write_jsonl(tmp_path / "in.jsonl", wrong)
    summary = tmp_path / "summary.json"
    result = invoke(["choice", source, *base, "--estimator", "exact", "--summary", summary,
                     "--fail-below", "accuracy=0.99"])  # fmt: skip
    assert result.exit_code == 4
    assert "accuracy" in result.stderr
    document = json.loads(summary.read_text())
    results = read_jsonl(result.stdout)
    expected = sum(row["pred"] == 0 for row in results) / len(results)
    assert document["accuracy"] == pytest.approx(expected)
    assert document["accuracy_se"] == pytest.approx((expected * (1 - expected) / len(results)) ** 0.5)
    assert document["coupled"] is True
    assert document["undecided"] == 0.0  # exact sums: no decision is in doubt
    passing = invoke(["choice", source, *base, "--estimator", "exact", "--fail-below", f"accuracy_norm={0:g}"])
    assert passing.exit_code == 0, passing.stderr


def test_compare_pairs_choice_files_on_correctness_by_default(base, distribution, tmp_path):
    right = write_jsonl(tmp_path / "right.jsonl", _records(distribution))
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [row | {"label": (row["label"] + 1) % 2} for row in
                                                     _records(distribution)])  # fmt: skip
    outputs = []
    for name, source in (("a.csv", right), ("b.jsonl", wrong)):
        outputs.append(tmp_path / name)
        assert invoke(["choice", source, *base, "--estimator", "exact", "-q", "-o", outputs[-1]]).exit_code == 0
    result = invoke(["compare", *outputs])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("correct, mean over records: base 1 → new 0 over 5 paired records")
    assert invoke(["compare", *outputs, "--fail-if-worse"]).exit_code == 4


def test_text_the_tokenizer_loses_is_named_by_its_choice_and_refused_under_strict(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "say", "choices": ["hello", "hello 日本語", "hi"]}])
    flagged = invoke(["choice", path, "-m", "demo", "-n", "8", "-q"])
    assert flagged.exit_code == 0, flagged.stderr
    assert "line 1: choice 1: the tokenizer has no token for '日本語'" in flagged.stderr
    assert "choice 0:" not in flagged.stderr and "choice 2:" not in flagged.stderr
    assert len(read_jsonl(flagged.stdout)) == 1
    refused = invoke(["choice", path, "-m", "demo", "-n", "8", "-q", "--strict"])
    assert refused.exit_code == 3
    assert "choice 1:" in refused.stderr and "--strict" in refused.stderr


def test_an_empty_prompt_is_no_prompt_not_nothing_to_score(base, distribution, tmp_path):
    choices = ["cd", "ca", "dddd"]
    [row] = _choice(base, tmp_path, [{"prompt": "", "choices": choices}], "--estimator", "exact")
    assert row["logliks"] == pytest.approx(_true_logliks(distribution, None, choices), abs=1e-5)
    result = invoke(["cond-nll", write_jsonl(tmp_path / "cond.jsonl", [{"prompt": "", "response": "cd"}]), *base,
                     "--estimator", "exact"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [row] = read_jsonl(result.stdout)
    assert (row["nll"], row["prompt_tokens"]) == (pytest.approx(distribution.cond_nll("", "cd"), abs=1e-5), 0)
    result = invoke(["ratio", write_jsonl(tmp_path / "pair.jsonl", [{"prompt": "", "chosen": "cd", "rejected": "ca"}]),
                     *base, "--estimator", "exact"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [row] = read_jsonl(result.stdout)
    truth = distribution.cond_nll("", "ca") - distribution.cond_nll("", "cd")
    assert row["log_ratio"] == pytest.approx(truth, abs=1e-5)


@pytest.mark.parametrize("estimator", ["exact", "stratified"])
def test_duplicate_choices_are_scored_as_given_and_tie_to_the_first(base, distribution, tmp_path, estimator):
    """lm-eval's rule: each choice its own index, the first of equal log-likelihoods picked, a label
    text naming the first choice with that text."""
    truths = _true_logliks(distribution, "ab", ["cd", "ca", "dddd"])
    best = ["cd", "ca", "dddd"][truths.index(max(truths))]
    other = "dddd" if best != "dddd" else "cd"
    choices = [best, best, other]
    rows = _choice(base, tmp_path, [{"prompt": "ab", "choices": choices, "label": 1},
                                    {"prompt": "ab", "choices": choices, "label": best}],
                   "--estimator", estimator, "-n", "16")  # fmt: skip
    for row in rows:
        assert row["logliks"][0] == row["logliks"][1] and row["logliks_se"][0] == row["logliks_se"][1]
        assert (row["pred"], row["margin"], row["margin_se"]) == (0, 0.0, 0.0)
    assert rows[0]["logliks"][0] == pytest.approx(max(truths), abs=1e-5 if estimator == "exact" else 5.0)
    assert (rows[0]["correct"], rows[1]["correct"]) == (False, True)


def test_pred_norm_never_names_a_choice_put_out_of_contention():
    import torch

    from itdd_cli.estimators import Estimate
    from itdd_cli.scoring.choice import ChoiceScores, choice_values

    # per byte, choice 1 is ahead (-12/100 > -10/10); --until-decided put it out of contention
    estimates, draws = [Estimate(10.0, 1.0), Estimate(12.0, 1.0)], [torch.zeros(8), torch.zeros(8)]
    texts, tokens = ("a" * 10, "b" * 100), [10, 100]
    out = choice_values(0, 1, ChoiceScores(estimates, draws, [None, None], [True, False]), texts, tokens, 8)
    assert (out["pred"], out["pred_norm"], out["correct_norm"]) == (0, 0, False)
    everyone = choice_values(0, 1, ChoiceScores(estimates, draws, [None, None]), texts, tokens, 8)
    assert (everyone["pred"], everyone["pred_norm"], everyone["correct_norm"]) == (0, 1, True)
