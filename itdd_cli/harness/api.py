"""The Python API: load a model once, score lists of strings, get typed results.

    from itdd_cli import Scorer
    scorer = Scorer.load("demo", samples=64, seed=0)
    [result] = scorer.cond_nll(["The capital of France is"], [" Paris"])
    result.nll, result.nll_se

Every method goes through the same runner as the command line, so a result equals, bit for
bit, the row `itdd <command>` writes for the same strings and settings (`result.row()`; ids and
extra fields as the CLI's `id` and `--keep`). Corpus figures and several models: `api_corpus`.
This module knows no files, no CLI options and no rendering.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, dataclass, field, fields, make_dataclass, replace
from typing import Any

from itdd_cli.bundled import bundled_path
from itdd_cli.core import checks
from itdd_cli.core.windows import Long, check_context
from itdd_cli.errors import ArgumentTypeError
from itdd_cli.estimators import Estimator
from itdd_cli.harness import api_args
from itdd_cli.io.records import flag_duplicate_ids
from itdd_cli.models import LoadOptions, ScoringModel, load_model
from itdd_cli.results.rows import guided_name
from itdd_cli.scoring.pertoken import check_per_token
from itdd_cli.scoring.runner import Command, Lossy, Settings, Skipped, score, window_capacity


class Result:
    """What every result does: `row()`, the row `itdd <command>` writes for the same item."""

    def row(self) -> dict[str, Any]:
        return _row(self)


@dataclass(frozen=True)
class NllResult(Result):
    """−log p(text) in nats over the scored tokens, with its Monte Carlo standard error."""

    id: int | str
    nll: float
    nll_se: float
    tokens: int
    nll_per_token: float
    bits_per_token: float
    ppl: float
    samples: int
    windows: int  # consecutive windows the text was scored in (1 unless it was rolled)
    bytes: int  # the text's UTF-8 bytes and whitespace-separated words: comparable across tokenizers
    words: int
    bits_per_byte: float
    token_strings: list[str] | None = None  # per_token=True: the scored tokens' text, in order
    token_nll: list[float] | None = None  # per_token=True: each token's share of `nll` (they sum to it)
    token_nll_se: list[float] | None = None  # per_token=True: each share's Monte Carlo SE
    extra: dict[str, Any] = field(default_factory=dict)  # the item's `extra` fields, carried as given


@dataclass(frozen=True)
class CondNllResult(Result):
    """−log p(response | prompt) in nats; the prompt's tokens are context, never scored."""

    id: int | str
    nll: float
    nll_se: float
    tokens: int
    prompt_tokens: int
    nll_per_token: float
    bits_per_token: float
    ppl: float
    samples: int
    bytes: int
    words: int
    bits_per_byte: float
    token_strings: list[str] | None = None
    token_nll: list[float] | None = None
    token_nll_se: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RatioResult(Result):
    """log p(chosen | prompt) − log p(rejected | prompt), both sides from shared draws unless independent."""

    id: int | str
    log_ratio: float
    log_ratio_se: float
    nll_chosen: float
    nll_rejected: float
    tokens_chosen: int
    tokens_rejected: int
    samples: int
    prefers: str  # "chosen" or "rejected"
    decided: bool | None = None  # until_decided: the anytime-valid rule decided the preference (else None)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChoiceResult(Result):
    """log p(choice_i | prompt) for the k choices of one question and the pick.

    `pred` is the index of the highest log-likelihood, `pred_norm` of the highest per UTF-8 byte;
    `margin` is best − runner-up with `margin_se` from paired draws; `correct*` are None without labels.
    """

    id: int | str
    pred: int
    pred_norm: int
    label: int | None  # the index of the right choice (a label given as text is its index); None without one
    logliks: list[float]
    logliks_se: list[float]
    margin: float
    margin_se: float
    tokens: list[int]
    bytes: list[int]
    correct: bool | None
    correct_norm: bool | None
    samples: int  # per choice still in contention at the end, pilot included
    decided: bool | None = None  # until_decided: one choice left in contention (else None)
    passes: int = 0  # forward passes of every choice together
    extra: dict[str, Any] = field(default_factory=dict)


RESULTS = {Command.nll: NllResult, Command.cond_nll: CondNllResult, Command.ratio: RatioResult,
           Command.choice: ChoiceResult}  # fmt: skip


def _guided_result(result: type) -> type:
    """The result under cfg > 0: the same fields, the guided scores named as the CLI's rows name them
    (`guided_nll`, …): a guided score is not a log-likelihood."""
    def declared(f: Any) -> Any:
        return field(default_factory=f.default_factory) if f.default is MISSING else field(default=f.default)

    renamed = [(guided_name(f.name), f.type, declared(f)) for f in fields(result)]
    return make_dataclass("Guided" + result.__name__, renamed, bases=(Result,), frozen=True)


