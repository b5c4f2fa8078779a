"""The scoring pipeline: records → framed token ids → masks → engine → estimates → rows.

Everything a Python user needs to score records without the CLI. The runner knows the
estimators and the model contract, never a family's quirks nor how rows are rendered.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from itdd_cli.core import checks
from itdd_cli.core.measures import text_measures
from itdd_cli.core.settings import LN2, Settings, safe_exp
from itdd_cli.core.windows import Grid, Long, block_windows, check_context, rolling_windows
from itdd_cli.errors import InputError, ModelError, UsageError
from itdd_cli.estimators import Estimate
from itdd_cli.io.records import Fields, Record
from itdd_cli.models.base import Framed, ScoringModel
from itdd_cli.results.rows import SPECS, Command, guided_name, spec_for
from itdd_cli.scoring import engine as engine_module
from itdd_cli.scoring.blocks import BlockDraws, block_spans
from itdd_cli.scoring.choice import ChoiceScores, choice_values
from itdd_cli.scoring.draws import RecordDraws, run_rounds
from itdd_cli.scoring.dse_draws import ScoreEntropyDraws, refuse_with_scores, run_score_entropy
from itdd_cli.scoring.engine import BatchProgress, Engine, Job
from itdd_cli.scoring.pertoken import check_per_token, per_token_values

__all__ = [
    "Command", "Lossy", "Settings", "Skipped", "check_long", "check_samples", "draw_count", "prepare", "score",
    "stopped_at_cap", "token_counts",
]  # fmt: skip

_LONGEST_TOKEN: weakref.WeakKeyDictionary[ScoringModel, int] = weakref.WeakKeyDictionary()


def _longest_token(model: ScoringModel) -> int:
    """Characters of the longest vocabulary entry: no token covers more text (unknown tokens aside)."""
    if model not in _LONGEST_TOKEN:
        try:
            vocabulary = model.tokenizer.get_vocab()
        except Exception:  # a tokenizer without a vocabulary listing: no cheap bound
            vocabulary = {}
        _LONGEST_TOKEN[model] = max((len(token) for token in vocabulary), default=0)
    return _LONGEST_TOKEN[model]


def _refuse_oversized(model: ScoringModel, record: Record, text: str) -> None:
    """Refuse a text that cannot fit before tokenizing it (a 50 MB line costs a minute and gigabytes)."""
    limit, longest = model.info.max_length, _longest_token(model)
    if limit is None or longest == 0 or len(text) <= limit * longest:
        return
    visible = len(text) - sum(map(text.count, " \t\n\r"))  # a normalizer may drop whitespace
    if visible > limit * longest:
        raise InputError(
            record.line,
            f"{len(text):,} characters cannot fit the model's maximum of {limit} tokens (no token is longer "
            f"than {longest} characters) — shorten or split this record",
        )


# Bytes a draw costs while its record is prepared and scored: per scored token the noise key
# (float64), the mask (bool) and the batch's ids, mask and target (int64, bool, int64); per draw
# its time, stratum, weight and loss tensors and the engine's bookkeeping object.
BYTES_PER_DRAW_TOKEN = 8 + 1 + 8 + 1 + 8
BYTES_PER_DRAW = 256


def available_memory() -> int:
    """Bytes the system can still give this process (MemAvailable; free pages elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 2**62  # unknown: no bound


def check_samples(samples: int, tokens: int, available: int | None = None) -> None:
    """Refuse a draw count whose draws over `tokens` scored tokens cannot fit in memory."""
    available = available_memory() if available is None else available
    per_draw = BYTES_PER_DRAW + max(tokens, 1) * BYTES_PER_DRAW_TOKEN
    need = samples * per_draw
    if need > available:
        most = max(2, available // per_draw)
        raise UsageError(
            f"--samples {samples:,}: the draws of a {tokens}-token record need about {need / 2**30:,.1f} GiB, more "
            f"than the {available / 2**30:,.1f} GiB of memory available; use at most about {most:,}"
        )


def draw_count(jobs: list[Job]) -> int:
    """The rows a record puts into the engine's window (what --resume replays to find windows)."""
    return sum(len(job.masks) for job in jobs)




def _frame_side(model: ScoringModel, record: Record, context: list[int], text: str) -> Framed:
    _refuse_oversized(model, record, text)
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


def window_capacity(model: ScoringModel) -> int | None:
    """Tokens a window may hold besides the model's framing (None: the model has no maximum)."""
    limit = model.info.max_length
    return None if limit is None else limit - len(model.frame([], []).ids)


def _frame_sides(model: ScoringModel, record: Record, context: list[int], settings: Settings) -> list[Framed]:
    """One framed sequence per scored text, or, under --long rolling, one per window of a long text."""
    capacity = window_capacity(model)
    if settings.long is Long.rolling and capacity is not None and _rollable(record):
        scored = model.encode(record.texts[0])
        if len(scored) > capacity:
            block = model.info.block_size
            windows = (rolling_windows(scored, capacity, settings.context) if block is None
                       else block_windows(scored, _grid(model, block), settings.context))  # fmt: skip
            return [model.frame(window.context, window.scored) for window in windows]
    return [_frame_side(model, record, context, text) for text in record.texts]


def _grid(model: ScoringModel, block: int) -> Grid:
    """Where the model's framing puts a window's text (windows.Grid), read off two probe framings."""
    lone, after = model.frame([], [0]), model.frame([0], [0])
    limit = model.info.max_length
    assert limit is not None, "only a model with a maximum rolls"
    return Grid(block, lone.start, after.start - 1, len(lone.ids) - lone.start - 1, limit)


@dataclass(frozen=True)
class _Prepared:
    record: Record
    draws: RecordDraws | BlockDraws | ScoreEntropyDraws
    prompt_tokens: int
    windows: int = 1
    lost: str | None = None  # what the tokenizer could not represent, when something was lost

    @property
    def framed(self) -> list[Framed]:
        return self.draws.framed


def _lost_text(model: ScoringModel, record: Record, strict: bool) -> str | None:
    """What of the record's texts the tokenizer drops or maps to unknown; an InputError under --strict."""
    labels = record.names or (["text"] if len(record.texts) == 1 else ["chosen", "rejected"])
    parts = [("prompt", record.prompt), *zip(labels, record.texts, strict=True)]
    lost = [f"{label}: {message}" for label, text in parts if text and (message := model.lost_text(text))]
    if lost and strict:
        raise InputError(record.line, "; ".join(lost) + " (refused under --strict)")
    return "; ".join(lost) or None


def token_counts(
    command: Command, model: ScoringModel, record: Record, settings: Settings
) -> tuple[dict[str, Any], int]:
    """The token counts an output row reports for `record` (how --resume recognises it), and the
    rows its draws put into the engine's window."""
    prepared = prepare(model, record, settings)
    lengths = [framed.length for framed in prepared.framed]
    if prepared.windows > 1:
        lengths = [sum(lengths)]  # a rolled text's row reports every window's scored tokens together
    spec = SPECS[command]
    if not spec.several_texts or len(spec.identity) > 1:
        counts: dict[str, Any] = dict(zip(spec.identity, lengths, strict=True))
    else:
        counts = {spec.identity[0]: lengths}  # one list of every choice's count
    return counts, draw_count(prepared.draws.jobs())


def split_boundary(record: Record, settings: Settings) -> Record:
    """lm-evaluation-harness's convention: the prompt's trailing whitespace belongs to the response
    (so "the " + "cat" scores the token " cat"); --keep-boundary keeps the literal split."""
    if record.prompt is None or settings.keep_boundary or settings.chat_template:
        return record
    prompt = record.prompt.rstrip()
    moved = record.prompt[len(prompt) :]
    if not moved:
        return record
    return replace(record, prompt=prompt or None, texts=tuple(moved + text for text in record.texts))


def prepare(model: ScoringModel, record: Record, settings: Settings) -> _Prepared:
    """Tokenize, frame and validate one record, and draw the masks of its first round."""
    record = split_boundary(record, settings)
    if record.prompt is None:
        context = []
    elif settings.chat_template:
        context = model.encode_chat_prompt(record.prompt)
    else:
        context = model.encode(record.prompt)
    framed = _frame_sides(model, record, context, settings)
    windows = len(framed) if len(framed) != len(record.texts) else 1
    block_size = model.info.block_size
    longest = max(span.length for f in framed for span in block_spans(f, block_size))
    limit = settings.estimator.max_tokens
    if limit is not None and longest > limit:
        where = " in one block" if block_size else ""
        raise InputError(
            record.line,
            f"{longest} scored tokens{where}: --estimator {settings.estimator.value} enumerates 2^L − 1 masks and is "
            f"limited to {limit} — use a Monte Carlo estimator",
        )
    check_samples(settings.samples, longest)
    lost = _lost_text(model, record, settings.strict)
    settings = replace(settings, independent=True) if windows > 1 else settings  # windows draw apart
    if settings.estimator.needs_scores:
        return _Prepared(record, ScoreEntropyDraws(context, framed, settings), len(context), windows, lost)
    if block_size is None:
        draws: RecordDraws | BlockDraws = RecordDraws(context, framed, settings)
    else:
        draws = BlockDraws.of(context, framed, settings, block_size)
    return _Prepared(record, draws, len(context), windows=windows, lost=lost)


def check_guidance(command: Command, model: ScoringModel, settings: Settings) -> None:
    """--cfg guides by the prompt: nll has none, and block models' [noisy ‖ clean] rows have no twin yet."""
    if settings.guidance is None:
        return
    checks.guidance(command.value, settings.cfg, lambda name: "--" + name)
    if model.info.block_size is not None:
        raise UsageError(f"--cfg is not supported for block-diffusion models (block size {model.info.block_size})")
    if settings.estimator.needs_scores or not model.guides:
        raise UsageError(f"--cfg pairs masked conditionals with unconditional ones, which {model.info.family} "
                         f"with --estimator {settings.estimator.value} does not give — drop --cfg")  # fmt: skip


def _checked(record: Record, estimate: Estimate) -> Estimate:
    if math.isfinite(estimate.value) and math.isnan(estimate.se):  # `summarise`: too few draws, all alike
        raise InputError(record.line, "every Monte Carlo draw gave the same value, so they say nothing of the "
                         "error; raise -n (L scored tokens are scored exactly from -n 2^L − 1 on)")  # fmt: skip
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.se)):
        raise ModelError(f"line {record.line}: the model returned non-finite log-probabilities for this record")
    return estimate


