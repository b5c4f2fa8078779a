"""The CLI run in this process, as a user would call it, and the checks every refusal must pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from click.testing import Result

from tests.support.jsonl import read_jsonl

ERROR_PREFIX = "itdd: error: "
Env = Mapping[str, str | None] | None  # None for a variable: unset in the run
DEMO_TEXTS = Path(__file__).resolve().parents[2] / "examples" / "demo.jsonl"


def invoke(args: Iterable[object], stdin: str | None = None, env: Env = None) -> Result:
    """Every argument as a string (paths and numbers may be passed as they are); stdout and stderr apart."""
    from typer.testing import CliRunner

    from itdd_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], input=stdin, env=env)


def invoke_rows(args: Iterable[object], stdin: str | None = None, env: Env = None) -> list[dict]:
    """The JSONL rows a run that must succeed prints (its stderr shown if it does not)."""
    result = invoke(args, stdin, env)
    assert result.exit_code == 0, result.stderr
    return read_jsonl(result.stdout)


def one_error_line(result: Result, code: int, *expected: str) -> str:
    """A refusal: exit `code`, stderr exactly one `itdd: error: ` line holding each `expected` text,
    never a traceback or the internal-error report. Returns that line."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and result.stderr.startswith(ERROR_PREFIX), result.stderr
    for unwanted in ("internal error", "Traceback", "above report"):
        assert unwanted not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def nll_refusal(*options: object) -> str:
    """The one line `itdd nll` refuses `options` with (exit 2) on the demo texts and model: what the API
    and the lm-eval backend must say for the same mistake."""
    return one_error_line(invoke(["nll", DEMO_TEXTS, "-m", "demo", *options]), 2)
