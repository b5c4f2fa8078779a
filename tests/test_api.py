"""The Python API returns the command line's numbers, bit for bit, for the same settings."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from itdd_cli import ChoiceResult, Scorer
from itdd_cli.cli import app
from itdd_cli.errors import InputError
from tests.conftest import read_jsonl, write_jsonl

TEXTS = ["abca", "dd", "cadbac"]
PROMPTS = ["ab", "d", "c"]
RESPONSES = ["cd", "aab", "adbca"]
CHOICES = [["cd", "ca", "dddd"], ["abcd", "abdd"], ["a", "b", "c", "d"]]
LABELS = [1, "abdd", None]
SETTINGS = {"estimator": "time-free", "samples": 12, "seed": 9, "independent": True}


def _cli(oracle_dir, tmp_path, command, rows, settings):
    options = ["--estimator", settings["estimator"], "-n", settings["samples"], "--seed", settings["seed"]]
    if settings.get("independent") and command in ("ratio", "choice"):
        options.append("--independent")
    path = write_jsonl(tmp_path / f"{command}.jsonl", rows)
    result = CliRunner().invoke(app, [command, str(path), "-m", str(oracle_dir), "--trust-remote-code",
                                      *map(str, options)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return read_jsonl(result.stdout)


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
        assert [dataclasses.asdict(result) for result in results] == expected, command


def test_choice_results_are_typed_and_an_invalid_item_names_its_position(scorer):
    [result] = scorer.with_settings(estimator="exact").choice([["ab", "cd"]], labels=["cd"])
    assert isinstance(result, ChoiceResult)
    assert result.correct == (result.pred == 1)
    with pytest.raises(InputError) as error:
        scorer.choice([["ab", "cd"], ["ab"]])
    assert error.value.line == 2
    assert "at least 2" in error.value.message


def test_scorer_loads_a_bundled_model_by_name():
    scorer = Scorer.load("demo", samples=4)
    [result] = scorer.cond_nll(["import "], ["os"])
    assert result.tokens >= 1 and result.nll > 0


def test_importing_the_package_loads_neither_torch_nor_transformers():
    code = "import sys, itdd_cli; assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readme_api_example_runs_and_prints_what_the_readme_says():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Python API.**") :]
    start = section.index("```python\n") + len("```python\n")
    end = section.index("```\n", start)
    code, quoted = section[start:end], section[end + 4 :].strip().split("\n\n")[0]
    printed = re.findall(r"`([^`]+)`", quoted)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == printed