def _nll_values(prepared: _Prepared) -> dict[str, Any]:
    """A rolled text's windows drew independently: their estimates add, and so do their variances."""
    estimates = [_checked(prepared.record, estimate) for estimate in prepared.draws.estimates()]
    estimate = Estimate(sum(e.value for e in estimates), math.sqrt(sum(e.se**2 for e in estimates)))
    tokens = sum(f.length for f in prepared.framed)
    per_token = estimate.value / tokens
    return {
        "id": prepared.record.id,
        "nll": estimate.value,
        "nll_se": estimate.se,
        "tokens": tokens,
        "nll_per_token": per_token,
        "bits_per_token": per_token / LN2,
        "ppl": safe_exp(per_token),
        "samples": prepared.draws.passes,  # per window under --long rolling
        "windows": prepared.windows,
    } | text_measures(prepared.record.texts[0], estimate.value)


def _cond_nll_values(prepared: _Prepared) -> dict[str, Any]:
    row = {k: v for k, v in _nll_values(prepared).items() if k != "windows"}
    return row | {"prompt_tokens": prepared.prompt_tokens}


def _ratio_values(prepared: _Prepared) -> dict[str, Any]:
    chosen, rejected = (_checked(prepared.record, estimate) for estimate in prepared.draws.estimates())
    log_ratio = _checked(prepared.record, prepared.draws.difference())  # paired by index: the SE sees the coupling
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
        "decided": prepared.draws.decided,
    }


