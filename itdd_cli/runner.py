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

from itdd_cli.blocks import Span, block_spans, total
from itdd_cli.engine import BatchProgress, Engine, Job
from itdd_cli.errors import InputError, ModelError
from itdd_cli.estimators import (
    EXACT_MAX_TOKENS,
    Estimate,
    Estimator,
    MaskPlan,
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
    spans: list[Span]  # one per block (a single one for a model without blocks)
    plans: list[MaskPlan]  # the draws of each span


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
    labels = ["text"] if len(record.texts) == 1 else ["chosen", "rejected"]
    parts = [("prompt", record.prompt), *zip(labels, record.texts, strict=True)]
    lost = [f"{label}: {message}" for label, text in parts if text and (message := model.lost_text(text))]
    if lost and strict:
        raise InputError(record.line, "; ".join(lost) + " (refused under --strict)")
    return "; ".join(lost) or None


def token_counts(command: Command, model: ScoringModel, record: Record) -> dict[str, int]:
    """The token counts an output row reports for `record` (how --resume recognises it)."""
    context = model.encode(record.prompt) if record.prompt else []
    lengths = [_frame_side(model, record, context, text).length for text in record.texts]
    return dict(zip(SPECS[command].identity, lengths, strict=True))


def _plans(settings: Settings, context: list[int], framed: list[Framed], spans: list[list[Span]],
           blocked: bool) -> list[list[MaskPlan]]:  # fmt: skip
    """The draws of every span of every side. Each block draws its own `settings.samples` masks;
    coupled ratio sides share one noise per block (keys by rank)."""
    if settings.estimator is Estimator.exact:
        return [[plan_masks(Estimator.exact, None, span.length) for span in side] for side in spans]
    plans: list[list[MaskPlan | None]] = [[None] * len(side) for side in spans]
    if len(framed) > 1 and not settings.independent:
        scored = [f.ids[f.start : f.start + f.length] for f in framed]
        members: dict[int, list[tuple[int, int]]] = {}
        for i, side in enumerate(spans):
            for k, span in enumerate(side):
                members.setdefault(span.block, []).append((i, k))
        for block, places in members.items():
            tag = [[block]] if blocked else []
            generator = record_generator(settings.seed, context, *scored, *tag)
            noise = draw_noise(settings.samples, max(spans[i][k].length for i, k in places), generator)
            for i, k in places:
                plans[i][k] = plan_masks(settings.estimator, noise, spans[i][k].length)
    else:
        for i, (f, side) in enumerate(zip(framed, spans, strict=True)):
            for k, span in enumerate(side):
                tag = [span.block] if blocked else []
                generator = record_generator(settings.seed, f.ids, [f.start, i, *tag])
                plans[i][k] = plan_masks(settings.estimator, draw_noise(settings.samples, span.length, generator),
                                         span.length)  # fmt: skip
    return [[plan for plan in side if plan is not None] for side in plans]


def prepare(model: ScoringModel, record: Record, settings: Settings) -> tuple[_Prepared, list[Job]]:
    """Tokenize, frame and validate one record, and draw the masks of all its draws."""
    if record.prompt is None:
        context = []
    elif settings.chat_template:
        context = model.encode_chat_prompt(record.prompt)
    else:
        context = model.encode(record.prompt)
    framed = [_frame_side(model, record, context, text) for text in record.texts]
    block_size = model.info.block_size
    spans = [block_spans(f, block_size) for f in framed]
    longest = max(span.length for side in spans for span in side)
    if settings.estimator is Estimator.exact and longest > EXACT_MAX_TOKENS:
        where = " in one block" if block_size else ""
        raise InputError(
            record.line,
            f"{longest} scored tokens{where}: --estimator exact enumerates 2^L − 1 masks and is limited "
            f"to {EXACT_MAX_TOKENS} — use a Monte Carlo estimator",
        )
    lost = _lost_text(model, record, settings.strict)
    plans = _plans(settings, context, framed, spans, block_size is not None)
    sides = [_Side(f, s, p) for f, s, p in zip(framed, spans, plans, strict=True)]
    jobs = [
        Job(torch.tensor(side.framed.ids[: span.end], dtype=torch.long), span.start, plan.masks)
        for side in sides
        for span, plan in zip(side.spans, side.plans, strict=True)
    ]
    return _Prepared(record, sides, len(context), lost), jobs


def _per_side(prepared: _Prepared, losses: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """The engine's flat per-job losses, regrouped per side and span."""
    grouped, offset = [], 0
    for side in prepared.sides:
        grouped.append(losses[offset : offset + len(side.spans)])
        offset += len(side.spans)
    return grouped


def _checked(record: Record, estimate: Estimate) -> Estimate:
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.se)):
        raise ModelError(f"line {record.line}: the model returned non-finite log-probabilities for this record")
    return estimate


def _values(side: _Side, losses: list[torch.Tensor]) -> list[torch.Tensor]:
    return [plan.weights * span_losses for plan, span_losses in zip(side.plans, losses, strict=True)]  # (N,) each


def _side_estimate(record: Record, side: _Side, losses: list[torch.Tensor]) -> Estimate:
    values = _values(side, losses)
    return _checked(record, total([summarise(v, plan.strata) for v, plan in zip(values, side.plans, strict=True)]))


def _nll_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    side = prepared.sides[0]
    estimate = _side_estimate(prepared.record, side, _per_side(prepared, losses)[0])
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
        "samples": sum(len(plan.masks) for plan in side.plans),
    }


def _cond_nll_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    return _nll_values(prepared, losses) | {"prompt_tokens": prepared.prompt_tokens}


def _log_ratio(prepared: _Prepared, grouped: list[list[torch.Tensor]]) -> tuple[Estimate, int]:
    """Σ over blocks of rejected − chosen; a block both sides have is differenced draw by draw
    (draws are paired by index, so the SE sees the coupling). Also the number of draws."""
    (chosen, rejected), record = prepared.sides, prepared.record
    values_chosen = dict(zip((s.block for s in chosen.spans), _values(chosen, grouped[0]), strict=True))
    values_rejected = dict(zip((s.block for s in rejected.spans), _values(rejected, grouped[1]), strict=True))
    strata = {s.block: p.strata for side in (chosen, rejected) for s, p in zip(side.spans, side.plans, strict=True)}
    parts, draws, absent = [], 0, torch.zeros((), dtype=torch.float64)
    for block, block_strata in strata.items():
        difference = values_rejected.get(block, absent) - values_chosen.get(block, absent)  # (N,)
        parts.append(summarise(difference, block_strata))
        draws += len(block_strata)
    return _checked(record, total(parts)), draws


def _ratio_values(prepared: _Prepared, losses: list[torch.Tensor]) -> dict[str, Any]:
    grouped = _per_side(prepared, losses)
    chosen, rejected = (
        _side_estimate(prepared.record, side, side_losses)
        for side, side_losses in zip(prepared.sides, grouped, strict=True)
    )
    if prepared.sides[0].plans[0].strata is None:  # exact sums: no error, the sides may enumerate different counts
        log_ratio = Estimate(rejected.value - chosen.value, 0.0)
        samples = sum(len(plan.masks) for side in prepared.sides for plan in side.plans)
    else:
        log_ratio, samples = _log_ratio(prepared, grouped)
    return {
        "id": prepared.record.id,
        "log_ratio": log_ratio.value,
        "log_ratio_se": log_ratio.se,
        "nll_chosen": chosen.value,
        "nll_rejected": rejected.value,
        "tokens_chosen": prepared.sides[0].framed.length,
        "tokens_rejected": prepared.sides[1].framed.length,
        "samples": samples,
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