GUIDED_RESULTS = {command: _guided_result(result) for command, result in RESULTS.items() if command is not Command.nll}


@dataclass(frozen=True)
class Scorer:
    """A loaded model and the estimator settings every call uses.

    Results come back in input order, one per item; `id` is the item's 1-based position unless
    `ids` names it. An invalid item raises `itdd_cli.errors.InputError` whose `line` is that
    position. A bad argument raises `ArgumentError` (a ValueError) with the CLI option's message, a
    str where a list is expected `ArgumentTypeError` (a TypeError); both are `itdd_cli.errors.UsageError`s.

    >>> scorer = Scorer.load("demo", samples=8, per_token=True)
    >>> [result] = scorer.nll(["import os"], ids=["first"], extra=[{"source": "docs"}])
    >>> result.id, result.extra, "".join(result.token_strings)
    ('first', {'source': 'docs'}, 'import os')
    """

    model: ScoringModel
    settings: Settings = Settings()

    @classmethod
    def load(
        cls,
        model: str = "demo",
        *,
        estimator: Estimator | str | None = None,
        samples: int = 128,
        seed: int = 0,
        independent: bool = False,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        family: str | None = None,
        tokenizer: str | None = None,
        revision: str | None = None,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        chat_template: bool = False,
        base: str | os.PathLike[str] | None = None,
        merge: bool = True,
        cfg: float = 0.0,
        long: str = "error",
        context: int = 0,
        target_se: float | None = None,
        until_decided: float | None = None,
        max_samples: int | None = None,
        per_token: bool = False,
    ) -> Scorer:
        """Load `model` (a hub id, a local checkpoint directory, a LoRA adapter directory or a bundled name:
        'demo', 'dna8'). An adapter applies to `base` (default: the base its adapter_config.json names),
        merged into the weights unless `merge=False` (as `--base` and `--no-merge`).

        The settings mean what the CLI options of the same names mean (`batch_size=None` is
        `--batch-size auto`, `long="rolling"` is `--long rolling`); the defaults are the CLI's
        (`estimator=None`: the default estimator). Every one is checked before the model loads.
        `cfg > 0` returns guided scores under guided names (`GuidedCondNllResult.guided_nll`, …).
        """
        changes = {"samples": samples, "seed": seed, "independent": independent, "batch_rows": batch_size,
                   "max_tokens": max_tokens, "chat_template": chat_template, "long": long, "context": context,
                   "target_se": target_se, "until_decided": until_decided, "max_samples": max_samples,
                   "per_token": per_token, "cfg": cfg}  # fmt: skip
        if estimator is not None:
            changes["estimator"] = estimator
        settings = api_args.settings(Settings(), changes, {"batch_rows": "batch_size"})
        options = load_options(model, device, dtype, trust_remote_code, family, tokenizer, revision, base, merge)
        return cls(load_model(options), settings)

    def with_settings(self, **changes: Any) -> Scorer:
        """The same loaded model with other settings, e.g. `scorer.with_settings(samples=512)`; each is
        checked by its CLI option's rule (`samples=0` raises `samples must be ≥ 8`)."""
        return replace(self, settings=api_args.settings(self.settings, changes))

    def nll(self, texts: Sequence[str], *, ids: Items = None, extra: Items = None) -> list[NllResult]:
        """−log p(text) for each text (as `itdd nll`). `ids`: one id per text (str or int, unique;
        as the CLI's `id` field); `extra`: one dict per text, carried into `result.extra` (as `--keep`)."""
        checks.guidance("nll", self.settings.cfg, lambda name: name)  # no prompt to guide by
        objects = [{"text": text} for text in api_args.texts("texts", texts)]
        return self._score(Command.nll, objects, ids, extra)

    def cond_nll(
        self, prompts: Sequence[str], responses: Sequence[str], *, ids: Items = None, extra: Items = None
    ) -> list[CondNllResult]:
        """−log p(response | prompt) for each pair (as `itdd cond-nll`)."""
        prompts, responses = api_args.texts("prompts", prompts), api_args.texts("responses", responses)
        api_args.same_lengths(prompts=prompts, responses=responses)
        objects = [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]
        return self._score(Command.cond_nll, objects, ids, extra)

    def ratio(
        self,
        chosen: Sequence[str],
        rejected: Sequence[str],
        prompts: Sequence[str | None] | None = None,
        *,
        ids: Items = None,
        extra: Items = None,
    ) -> list[RatioResult]:
        """log p(chosen | prompt) − log p(rejected | prompt) for each pair (as `itdd ratio`).

        A prompt of None scores the pair unconditionally.
        """
        chosen, rejected = api_args.texts("chosen", chosen), api_args.texts("rejected", rejected)
        prompts = api_args.texts("prompts", prompts) if prompts is not None else [None] * len(chosen)
        api_args.same_lengths(chosen=chosen, rejected=rejected, prompts=prompts)
        objects = [_with_prompt({"chosen": c, "rejected": r}, p)
                   for c, r, p in zip(chosen, rejected, prompts, strict=True)]  # fmt: skip
        return self._score(Command.ratio, objects, ids, extra)

    def choice(
        self,
        choices: Sequence[Sequence[str]],
        prompts: Sequence[str | None] | None = None,
        labels: Sequence[int | str | None] | None = None,
        *,
        ids: Items = None,
        extra: Items = None,
    ) -> list[ChoiceResult]:
        """k-way multiple choice for each question (as `itdd choice`): ≥ 2 choices each, an
        optional prompt and an optional label (index or the exact text of the right choice)."""
        choices = api_args.choices(choices)
        prompts = api_args.texts("prompts", prompts) if prompts is not None else [None] * len(choices)
        labels = api_args.texts("labels", labels) if labels is not None else [None] * len(choices)
        api_args.same_lengths(choices=choices, prompts=prompts, labels=labels)
        objects = [_with_prompt({"choices": list(c), "label": label}, p)
                   for c, p, label in zip(choices, prompts, labels, strict=True)]  # fmt: skip
        return self._score(Command.choice, objects, ids, extra)

    def _score(self, command: Command, objects: list[dict[str, Any]], ids: Items, extra: Items) -> list[Any]:
        objects, extras = api_args.identified(command, objects, ids, extra)
        capacity = window_capacity(self.model)
        with api_args.as_argument_errors():  # what needs the model, checked before any draw
            if self.settings.per_token:
                check_per_token(command, "per_token=True")
            if self.settings.long is Long.rolling and capacity is not None:
                check_context(capacity, self.settings.context, "context")
        numbered = flag_duplicate_ids(enumerate(objects, 1), "id", "item")
        rows = _rows(score(command, numbered, self.model, self.settings))
        result = RESULTS[command] if self.settings.guidance is None else GUIDED_RESULTS.get(command, RESULTS[command])
        return [result(**row, extra=kept) for row, kept in zip(rows, extras, strict=True)]


