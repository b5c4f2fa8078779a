"""Value rules shared by the command line's options and lm-eval's `--model_args`: one rule, one message.

The CLI applies them through typer (options.py: `min=MIN_SAMPLES`, the `--seed` callback; usage.py
words typer's range errors in these same phrases); `itdd lm-eval`'s model args call them directly,
named `model_args samples` instead of `--samples`, and the Python API (api_args.py) as `samples`,
where a number given as text is refused (`text=False`): the command line reads text, Python passes
numbers. Imports neither torch nor typer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from itdd_cli.core.settings import SEED_MAX, SEED_MIN, Settings
from itdd_cli.core.windows import Long
from itdd_cli.errors import UsageError
from itdd_cli.estimators.levels import Z_MAX

MIN_SAMPLES = 8  # below 8 draws no standard error is honest (too few degrees of freedom; README)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_SEED_RANGE = "out of range; use an integer from -2**127 to 2**127 - 1 (e.g. 0)"
# The dtypes a model loads in (models.loading.DTYPES, and auto), and the other spellings of them
# users bring from lm-eval and PyTorch (`dtype=bf16`), each naming one of them.
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def integer(name: str, value: Any, minimum: int, text: bool = True) -> int:
    """An integer of at least `minimum` (`--samples must be ≥ 8`)."""
    number = _as_int(value, text)
    if number is None:
        raise UsageError(f"{name} must be an integer ≥ {minimum}")
    if number < minimum:
        raise UsageError(f"{name} must be ≥ {minimum}")
    return number


def seed(name: str, value: Any, text: bool = True) -> int:
    """Any integer the draws can hash (settings.SEED_MIN … SEED_MAX), written with any number of digits."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    digits = value.strip() if isinstance(value, str) and text else str(value) if whole else ""
    if _INTEGER.fullmatch(digits) and len(digits.lstrip("+-")) > 40:  # 2**127 has 39 digits; Python reads ≤ 4,300
        raise UsageError(f"{name} {digits[:12]}…: {_SEED_RANGE}")
    number = _as_int(value, text)
    if number is None:
        raise UsageError(f"{name} must be an integer")
    if not SEED_MIN <= number <= SEED_MAX:
        raise UsageError(f"{name} {number}: {_SEED_RANGE}")
    return number


def choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of `choices` (`--estimator 'foo': choose one of …`)."""
    names = list(choices)
    if str(value) not in names or isinstance(value, bool):
        raise UsageError(f"{name} {str(value)!r}: choose one of {', '.join(names)}")
    return str(value)


def dtype(name: str, value: Any) -> str:
    """A dtype by its name or another spelling of it; the name comes back (`bf16` → `bfloat16`)."""
    word = choice(name, value, [*DTYPE_NAMES, *DTYPE_ALIASES])
    return DTYPE_ALIASES.get(word, word)


def batch_rows(name: str, value: Any, text: bool = True) -> int | None:
    """Forward rows per batch: a positive integer, or 'auto' (None: fill batches up to the token budget)."""
    if value == "auto":
        return None
    number = _as_int(value, text)
    if number is None or number <= 0:
        raise UsageError(f"{name} {str(value)!r}: expected a positive integer or 'auto'")
    return number


def number(name: str, value: Any, minimum: float) -> float:
    """A finite real number of at least `minimum` (`--target-se must be ≥ 0.0`, typer's words)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{name} must be a number ≥ {minimum}")
    if value < minimum:
        raise UsageError(f"{name} must be ≥ {minimum}")
    return float(value)


def combination(settings: Settings, name: Callable[[str], str]) -> None:
    """Settings that contradict one another; `name` gives a setting's name as the caller's user knows it
    (`--max-samples`, or `max_samples` in Python)."""
    cap, samples = settings.max_samples, settings.samples
    if cap is not None and cap < samples:
        raise UsageError(f"{name('max_samples')} {cap} is below {name('samples')} {samples}; raise it or lower "
                         f"{name('samples')}")  # fmt: skip
    if cap is not None and settings.target_se is None and settings.until_decided is None:
        raise UsageError(f"{name('max_samples')} caps {name('target_se')} or {name('until_decided')} rounds; "
                         "pass one of them")  # fmt: skip
    if settings.until_decided is not None:
        decidable(settings.estimator.value, name)
    adaptive = settings.target_se is not None or settings.until_decided is not None
    if settings.long is Long.rolling and adaptive:
        raise UsageError(f"{name('long')} rolling draws a fixed {name('samples')} per window; it does not combine with "
                         f"{name('target_se')} or {name('until_decided')}")  # fmt: skip
    if settings.context and settings.long is not Long.rolling:
        raise UsageError(f"{name('context')} {settings.context} applies to {name('long')} rolling only; pass "
                         f"{name('long')} rolling or drop {name('context')}")  # fmt: skip


CFG_MAX = 100.0  # (S + 1)·(cond − uncond) must stay far inside float32 (published scales are 0–3)


def guidance(command: str, cfg: float, name: Callable[[str], str]) -> None:
    """--cfg guides the score by the prompt, masked in the unconditional twin; `nll` has no prompt."""
    if cfg > CFG_MAX:
        raise UsageError(f"{name('cfg')} must be ≤ {CFG_MAX:g} (published guidance scales are 0–3)")
    if cfg > 0 and command == "nll":
        raise UsageError(f"{name('cfg')} guides the score by the prompt, and nll has none; use cond-nll, ratio or "
                         "choice")  # fmt: skip


def decidable(estimator: str, name: Callable[[str], str]) -> None:
    """--until-decided's looks are planned in passes before any draw; the chain rule spends passes in whole
    orders sized by the longest side still drawing, which would let eliminations move the looks."""
    if estimator == "chain-rule":
        raise UsageError(f"{name('until_decided')} plans its looks in passes, which {name('estimator')} chain-rule "
                         "spends in whole orders; choose another estimator")  # fmt: skip


def decision_level(name: str, value: Any) -> float:
    """--until-decided's level: α in (0, 1), or a z from 1 to 8 meaning α = P(|N(0,1)| > z) (3 → 0.0027)."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (0 < number <= Z_MAX):  # NaN fails too
        raise UsageError(f"{name} {value}: give an error rate in (0, 1) such as 0.01, or a z from 1 to "
                         f"{Z_MAX:g} such as 3 (α = 0.0027)")  # fmt: skip
    return number


def _as_int(value: Any, text: bool = True) -> int | None:
    """An int, or (`text`) the text of one; None for anything else (a bool, a float, other text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not text or not isinstance(value, str) or not _INTEGER.fullmatch(value.strip()):
        return None
    try:
        return int(value)
    except ValueError:  # more digits than Python reads
        return None


def kept_names(names: Iterable[str], declared: Callable[[str], object], name: str) -> tuple[str, ...]:
    """Input fields carried into each output row (`--keep`, the API's `extra`) must not shadow a row field;
    `declared(field)` is the command's field of that name, or None."""
    names = tuple(names)
    clash = [field for field in names if declared(field) is not None]
    if clash:
        raise UsageError(f"{name} {clash[0]}: the output row already has a field of that name")
    return names
