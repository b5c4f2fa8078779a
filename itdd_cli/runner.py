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

from itdd_cli.choice import ChoiceScores, choice_values
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
from itdd_cli.models.base import Framed, ScoringModel
from itdd_cli.records import Fields, Record
from itdd_cli.rows import SPECS, Command
from itdd_cli.settings import LN2, Settings, safe_exp

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
        raise InputError(
            record.line,
            f"{len(framed.ids)} tokens (framing included) exceed the model's maximum of {limit} — "
            "shorten or split this record",
        )
    return framed


@dataclass(frozen=True)
class _Prepared:
    record: Record
    sides: list[_Side]
    prompt_tokens: int
    lost: str | None = None  # what the tokenizer could not represent, when something was lost


def _lost_text(model: ScoringModel, record: Record, strict: bool) -> str | None:
    """What of the record's texts the tokenizer drops or maps to unknown; an InputError under --strict."""
    labels = record.names or (["text"] if len(record.texts) == 1 else ["chosen", "rejected"])
    parts = [("prompt", record.prompt), *zip(labels, record.texts, strict=True)]
    lost = [f"{label}: {message}" for label, text in parts if text and (message := model.lost_text(text))]
    if lost and strict:
        raise InputError(record.line, "; ".join(lost) + " (refused under --strict)")
    return "; ".join(lost) or None


def token_counts(command: Command, model: ScoringModel, record: Record) -> dict[str, int]:
    """The token counts an output row reports for `record` (how --resume recognises it)."""
    context = model.encode(record.prompt) if record.prompt else []
    lengths = [_frame_side(model, record, context, text).length for text in record.texts]
    spec = SPECS[command]
    if not spec.several_texts or len(spec.identity) > 1:
        return dict(zip(spec.identity, lengths, strict=True))
    return {spec.identity[0]: lengths}  # one list of every choice's count


def _noises(settings: Settings, context: list[int], framed: list[Framed]) -> list[Noise | None]:
    if settings.estimator is Estimator.exact:
        return [None] * len(framed)
    if len(framed) > 1 and not settings.independent:  # coupled: one (u, κ), keys shared by rank
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
    framed = [_frame_side(model, record, context, text) for text in record.texts]
    longest = max(f.length for f in framed)
    if settings.estimator is Estimator.exact and longest > EXACT_MAX_TOKENS:
        raise InputError(
            record.line,
            f"{longest} scored tokens: --estimator exact enumerates 2^L − 1 masks and is limited "
            f"to {EXACT_MAX_TOKENS} — use a Monte Carlo estimator",
        )
    lost = _lost_text(model, record, settings.strict)
    noises = _noises(settings, context, framed)
    sides = [_Side(f, plan_masks(settings.estimator, noise, f.length)) for f, noise in zip(framed, noises, strict=True)]
    jobs = [Job(torch.tensor(s.framed.ids, dtype=torch.long), s.framed.start, s.plan.masks) for s in sides]
    return _Prepared(record, sides, len(context), lost), jobs


def _values(record: Record, side: _Side, losses: torch.Tensor) -> tuple[Estimate, torch.Tensor]:
    values = side.plan.weights * losses  # (N,)
    estimate = summarise(values, side.plan.strata)
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.se)):
        raise ModelError(f"line {record.line}: the model returned non-finite log-probabilities for this record")
    return estimate, values


def _nll_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    side = prepared.sides[0]
    estimate, _ = _values(prepared.record, side, losses[0])
    tokens = side.framed.length
    per_token = estimate.value / tokens
    return {
        "id": prepared.record.id,
        "nll": estimate.value,
        "nll_se": estimate.se,
        "tokens": tokens,
        "nll_per_token": per_token,
        "bits_per_token": per_token / LN2,
        "ppl": safe_exp(per_token),
        "samples": len(side.plan.masks),
    }


def _cond_nll_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    return _nll_values(prepared, losses) | {"prompt_tokens": prepared.prompt_tokens}


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


def choice_scores(prepared: _Prepared, losses: list[torch.Tensor]) -> ChoiceScores:
    """Per-text estimates of a prepared record, paired by draw (coupled unless --independent)."""
    pairs = [_values(prepared.record, side, loss) for side, loss in zip(prepared.sides, losses, strict=True)]
    strata = prepared.sides[0].plan.strata
    return ChoiceScores([estimate for estimate, _ in pairs], [values for _, values in pairs], strata)


def _choice_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    record, sides = prepared.record, prepared.sides
    strata = sides[0].plan.strata
    samples = sum(len(s.plan.masks) for s in sides) if strata is None else len(strata)
    tokens = [side.framed.length for side in sides]
    return choice_values(record.id, record.label, choice_scores(prepared, losses), record.texts, tokens, samples)


# Each command's row, by the fields its RowSpec declares (the spec fixes their order).
ROW_VALUES = {Command.nll: _nll_values, Command.cond_nll: _cond_nll_values, Command.ratio: _ratio_values,
              Command.choice: _choice_values}  # fmt: skip


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
        row = spec.row(**values(prepared, losses))
        yield row if prepared.lost is None else Lossy(row, prepared.record.line, prepared.lost)