Items = Sequence[Any] | None  # one per item: ids (str or int), or extra fields (a dict)


def load_options(model: Any, device: Any, dtype: Any, trust_remote_code: bool, family: Any, tokenizer: Any,
                 revision: Any, base: Any = None, merge: Any = True) -> LoadOptions:  # fmt: skip
    """How to load `model`, every argument checked by its CLI option's rule (nothing loads here)."""
    dtype = api_args.load_options(dtype, device, family)
    for name, value in {"model": model, "tokenizer": tokenizer, "revision": revision, "base": base}.items():
        if not isinstance(value, str | os.PathLike) and not (value is None and name != "model"):
            raise ArgumentTypeError(f"{name} must be a string or a path, got {type(value).__name__}")
    if not isinstance(merge, bool):
        raise ArgumentTypeError(f"merge must be True or False, got {type(merge).__name__}")
    model, tokenizer = os.fspath(model), None if tokenizer is None else os.fspath(tokenizer)
    location = bundled_path(model)
    return LoadOptions(str(location or model), dtype, device, trust_remote_code, family, tokenizer, revision,
                       base=None if base is None else os.fspath(base), merge=merge)


def _row(result: Any) -> dict[str, Any]:
    """The result as the CLI writes its row: declared fields, per-token fields when scored, then the extra ones."""
    row = {f.name: getattr(result, f.name) for f in fields(result) if f.name != "extra"}
    per_token = ("token_strings", "token_nll", "token_nll_se", guided_name("token_nll"))
    if all(row.get(name) is None for name in per_token):
        row = {key: value for key, value in row.items() if key not in per_token}
    return row | result.extra


def _with_prompt(obj: dict[str, Any], prompt: str | None) -> dict[str, Any]:
    return obj if prompt is None else obj | {"prompt": prompt}


def _rows(rows: Iterator[dict[str, Any] | Skipped | Lossy]) -> Iterator[dict[str, Any]]:
    for row in rows:
        assert not isinstance(row, Skipped), "the API never skips: an invalid item raises"
        if isinstance(row, Lossy):  # scored as the CLI scores it; the loss is said, not hidden
            warnings.warn(f"item {row.line}: {row.message}", stacklevel=4)
            yield row.row
        else:
            yield row