def _token_values(model: ScoringModel, prepared: _Prepared, settings: Settings) -> dict[str, Any]:
    if not settings.per_token:
        return {}
    draws = prepared.draws
    return per_token_values(model, prepared.record.texts[0], prepared.framed, draws.contributions(),
                            draws.contribution_errors())  # fmt: skip


def choice_scores(prepared: _Prepared) -> ChoiceScores:
    """Per-text estimates of a scored record, paired by draw (coupled unless --independent)."""
    draws = prepared.draws
    estimates = [_checked(prepared.record, estimate) for estimate in draws.estimates()]
    contenders = draws.active  # sides still in contention when the rounds stopped
    if isinstance(draws, BlockDraws):  # margins are Σ over blocks of per-block paired differences
        return ChoiceScores(estimates, [], [], contenders, paired=draws.difference)
    tallies = draws.tallies
    return ChoiceScores(estimates, [tally.all_values() for tally in tallies], [tally.all_groups() for tally in tallies],
                        contenders, scale=not tallies[0].orders)  # fmt: skip


def _choice_values(prepared: _Prepared) -> dict[str, Any]:
    record = prepared.record
    tokens = [framed.length for framed in prepared.framed]
    draws = prepared.draws
    values = choice_values(record.id, record.label, choice_scores(prepared), record.texts, tokens, draws.passes)
    rows_per_draw = 1 if prepared.draws.settings.guidance is None else 2  # --cfg: each draw and its twin
    return values | {"decided": draws.decided, "passes": draws.forward_rows * rows_per_draw}


