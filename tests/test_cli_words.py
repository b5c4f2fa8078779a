"""The command line explains itself: usage errors in one line naming the valid choices, help
with every default and runnable examples, and input errors that say how to fix them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from itdd_cli.cli.app import app
from itdd_cli.core.settings import SEED_MAX, SEED_MIN
from itdd_cli.estimators import Estimator
from itdd_cli.version import __version__
from tests.support.cli import invoke, one_error_line

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["nll", "cond-nll", "ratio", "compare", "inspect", "models"]



USAGE_ERRORS = [  # arguments, what the one line must say (all exit 2, before any model loads)
    (["nll", "-n", "0"], ["--samples must be ≥ 8"]),
    (["nll", "-n", "many"], ["--samples must be an integer ≥ 8"]),
    (["nll", "--estimator", "foo"], ["--estimator 'foo': choose one of", *(e.value for e in Estimator)]),
    (["nll", "--format", "html"], ["--format 'html': choose one of auto, jsonl, csv, table"]),
    (["ratio", "--dtype", "fp8"], ["--dtype 'fp8': choose one of auto, float32, bfloat16, float16"]),
    (["nll", "--max-tokens", "0"], ["--max-tokens must be ≥ 1"]),
    (["nll", "--seed", "1.5"], ["--seed must be an integer"]),
    (["nll", "--seed", str(2**127)], ["--seed", "-2**127 to 2**127 - 1"]),
    (["nll", "--seed", str(-(2**127) - 1)], ["-2**127 to 2**127 - 1"]),
    (["nll", "--samp", "4"], ["no such option --samp; did you mean", "--samples", "'itdd nll -h'"]),
    (["--bogus"], ["no such option --bogus", "'itdd -h'"]),
    (["score"], ["no such command 'score'",
                  "choose one of nll, cond-nll, ratio, choice, lm-eval, compare, show, inspect, models"]),  # fmt: skip
    (["compar"], ["no such command 'compar'; did you mean 'compare'?"]),
    (["nll", "-n"], ["-n needs a value; see 'itdd nll -h'"]),
    (["nll", "--seed", "9" * 5000], ["--seed 999999999999…: out of range"]),
    (["nll", "--overwrite=yes"], ["--overwrite is a flag and takes no value"]),
    (["compare", "a.jsonl"], ["missing NEW", "'itdd compare -h'"]),
    (["nll", "a.jsonl", "b.jsonl"], ["unexpected argument(s) b.jsonl"]),
    (["nll", "--batch-size", "0"], ["--batch-size '0'"]),
    (["nll", "--fail-above", "nll=3"], ["--fail-above 'nll=3': unknown metric; choose one of"]),
]


@pytest.mark.parametrize("args,expected", USAGE_ERRORS, ids=lambda value: " ".join(map(str, value))[:40])
def test_a_usage_error_is_one_itdd_line_with_exit_2_naming_what_is_valid(args, expected):
    one_error_line(invoke(args, stdin=""), 2, *expected)


def test_the_seed_range_is_exactly_what_the_record_generator_accepts():
    from itdd_cli.estimators import record_generator

    for seed in (SEED_MIN, SEED_MAX):
        record_generator(seed, [1, 2])
    for seed in (SEED_MIN - 1, SEED_MAX + 1):
        with pytest.raises(OverflowError):
            record_generator(seed, [1, 2])


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_h_and_help_print_help(command, flag):
    result = invoke([*command, flag])
    assert result.exit_code == 0 and result.stdout.startswith("Usage:")


def test_version_is_a_top_level_flag():
    result = invoke(["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


def _options(name: str):
    command = get_command(app).commands[name]
    return [param for param in command.params if param.name != "help"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_shows_its_default_and_a_metavar_not_a_python_type(name):
    ctx = get_command(app).make_context("itdd", [name], resilient_parsing=True)
    help_text = invoke([name, "-h"]).stdout
    for param in _options(name):
        if param.param_type_name != "option":
            continue
        declaration, text = param.get_help_record(ctx)
        assert "[default: " in text, f"{name} {declaration}: no default shown"
        assert "<bool>" not in declaration and "list[" not in declaration and "<str>" not in declaration, declaration
    assert "<bool>" not in help_text and "list[str]" not in help_text
    assert "<str>" not in help_text and "{" not in help_text.splitlines()[0]  # arguments: `BASE`, not `{BASE} <str>`


@pytest.mark.parametrize("name", COMMANDS)
def test_each_commands_help_ends_with_runnable_examples(name):
    help_text = invoke([name, "-h"]).stdout
    examples = help_text.split("Examples:")[1].strip().splitlines()
    assert 2 <= len(examples) <= 3 and all(f"itdd {name}" in line for line in examples)


def test_the_estimator_help_says_when_to_pick_each_estimator():
    help_text = " ".join(invoke(["nll", "-h"]).stdout.split())
    for estimator in Estimator:
        assert estimator.spec.advice, f"--estimator {estimator.value} has no advice in estimators/kinds.py"
        assert f"{estimator.value}: {' '.join(estimator.spec.advice.split())}" in help_text


def test_the_model_help_names_the_bundled_models_and_the_default():
    help_text = " ".join(invoke(["nll", "-h"]).stdout.split())
    assert "demo" in help_text and "dna8" in help_text and "[default: $ITDD_MODEL, else the bundled demo]" in help_text


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["nll", "-h"], ["compare", "-h"], ["models"]])
def test_help_version_and_models_import_neither_torch_nor_transformers(args):
    heavy = ("torch", "transformers") if args == ["models"] else ("torch", "transformers", "itdd_cli.views.reporting",
                                                                   "rich.progress", "itdd_cli.io.sources")  # fmt: skip
    code = (
        "import sys\nfrom itdd_cli.cli.app import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_readme_exit_code_table_matches_the_error_classes():
    from itdd_cli import errors

    table = ROOT.joinpath("README.md").read_text().split("### Exit codes")[1].split("\n\n")[1]
    codes = {int(line.split("|")[1]) for line in table.splitlines()[2:]}
    classes = {errors.UsageError.exit_code, errors.ModelError.exit_code, errors.InputError.exit_code,
               errors.GateError.exit_code}  # fmt: skip
    from itdd_cli.cli.failures import BROKEN_PIPE

    assert codes == {0, 130, BROKEN_PIPE} | classes
    assert "no model given" not in table  # the bundled demo model is the default


INPUT_ERRORS = [  # (line fed as JSONL, what the error teaches)
    (b"Plain text is not JSON Lines\n", "not JSON: the input must be JSON Lines, one JSON object per line (for "
                                         "plain text, one document per line, pass --lines)"),
    (b'{"id": "a", "text": "hello"\n', "invalid JSON (Expecting ',' delimiter at column 28)"),
    (b'{"text": "abc}\n', "invalid JSON (Unterminated string starting at column 10)"),
    (b'{"text": "ab', "Unterminated string starting at column"),
    (b'{"text": "ab", "text": "cd"}\n', "duplicate key 'text' in one object"),
    (b'{"body": "ab", "lang": "en"}\n', "missing field 'text' (the record has fields 'body', 'lang') — use"),
    (b"{}\n", "missing field 'text' (the record has no fields)"),
    (b'{"text": "ab", "id": ""}\n', "field 'id' is an empty id"),
    (b"[1, 2]\n", "expected a JSON object ({…} on each line), got an array"),
]


@pytest.mark.parametrize("content,message", INPUT_ERRORS, ids=lambda value: str(value)[:30])
def test_an_input_error_teaches_the_fix(oracle_dir, tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    result = invoke(["nll", path, "-m", oracle_dir, "--trust-remote-code", "-n", "8"])
    one_error_line(result, 3, "line 1: ", message)
    assert "at at" not in result.stderr


RESULT = '{"id": 1, "nll_per_token": 1.0, "nll_se": 0.1}\n{"id": 2, "nll_per_token": 2.0, "nll_se": 0.1}\n'
BAD_RESULTS = [  # (content of NEW, what the error says)
    (RESULT.replace("2.0", "NaN").encode(), "row id 2 has nan for 'nll_per_token'; compare needs finite numbers"),
    (RESULT.replace("2.0", "Infinity").encode(), "row id 2 has inf for 'nll_per_token'"),
    (RESULT.replace("2.0", "[2.0]").encode(), "row id 2 has [2.0] for 'nll_per_token', not a number"),
    (RESULT.replace("2.0", '"2"').encode(), "row id 2 has '2' for 'nll_per_token', not a number"),
    (b"[1, 2]\n", "not an itdd result file: row 1 is not an object with an 'id'"),
    (RESULT.replace('"id": 2', '"id": [2]').encode(), "row 2: the id [2] is not a string or an integer"),
    (b"\xff\xfe" + RESULT.encode(), "not an itdd result file: not UTF-8 text (byte 1)"),
    (b"{oops\n", "not an itdd result file"),
    ((RESULT[:-2] + "\n").encode(), "not an itdd result file: line 2: invalid JSON (Expecting ',' delimiter"),
    (RESULT.replace('"id": 2', '"id": 1').encode(), "the id 1 appears more than once"),
    (RESULT.replace('"nll_se": 0.1}\n{"id": 2', '"nll_se": 0.1, "nll_se": 9}\n{"id": 2').encode(),
     "line 1: the key 'nll_se' is given twice"),
    (RESULT.replace("2.0", "true").encode(), "row id 2 has True for 'nll_per_token', not a number"),
]


@pytest.mark.parametrize("content,message", BAD_RESULTS, ids=lambda value: str(value)[:30])
def test_compare_names_a_bad_result_file_and_row(tmp_path, content, message):
    (tmp_path / "base.jsonl").write_text(RESULT)
    (tmp_path / "new.jsonl").write_bytes(content)
    result = invoke(["compare", tmp_path / "base.jsonl", tmp_path / "new.jsonl"])
    one_error_line(result, 2, message)


def test_compare_says_a_directory_is_a_directory(tmp_path):
    (tmp_path / "base.jsonl").write_text(RESULT)
    one_error_line(invoke(["compare", tmp_path / "base.jsonl", tmp_path]), 2, "it is a directory")


CSV_RESULT = "id,nll_per_token,nll_se,note\n1,1.0,0.1,plain\n2,2.0,0.1,'5\n"
BAD_CSV_RESULTS = [  # (content of NEW as CSV, what the error says)
    (CSV_RESULT.replace(",'5\n", ",'5,extra\n"), "not an itdd result file: row 2 has 5 cells but the header names 4"),
    (CSV_RESULT.replace(",'5\n", "\n"), "not an itdd result file: row 2 has 3 cells but the header names 4"),
    (CSV_RESULT.replace("2.0", "two"), "result file: row 2: 'two' in column 'nll_per_token' is not a number"),
]


@pytest.mark.parametrize("content,message", BAD_CSV_RESULTS, ids=lambda value: str(value)[:30])
def test_compare_names_a_bad_csv_result_file_and_row(tmp_path, content, message):
    (tmp_path / "base.csv").write_text(CSV_RESULT)
    (tmp_path / "new.csv").write_text(content)
    assert invoke(["compare", tmp_path / "base.csv", tmp_path / "base.csv"]).exit_code == 0  # kept text is no number
    one_error_line(invoke(["compare", tmp_path / "base.csv", tmp_path / "new.csv"]), 2, message)
