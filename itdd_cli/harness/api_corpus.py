"""The Python API's corpus figures and its several-model runs (as `itdd nll -m A -m B …`).

`corpus(results)` sums a list of per-text results as the CLI's summary does: token-weighted, never
a mean of the texts' own ratios (which would weigh a 3-token text like a 3,000-token one), plus
`mean_perplexity`, the mean of each text's perplexity, which is what Hugging Face `evaluate`'s
perplexity metric reports under that name. `score_models` scores the same items under each model
in turn, one in memory at a time, and pairs every model's records with the first model's by id:
models that frame the texts into the same token ids share draws, so their differences have small
standard errors (the CLI's study, `itdd_cli.run.study`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itdd_cli.core.settings import LN2, Settings, safe_exp
from itdd_cli.errors import ArgumentError, ArgumentTypeError
from itdd_cli.harness import api_args
from itdd_cli.harness.api import CondNllResult, Items, NllResult, Scorer, load_options
from itdd_cli.models import load_model
from itdd_cli.results.checkpoints import expand, step_of
from itdd_cli.results.rows import Command
from itdd_cli.results.study_lines import CheckpointLine, Study, line_numbers
from itdd_cli.results.summary import Summary
from itdd_cli.run.study import release_memory, tokenizer_key


@dataclass(frozen=True)
class Corpus:
    """Corpus figures of per-text results. Every ratio is a ratio of sums over the texts.

    `nll_se` is the Monte Carlo error of the summed NLL, √Σ se² (each text's draws are its own);
    `nll_per_token_se` and `bits_per_byte_se` are it divided by the tokens' and bytes' total. They say
    how far more draws could move these numbers on these texts, not how another sample of texts would
    differ."""

    records: int
    tokens: int
    nll: float  # Σ nll, nats
    nll_se: float
    nll_per_token: float  # Σ nll / Σ tokens
    nll_per_token_se: float
    bits_per_token: float  # nll_per_token / ln 2
    perplexity: float  # exp(Σ nll / Σ tokens): the corpus perplexity, as `itdd nll`'s summary reports it
    mean_perplexity: float  # mean over texts of exp(nll / tokens): `evaluate`'s `mean_perplexity`
    bytes: int  # Σ UTF-8 bytes of the scored texts
    words: int  # Σ whitespace-separated words
    bits_per_byte: float  # Σ nll / (ln 2 · Σ bytes): comparable across tokenizers
    bits_per_byte_se: float
    word_perplexity: float  # exp(Σ nll / Σ words), as lm-eval's wikitext task reports it


def corpus(results: Sequence[NllResult | CondNllResult]) -> Corpus:
    """The corpus figures of `Scorer.nll` or `Scorer.cond_nll` results.

    >>> from itdd_cli import Scorer, corpus
    >>> texts = Scorer.load("demo", samples=8).nll(["import os", "Return the number of items."])
    >>> total = corpus(texts)
    >>> total.tokens == sum(t.tokens for t in texts), round(total.nll_per_token, 9) == round(
    ...     sum(t.nll for t in texts) / total.tokens, 9)
    (True, True)
    """
    items = api_args.texts("results", results)
    if not items:
        raise ArgumentError("results is empty: score at least one text")
    for number, item in enumerate(items):
        if not isinstance(item, NllResult | CondNllResult):
            raise ArgumentTypeError(f"results[{number}] must be an NllResult or CondNllResult (one text per result), "
                                    f"got {type(item).__name__}")  # fmt: skip
    tokens, nll, size = sum(r.tokens for r in items), sum(r.nll for r in items), sum(r.bytes for r in items)
    words = sum(r.words for r in items)
    nll_se = math.sqrt(sum(r.nll_se**2 for r in items))
    per_token = nll / tokens
    return Corpus(
        records=len(items),
        tokens=tokens,
        nll=nll,
        nll_se=nll_se,
        nll_per_token=per_token,
        nll_per_token_se=nll_se / tokens,
        bits_per_token=per_token / LN2,
        perplexity=safe_exp(per_token),
        mean_perplexity=sum(safe_exp(r.nll / r.tokens) for r in items) / len(items),
        bytes=size,
        words=words,
        bits_per_byte=nll / (LN2 * size),
        bits_per_byte_se=nll_se / (LN2 * size),
        word_perplexity=safe_exp(nll / words) if words else math.nan,
    )


@dataclass(frozen=True)
class ModelResults:
    """One model's results on the items, its corpus figures and its paired difference to the first model.

    The `delta_*` figures are (this model's Σ nll − the first's) over the first's tokens or bytes, on the
    records both scored, with the ratio estimator's SE across records (the CLI study's table); 0 for the
    first model; `delta_nll_per_token` is NaN where a record's token count differs (other tokenizers:
    compare bits per byte). `coupled`: same token ids and framing as the first model, so shared draws."""

    model: str
    step: int | None  # the training step in the model's name (`checkpoint-500`), if any
    results: list[Any]
    corpus: Corpus
    coupled: bool
    delta_nll_per_token: float
    delta_nll_per_token_se: float
    delta_bits_per_byte: float
    delta_bits_per_byte_se: float


def score_models(
    models: Sequence[str],
    texts: Sequence[str] | None = None,
    *,
    prompts: Sequence[str] | None = None,
    responses: Sequence[str] | None = None,
    ids: Items = None,
    extra: Items = None,
    **load: Any,
) -> list[ModelResults]:
    """Score `texts` (as `nll`) or `prompts` with `responses` (as `cond_nll`) under each model in turn.

    `models`: hub ids, directories or bundled names (a directory of `checkpoint-*` folders stands for
    them, in step order); `load`: `Scorer.load`'s keywords, the same for every model. Every argument is
    checked before the first model loads.
    """
    names = expand([str(name) for name in _models(models)])
    repeated = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:
        raise ArgumentError(f"model {repeated!r} is given twice (results are told apart by their model): give each "
                            "once")  # fmt: skip
    if (texts is None) == (responses is None) or (prompts is None) != (responses is None):
        raise ArgumentError("give texts (scored as nll), or prompts and responses (scored as cond_nll)")
    command = Command.nll if texts is not None else Command.cond_nll
    if texts is not None:
        objects: list[dict[str, Any]] = [{"text": text} for text in api_args.texts("texts", texts)]
    else:
        prompts, responses = api_args.texts("prompts", prompts), api_args.texts("responses", responses)
        api_args.same_lengths(prompts=prompts, responses=responses)
        objects = [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]
    api_args.identified(command, objects, ids, extra)
    loading = {key: load.pop(key) for key in ("device", "dtype", "trust_remote_code", "family", "tokenizer",
                                              "revision") if key in load}  # fmt: skip
    scorer_of = _checked_loader(loading, load)
    study, first_key, answers = Study(), None, []
    for name in names:
        scorer = scorer_of(name)
        key = tokenizer_key(scorer.model)
        first_key = key if first_key is None else first_key
        results = scorer.nll(texts, ids=ids, extra=extra) if texts is not None else \
            scorer.cond_nll(prompts, responses, ids=ids, extra=extra)  # fmt: skip
        del scorer
        release_memory()
        line = CheckpointLine(name, step_of(name), Summary(command), coupled=key == first_key)
        study.lines.append(line)
        for result in results:
            study.add(line, result.row())
        numbers = line_numbers(line)
        answers.append(ModelResults(name, line.step, results, corpus(results), line.coupled,
                                    numbers["delta_nll_per_token"], numbers["delta_nll_per_token_se"],
                                    numbers["delta_bits_per_byte"], numbers["delta_bits_per_byte_se"]))  # fmt: skip
    return answers


def _models(models: Any) -> list[Any]:
    names = api_args.texts("models", models)
    if not names:
        raise ArgumentError("models is empty: name at least one model")
    for number, name in enumerate(names):
        if not isinstance(name, str):
            raise ArgumentTypeError(f"models[{number}] must be a string or a path, got {type(name).__name__}")
    return names


def _checked_loader(loading: dict[str, Any], changes: dict[str, Any]) -> Any:
    """Scorer.load's settings and load options, checked now; a function that loads one model with them."""
    names = {"batch_size": "batch_rows"}
    if "estimator" in changes and changes["estimator"] is None:
        del changes["estimator"]
    settings = api_args.settings(Settings(), {names.get(k, k): v for k, v in changes.items()},
                                 {"batch_rows": "batch_size"})  # fmt: skip
    defaults = {"device": "auto", "dtype": "auto", "trust_remote_code": False, "family": None, "tokenizer": None,
                "revision": None}  # fmt: skip
    options = defaults | loading
    load_options("demo", options["device"], options["dtype"], False, options["family"], options["tokenizer"],
                 options["revision"])  # fmt: skip

    def scorer_of(name: str) -> Scorer:
        return Scorer(load_model(load_options(name, **options)), settings)

    return scorer_of