# Each command's row, by the fields its RowSpec declares (the spec fixes their order).
ROW_VALUES = {Command.nll: _nll_values, Command.cond_nll: _cond_nll_values, Command.ratio: _ratio_values,
              Command.choice: _choice_values}  # fmt: skip


def stopped_at_cap(row: dict[str, Any], settings: Settings) -> bool:
    """Whether a row of a --target-se / --until-decided run spent its --max-samples short of its goal."""
    if not settings.adaptive:
        return False
    row = {name.removeprefix("guided_"): value for name, value in row.items()}  # --cfg rows: the same numbers
    se = row["log_ratio_se"] if "log_ratio" in row else row.get("margin_se", row.get("nll_se"))
    return not row.get("decided") and not settings.reached(se)


def check_long(model: ScoringModel, settings: Settings) -> None:
    """--long rolling's settings against the model's window, before any record: a usage error."""
    capacity = window_capacity(model)
    if settings.long is Long.rolling and capacity is not None:
        check_context(capacity, settings.context)
        if settings.target_se is not None or settings.until_decided is not None:
            raise UsageError("--long rolling draws a fixed -n per window; it does not combine with --target-se")


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
    model.check_estimator(settings.estimator)
    if settings.estimator.needs_scores:
        refuse_with_scores(command.value, settings)
    check_guidance(command, model, settings)
    spec = spec_for(command, settings.guidance is not None)
    values = ROW_VALUES[command]
    if settings.per_token:
        check_per_token(command)
    fields = fields or Fields()
    check_long(model, settings)

    def prepared() -> Iterator[_Prepared | Skipped]:
        for line, value in objects:
            try:
                if isinstance(value, InputError):
                    raise value
                yield prepare(model, spec.parse(value, line, fields), settings)
            except InputError as error:
                if not skip_invalid:
                    raise
                yield Skipped(error.line, error.message)

    def draws_of(item: _Prepared | Skipped) -> RecordDraws | BlockDraws | ScoreEntropyDraws | None:
        return item.draws if isinstance(item, _Prepared) else None

    engine = Engine(
        model,
        batch_rows=settings.batch_rows,
        max_tokens=settings.max_tokens,
        on_batch=on_batch,
        window_rows=engine_module.WINDOW_ROWS,
        guidance=settings.guidance,
    )  # read now: --resume replays the same windows
    if settings.estimator.needs_scores:  # scores on corrupted rows: no engine (dse_draws)
        items = run_score_entropy(model, prepared(), draws_of)
    else:
        items = run_rounds(engine, prepared(), draws_of, settings.adaptive)
    for item in items:
        if isinstance(item, Skipped):
            yield item
            continue
        # --keep fields follow the declared ones (their names were checked against them up front)
        found = values(item) | _token_values(model, item, settings)
        if settings.guidance is not None:
            found = {guided_name(name): value for name, value in found.items()}
        row = spec.row(**found) | item.record.kept
        yield row if item.lost is None else Lossy(row, item.record.line, item.lost)
