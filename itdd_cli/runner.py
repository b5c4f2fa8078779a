"""The scoring pipeline: records → framed token ids → masks → engine → estimates → rows.

Everything a Python user needs to score records without the CLI. The runner knows the
estimators and the model contract, never a family's quirks nor how rows are rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from itdd_cli.draws import Budget, RecordDraws, run_rounds
from itdd_cli.engine import Engine
from itdd_cli.errors import InputError, ModelError
from itdd_cli.estimators import DEFAULT_ESTIMATOR, Estimate, Estimator
from itdd_cli.models.base import Framed, ScoringModel
from itdd_cli.records import Fields, Record, conditional_record, pair_record, text_record

LN2 = math.log(2.0)


class Command(StrEnum):
    nll = "nll"
    cond_nll = "cond-nll"
    ratio = "ratio"


PARSERS: dict[Command, Callable[[dict[str, Any], int, Fields], Record]] = {
    Command.nll: text_record,
    Command.cond_nll: conditional_record,
    Command.ratio: pair_record,
}


@dataclass(frozen=True)
class Settings:
    estimator: Estimator = DEFAULT_ESTIMATOR
    samples: int = 128  # forward passes per record (per side for ratio), pilot included
    seed: int = 0
    independent: bool = False
    batch_rows: int | None = None  # None: fill batches up to max_tokens
    max_tokens: int | None = None  # None: the engine's default for the model's device
    chat_template: bool = False  # wrap the prompt in the tokenizer's chat template as a user turn
    target_se: float | None = None  # draw in rounds until the SE is at most this (nats)
    until_decided: float | None = None  # ratio: stop once |log_ratio| > this × SE
    max_samples: int | None = None  # cap on passes per record in rounds; None: 8 × samples

    def budget(self) -> Budget:
        return Budget(self.estimator, self.samples, self.seed, self.independent, self.target_se,
                      self.until_decided, self.max_samples)  # fmt: skip


def safe_exp(value: float) -> float:
    """exp, saturating to inf instead of raising OverflowError (a perplexity can be huge)."""
    return math.inf if value >= 700 else math.exp(value)  # NaN stays NaN


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
    draws: RecordDraws
    prompt_tokens: int

    @property
    def framed(self) -> list[Framed]:
        return self.draws.framed


def token_counts(model: ScoringModel, record: Record) -> dict[str, int]:
    """The token counts an output row reports for `record` (how --resume recognises it)."""
    context = model.encode(record.prompt) if record.prompt else []
    lengths = [_frame_side(model, record, context, text).length for text in record.texts]
    if len(lengths) == 2:
        return {"tokens_chosen": lengths[0], "tokens_rejected": lengths[1]}
    return {"tokens": lengths[0]}


def prepare(model: ScoringModel, record: Record, settings: Settings) -> _Prepared:
    """Tokenize, frame and validate one record, and draw the masks of its first round."""
    if record.prompt is None:
        context = []
    elif settings.chat_template:
        context = model.encode_chat_prompt(record.prompt)
    else:
        context = model.encode(record.prompt)
    framed = [_frame_side(model, record, context, text) for text in record.texts]
    longest = max(f.length for f in framed)
    limit = settings.estimator.max_tokens
    if limit is not None and longest > limit:
        raise InputError(
            record.line,
            f"{longest} scored tokens: --estimator {settings.estimator.value} enumerates 2^L − 1 masks and is "
            f"limited to {limit} — use a Monte Carlo estimator",
        )
    return _Prepared(record, RecordDraws(context, framed, settings.budget()), len(context))


def _checked(record: Record, estimate: Estimate) -> Estimate:
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.se)):
        raise ModelError(f"line {record.line}: the model returned non-finite log-probabilities for this record")
    return estimate


def _nll_row(prepared: _Prepared, command: Command) -> dict[str, Any]:
    estimate = _checked(prepared.record, prepared.draws.estimates()[0])
    tokens = prepared.framed[0].length
    per_token = estimate.value / tokens
    row: dict[str, Any] = {"id": prepared.record.id, "nll": estimate.value, "nll_se": estimate.se, "tokens": tokens}
    if command is Command.cond_nll:
        row["prompt_tokens"] = prepared.prompt_tokens
    return row | {
        "nll_per_token": per_token,
        "bits_per_token": per_token / LN2,
        "ppl": safe_exp(per_token),
        "samples": prepared.draws.passes,
    }


def _ratio_row(prepared: _Prepared) -> dict[str, Any]:
    chosen, rejected = (_checked(prepared.record, estimate) for estimate in prepared.draws.estimates())
    log_ratio = prepared.draws.difference()
    return {
        "id": prepared.record.id,
        "log_ratio": log_ratio.value,
        "log_ratio_se": log_ratio.se,
        "nll_chosen": chosen.value,
        "nll_rejected": rejected.value,
        "tokens_chosen": prepared.framed[0].length,
        "tokens_rejected": prepared.framed[1].length,
        "samples": prepared.draws.passes,
        "prefers": "chosen" if log_ratio.value > 0 else "rejected",
    }


def stopped_at_cap(row: dict[str, Any], settings: Settings) -> bool:
    """Whether a row of a --target-se / --until-decided run spent its --max-samples short of its goal."""
    budget = settings.budget()
    if not budget.adaptive:
        return False
    pair = "log_ratio" in row
    estimate = Estimate(row["log_ratio"], row["log_ratio_se"]) if pair else Estimate(row["nll"], row["nll_se"])
    return not budget.reached(estimate, pair)


@dataclass(frozen=True)
class Skipped:
    """An invalid record passed over under --skip-invalid; it keeps its place in the output order."""

    line: int
    message: str


def score(
    command: Command,
    objects: Iterable[tuple[int, dict[str, Any] | InputError]],
    model: ScoringModel,
    settings: Settings,
    fields: Fields | None = None,
    skip_invalid: bool = False,
) -> Iterator[dict[str, Any] | Skipped]:
    """Yield one output row per input record, in input order, as soon as each is finished.

    An invalid record raises its InputError (after every earlier row has been yielded), or,
    with `skip_invalid`, comes out as a `Skipped` in its place.
    """
    parse = PARSERS[command]
    fields = fields or Fields()

    def prepared() -> Iterator[_Prepared | Skipped]:
        for line, value in objects:
            try:
                if isinstance(value, InputError):
                    raise value
                yield prepare(model, parse(value, line, fields), settings)
            except InputError as error:
                if not skip_invalid:
                    raise
                yield Skipped(error.line, error.message)

    engine = Engine(model, batch_rows=settings.batch_rows, max_tokens=settings.max_tokens)

    def draws_of(item: _Prepared | Skipped) -> RecordDraws | None:
        return item.draws if isinstance(item, _Prepared) else None

    for item in run_rounds(engine, prepared(), draws_of, settings.budget().adaptive):
        if isinstance(item, Skipped):
            yield item
        elif command is Command.ratio:
            yield _ratio_row(item)
        else:
            yield _nll_row(item, command)
