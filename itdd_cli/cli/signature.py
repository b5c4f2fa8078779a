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

from itdd_cli.cli.options import OPTIONS

Group = tuple[tuple[str, Any, Any], ...]  # (parameter name, Annotated option, default)


def group(names: str) -> Group:
    """Options by parameter name (`model=models`: parameter `model` declared as the option `models`)."""
    chosen = [name.partition("=") for name in names.split()]
    return tuple((param, *OPTIONS[declared or param]) for param, _, declared in chosen)


INPUT = group("input_path input_format lines dataset dataset_config split limit id_field keep skip_invalid")
OUTPUT = group("output overwrite resume fmt summary fail_above fail_below quiet")
DRAWS = group("samples estimator seed batch_size max_tokens strict")
LOAD = group("dtype device device_map block_size trust_remote_code allow_pickle family tokenizer base merge revision")
ONE_MODEL = group("model")
CHECKPOINTS = group("model=models plot")
TARGET_SE = group("target_se")
DECISIONS = group("until_decided")
ROUNDS_CAP = group("max_samples")
PAIRED = group("independent")
GUIDED = group("cfg")
PROMPTED = group("chat_template")
BOUNDARY = group("keep_boundary")
PER_TOKEN = group("per_token")
LONG = group("long context")
TEXT_FIELDS = group("text_field")
COND_FIELDS = group("prompt_field response_field")
PAIR_FIELDS = group("prompt_field chosen_field rejected_field")
CHOICE_FIELDS = group("prompt_field choices_field label_field")


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
