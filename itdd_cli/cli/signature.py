"""The scoring commands' options, declared once in groups: a command names the groups it takes and
receives their values in one `Options` object, so ~40 parameters are never written out per command.

typer reads a command's parameters from its signature; `takes` gives the wrapper the signature of
the groups' options (annotations as objects, so typer needs no source to evaluate).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from itdd_cli.cli import options as o
from itdd_cli.core.windows import Long
from itdd_cli.estimators.kinds import DEFAULT_ESTIMATOR
from itdd_cli.io.formats import Format, InputFormat

Group = tuple[tuple[str, Any, Any], ...]  # (parameter name, Annotated option, default)

INPUT: Group = (
    ("input_path", o.InputArg, None),
    ("input_format", o.InputFormatOpt, InputFormat.auto),
    ("lines", o.LinesOpt, False),
    ("dataset", o.DatasetOpt, None),
    ("dataset_config", o.DatasetConfigOpt, None),
    ("split", o.SplitOpt, None),
    ("limit", o.LimitOpt, None),
    ("id_field", o.IdFieldOpt, "id"),
    ("keep", o.KeepOpt, None),
    ("skip_invalid", o.SkipInvalidOpt, False),
)
OUTPUT: Group = (
    ("output", o.OutputOpt, None),
    ("overwrite", o.OverwriteOpt, False),
    ("resume", o.ResumeOpt, False),
    ("fmt", o.FormatOpt, Format.auto),
    ("summary", o.SummaryOpt, None),
    ("fail_above", o.FailAboveOpt, None),
    ("fail_below", o.FailBelowOpt, None),
    ("quiet", o.QuietOpt, False),
)
DRAWS: Group = (
    ("samples", o.SamplesOpt, 128),
    ("estimator", o.EstimatorOpt, DEFAULT_ESTIMATOR),
    ("seed", o.SeedOpt, 0),
    ("batch_size", o.BatchSizeOpt, "auto"),
    ("max_tokens", o.MaxTokensOpt, None),
    ("strict", o.StrictOpt, False),
)
LOAD: Group = (
    ("dtype", o.DtypeOpt, o.Dtype.auto),
    ("device", o.DeviceOpt, "auto"),
    ("device_map", o.DeviceMapOpt, None),
    ("block_size", o.BlockSizeOpt, None),
    ("trust_remote_code", o.TrustOpt, False),
    ("allow_pickle", o.AllowPickleOpt, False),
    ("family", o.FamilyOpt, None),
    ("tokenizer", o.TokenizerOpt, None),
    ("revision", o.RevisionOpt, None),
)
ONE_MODEL: Group = (("model", o.ModelOpt, None),)
CHECKPOINTS: Group = (("model", o.ModelsOpt, None), ("plot", o.PlotOpt, None))
TARGET_SE: Group = (("target_se", o.TargetSeOpt, None),)
DECISIONS: Group = (("until_decided", o.UntilDecidedOpt, None),)
ROUNDS_CAP: Group = (("max_samples", o.MaxSamplesOpt, None),)
PAIRED: Group = (("independent", o.IndependentOpt, False),)
PROMPTED: Group = (("chat_template", o.ChatTemplateOpt, False),)
BOUNDARY: Group = (("keep_boundary", o.KeepBoundaryOpt, False),)
PER_TOKEN: Group = (("per_token", o.PerTokenOpt, False),)
LONG: Group = (("long", o.LongOpt, Long.error), ("context", o.ContextOpt, 0))
TEXT_FIELDS: Group = (("text_field", o.TextFieldOpt, "text"),)
COND_FIELDS: Group = (("prompt_field", o.PromptFieldOpt, "prompt"), ("response_field", o.ResponseFieldOpt, "response"))
PAIR_FIELDS: Group = (
    ("prompt_field", o.PromptFieldOpt, "prompt"),
    ("chosen_field", o.ChosenFieldOpt, "chosen"),
    ("rejected_field", o.RejectedFieldOpt, "rejected"),
)
CHOICE_FIELDS: Group = (
    ("prompt_field", o.PromptFieldOpt, "prompt"),
    ("choices_field", o.ChoicesFieldOpt, "choices"),
    ("label_field", o.LabelFieldOpt, "label"),
)


class Options(SimpleNamespace):
    """One command's option values by name; an option the command does not take reads as None."""

    def __getattr__(self, name: str) -> Any:  # only called for names that are not set
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def named(self) -> dict[str, Any]:
        return dict(vars(self))


def takes(*groups: Group) -> Callable[[Callable[[Options], None]], Callable[..., None]]:
    """A typer command taking every option of `groups`, calling `body(Options(...))`."""
    parameters = {name: (annotation, default) for group in groups for name, annotation, default in group}

    def decorate(body: Callable[[Options], None]) -> Callable[..., None]:
        @functools.wraps(body)
        def command(**values: Any) -> None:
            body(Options(**values))

        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, (annotation, default) in parameters.items()]  # fmt: skip
        )
        command.__annotations__ = {name: annotation for name, (annotation, _) in parameters.items()}
        del command.__wrapped__  # typer must see the groups' signature, not the body's
        return command

    return decorate
