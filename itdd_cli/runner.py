"""The scoring pipeline: records → framed token ids → masks → engine → estimates → rows.

Everything a Python user needs to score records without the CLI. The runner knows the
estimators and the model contract, never a family's quirks nor how rows are rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from itdd_cli.engine import BatchProgress, Engine, Job
from itdd_cli.errors import InputError, ModelError
from itdd_cli.estimators import (
    EXACT_MAX_TOKENS,
    Estimate,
    Estimator,
    MaskPlan,
    Noise,
    draw_noise,
    plan_masks,
    record_generator,
    summarise,
)
from itdd_cli.measures import text_measures
from itdd_cli.models.base import Framed, ScoringModel
from itdd_cli.records import Fields, Record
from itdd_cli.rows import SPECS, Command
from itdd_cli.settings import LN2, Settings, safe_exp
from itdd_cli.windows import Long, check_context, rolling_windows

__all__ = ["Command", "Lossy", "Settings", "Skipped", "prepare", "score", "token_counts"]


@dataclass(frozen=True)
class _Side:
    framed: Framed
    plan: MaskPlan


def _frame_side(model: ScoringModel, record: Record, context: list[int], text: str) -> Framed:
    scored = model.encode(text)
    if not scored:
        raise InputError(record.line, "the text tokenizes to no tokens; there is nothing to score")
    framed = model.frame(context, scored)
    limit = model.info.max_length
    if limit is not None and len(framed.ids) > limit:
        hint = "score it in windows with --long rolling" if _rollable(record) else "shorten or split this record"
        raise InputError(
            record.line, f"{len(framed.ids)} tokens (framing included) exceed the model's maximum of {limit} — {hint}"
        )
    return framed


def _rollable(record: Record) -> bool:
    """Only a lone text rolls: a prompt + response that does not fit stays an error."""
    return record.prompt is None and len(record.texts) == 1


def _capacity(model: ScoringModel) -> int | None:
    """Tokens a window may hold besides the model's framing (None: the model has no maximum)."""
    limit = model.info.max_length
    return None if limit is None else limit - len(model.frame([], []).ids)


def _frame_sides(model: ScoringModel, record: Record, context: list[int], settings: Settings) -> list[Framed]:
    """One framed sequence per scored text, or, under --long rolling, one per window of a long text."""
    capacity = _capacity(model)
    if settings.long is Long.rolling and capacity is not None and _rollable(record):
        scored = model.encode(record.texts[0])
        if len(scored) > capacity:
            windows = rolling_windows(scored, capacity, settings.context)
            return [model.frame(window.context, window.scored) for window in windows]
    return [_frame_side(model, record, context, text) for text in record.texts]


@dataclass(frozen=True)
class _Prepared:
    record: Record
    sides: list[_Side]  # one per scored text, or the windows of one long text (--long rolling)
    prompt_tokens: int
    windows: int = 1
    lost: str | None = None  # what the tokenizer could not represent, when something was lost


def _lost_text(model: ScoringModel, record: Record, strict: bool) -> str | None:
    """What of the record's texts the tokenizer drops or maps to unknown; an InputError under --strict."""
    labels = ["text"] if len(record.texts) == 1 else ["chosen", "rejected"]
    parts = [("prompt", record.prompt), *zip(labels, record.texts, strict=True)]
    lost = [f"{label}: {message}" for label, text in parts if text and (message := model.lost_text(text))]
    if lost and strict:
        raise InputError(record.line, "; ".join(lost) + " (refused under --strict)")
    return "; ".join(lost) or None


def token_counts(
    command: Command, model: ScoringModel, record: Record, settings: Settings | None = None
) -> dict[str, int]:
    """The token counts an output row reports for `record` (how --resume recognises it)."""
    context = model.encode(record.prompt) if record.prompt else []
    framed = _frame_sides(model, record, context, settings or Settings())
    lengths = [f.length for f in framed] if len(framed) == len(record.texts) else [sum(f.length for f in framed)]
    return dict(zip(SPECS[command].identity, lengths, strict=True))


def _noises(settings: Settings, context: list[int], framed: list[Framed], windows: bool) -> list[Noise | None]:
    """Coupled sides of a pair share noise; windows of a long text draw independently (their SEs add)."""
    if settings.estimator is Estimator.exact:
        return [None] * len(framed)
    if len(framed) > 1 and not (settings.independent or windows):  # coupled: one (u, κ), keys shared by rank
        scored = [f.ids[f.start : f.start + f.length] for f in framed]
        generator = record_generator(settings.seed, context, *scored)
        return [draw_noise(settings.samples, max(f.length for f in framed), generator)] * len(framed)
    return [
        draw_noise(settings.samples, f.length, record_generator(settings.seed, f.ids, [f.start, side]))
        for side, f in enumerate(framed)
    ]


def prepare(model: ScoringModel, record: Record, settings: Settings) -> tuple[_Prepared, list[Job]]:
    """Tokenize, frame and validate one record, and draw the masks of all its draws."""
    if record.prompt is None:
        context = []
    elif settings.chat_template:
        context = model.encode_chat_prompt(record.prompt)
    else:
        context = model.encode(record.prompt)
    framed = _frame_sides(model, record, context, settings)
    windows = len(framed) if len(framed) != len(record.texts) else 1
    longest = max(f.length for f in framed)
    if settings.estimator is Estimator.exact and longest > EXACT_MAX_TOKENS:
        raise InputError(
            record.line,
            f"{longest} scored tokens: --estimator exact enumerates 2^L − 1 masks and is limited "
            f"to {EXACT_MAX_TOKENS} — use a Monte Carlo estimator",
        )
    lost = _lost_text(model, record, settings.strict)
    noises = _noises(settings, context, framed, windows > 1)
    sides = [_Side(f, plan_masks(settings.estimator, noise, f.length)) for f, noise in zip(framed, noises, strict=True)]
    jobs = [Job(torch.tensor(s.framed.ids, dtype=torch.long), s.framed.start, s.plan.masks) for s in sides]
    return _Prepared(record, sides, len(context), windows=windows, lost=lost), jobs


def _values(record: Record, side: _Side, losses: torch.Tensor) -> tuple[Estimate, torch.Tensor]:
    values = side.plan.weights * losses  # (N,)
    estimate = summarise(values, side.plan.strata)
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.se)):
        raise ModelError(f"line {record.line}: the model returned non-finite log-probabilities for this record")
    return estimate, values


def _nll_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    """A rolled text's windows drew independently: their estimates add, and so do their variances."""
    estimates = [_values(prepared.record, side, side_losses)[0]
                 for side, side_losses in zip(prepared.sides, losses, strict=True)]  # fmt: skip
    estimate = Estimate(sum(e.value for e in estimates), math.sqrt(sum(e.se**2 for e in estimates)))
    tokens = sum(side.framed.length for side in prepared.sides)
    exact = prepared.sides[0].plan.strata is None
    per_token = estimate.value / tokens
    return {
        "id": prepared.record.id,
        "nll": estimate.value,
        "nll_se": estimate.se,
        "tokens": tokens,
        "nll_per_token": per_token,
        "bits_per_token": per_token / LN2,
        "ppl": safe_exp(per_token),
        # draws per window; for `exact`, the subsets enumerated over all windows
        "samples": sum(len(s.plan.masks) for s in prepared.sides) if exact else len(prepared.sides[0].plan.masks),
        "windows": prepared.windows,
    } | text_measures(prepared.record.texts[0], estimate.value)


def _cond_nll_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    return {k: v for k, v in _nll_values(prepared, losses).items() if k != "windows"} | {
        "prompt_tokens": prepared.prompt_tokens
    }


def _ratio_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    (chosen, values_chosen), (rejected, values_rejected) = (
        _values(prepared.record, side, side_losses) for side, side_losses in zip(prepared.sides, losses, strict=True)
    )
    strata = prepared.sides[0].plan.strata
    if strata is None:  # exact sums: no error, and the two sides may enumerate different counts
        log_ratio = Estimate(rejected.value - chosen.value, 0.0)
    else:  # draws are paired by index, so the difference's SE sees the coupling
        log_ratio = summarise(values_rejected - values_chosen, strata)
    return {
        "id": prepared.record.id,
        "log_ratio": log_ratio.value,
        "log_ratio_se": log_ratio.se,
        "nll_chosen": chosen.value,
        "nll_rejected": rejected.value,
        "tokens_chosen": prepared.sides[0].framed.length,
        "tokens_rejected": prepared.sides[1].framed.length,
        "samples": sum(len(s.plan.masks) for s in prepared.sides) if strata is None else len(strata),
        "prefers": "chosen" if log_ratio.value > 0 else "rejected",
    }


# Each command's row, by the fields its RowSpec declares (the spec fixes their order).
ROW_VALUES = {Command.nll: _nll_values, Command.cond_nll: _cond_nll_values, Command.ratio: _ratio_values}


@dataclass(frozen=True)
class Skipped:
    """An invalid record passed over under --skip-invalid; it keeps its place in the output order."""

    line: int
    message: str


@dataclass(frozen=True)
class Lossy:
    """A scored record whose text the tokenizer could not fully represent: its row, and what was lost."""

    row: dict[str, Any]
    line: int
    message: str


def score(
    command: Command,
    objects: Iterable[tuple[int, dict[str, Any] | InputError]],
    model: ScoringModel,
    settings: Settings,
    fields: Fields | None = None,
    skip_invalid: bool = False,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> Iterator[dict[str, Any] | Skipped | Lossy]:
    """Yield one output row per input record, in input order, as soon as each is finished.

    An invalid record raises its InputError (after every earlier row has been yielded), or,
    with `skip_invalid`, comes out as a `Skipped` in its place. A record whose text lost
    characters in tokenization comes out as a `Lossy` wrapping its row. `on_batch` hears the
    engine's progress after each forward batch.
    """
    spec = SPECS[command]
    values = ROW_VALUES[command]
    fields = fields or Fields()
    capacity = _capacity(model)
    if settings.long is Long.rolling and capacity is not None:
        check_context(capacity, settings.context)  # before any record: a bad --context is a usage error

    def tasks() -> Iterator[tuple[_Prepared | Skipped, list[Job]]]:
        for line, value in objects:
            try:
                if isinstance(value, InputError):
                    raise value
                yield prepare(model, spec.parse(value, line, fields), settings)
            except InputError as error:
                if not skip_invalid:
                    raise
                yield Skipped(error.line, error.message), []

    engine = Engine(model, batch_rows=settings.batch_rows, max_tokens=settings.max_tokens, on_batch=on_batch)
    for prepared, losses in engine.run(tasks()):
        if isinstance(prepared, Skipped):
            yield prepared
            continue
        # --keep fields follow the declared ones (their names were checked against them up front)
        row = spec.row(**values(prepared, losses)) | prepared.record.kept
        yield row if prepared.lost is None else Lossy(row, prepared.record.line, prepared.lost)
