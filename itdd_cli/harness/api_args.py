"""The Python API's arguments, checked by the command line's rules (checks.py) in its words, naming
the keyword instead of the option: `samples must be ≥ 8`, `estimator 'foo': choose one of …`.

A failed rule is an `ArgumentError` (a UsageError and a ValueError); a str where a list of texts is
expected is an `ArgumentTypeError` (a UsageError and a TypeError): iterating it would score its
characters as records. Numbers given as text are refused: Python passes numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from itdd_cli.core import checks
from itdd_cli.core.settings import Settings
from itdd_cli.core.windows import Long
from itdd_cli.errors import ArgumentError, ArgumentTypeError, InputError, UsageError
from itdd_cli.estimators import Estimator
from itdd_cli.io.records import flag_duplicate_ids

if TYPE_CHECKING:
    from itdd_cli.results.rows import Command


@contextlib.contextmanager
def as_argument_errors() -> Iterator[None]:
    try:
        yield
    except ArgumentError:
        raise
    except UsageError as error:
        raise ArgumentError(str(error)) from None


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return value


def _samples(name: str, value: Any) -> int:
    """At least two draws, and no more than memory holds for the smallest record (as `--samples`)."""
    from itdd_cli.scoring.runner import check_samples

    samples = checks.integer(name, value, checks.MIN_SAMPLES, text=False)
    try:
        check_samples(samples, 1)
    except UsageError as error:
        raise UsageError(str(error).replace("--samples", name)) from None
    return samples


def _optional(rule: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else rule(name, value)


_RULES: dict[str, Callable[[str, Any], Any]] = {
    "estimator": lambda name, value: Estimator(checks.choice(name, value, [member.value for member in Estimator])),
    "samples": _samples,
    "seed": lambda name, value: checks.seed(name, value, text=False),
    "independent": _flag,
    "batch_rows": _optional(lambda name, value: checks.batch_rows(name, value, text=False)),
    "max_tokens": _optional(lambda name, value: checks.integer(name, value, 1, text=False)),
    "chat_template": _flag,
    "long": lambda name, value: Long(checks.choice(name, value, [member.value for member in Long])),
    "context": lambda name, value: checks.integer(name, value, 0, text=False),
    "keep_boundary": _flag,
    "strict": _flag,
    "target_se": _optional(lambda name, value: checks.number(name, value, 0.0)),
    "until_decided": _optional(checks.decision_level),  # the CLI's rule: α in (0, 1) or a z from 1 to 8
    "max_samples": _optional(lambda name, value: checks.integer(name, value, checks.MIN_SAMPLES, text=False)),
    "per_token": _flag,
    "cfg": lambda name, value: checks.number(name, value, 0.0),
}
assert set(_RULES) == {field.name for field in fields(Settings)}, "every setting has its rule"


def settings(base: Settings, changes: dict[str, Any], names: dict[str, str] | None = None) -> Settings:
    """`base` with `changes` (Settings field → value), each checked; `names` renames a field in
    messages (`Scorer.load`'s `batch_size` is the field `batch_rows`)."""
    shown = names or {}
    with as_argument_errors():
        unknown = sorted(set(changes) - set(_RULES))
        if unknown:
            raise UsageError(f"unknown setting {unknown[0]!r}; choose from {', '.join(_RULES)}")
        checked = {key: _RULES[key](shown.get(key, key), value) for key, value in changes.items()}
        result = replace(base, **checked)
        checks.combination(result, lambda key: shown.get(key, key))
    return result


def load_options(dtype: Any, device: Any, family: Any) -> str:
    """`Scorer.load`'s dtype, device and family, by `--dtype`, `--device` and `--family`'s rules; the
    dtype's name (lm-eval's and PyTorch's spellings, as `--dtype` takes them: `bf16` → `bfloat16`)."""
    from itdd_cli.models.loading import check_device
    from itdd_cli.models.registry import check_family

    with as_argument_errors():
        dtype = checks.dtype("dtype", dtype)
        _named("device", check_device, device)
        if family is not None:
            _named("family", check_family, family)
    return dtype


def _named(name: str, check: Callable[[str], Any], value: Any) -> None:
    """A CLI check on a str, its message naming the keyword instead of the option."""
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, got {type(value).__name__}")
    try:
        check(value)
    except UsageError as error:
        raise UsageError(str(error).replace(f"--{name} cpu", f"{name}='cpu'").replace(f"--{name}", name)) from None


def texts(name: str, value: Any) -> list[Any]:
    """A sequence of texts (or of lists of choices) as a list; a lone str is refused, not split."""
    if isinstance(value, str | bytes):
        raise ArgumentTypeError(f"{name} must be a list, one per item, got a single {type(value).__name__} "
                                f"{_short(value)}: wrap one item in a list, [item]")  # fmt: skip
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise ArgumentTypeError(f"{name} must be a list, got {type(value).__name__}")
    return list(value)


def _short(value: str | bytes) -> str:
    return repr(value[:20]) + ("…" if len(value) > 20 else "")


def choices(value: Any) -> list[list[str]]:
    """One list of choices per question; a question given as a lone str is refused, not split."""
    questions = texts("choices", value)
    for number, question in enumerate(questions, 1):
        if isinstance(question, str | bytes):
            raise ArgumentTypeError(f"choices[{number - 1}] must be a list of the question's choices, got a "
                                    f"single {type(question).__name__} {_short(question)}: choices is one list "
                                    "per question, e.g. [[' yes', ' no']]")  # fmt: skip
    return questions


def same_lengths(**lists: list[Any]) -> None:
    """Lists that pair up item by item must be as long as each other."""
    lengths = {name: len(items) for name, items in lists.items()}
    if len(set(lengths.values())) > 1:
        said = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise ArgumentError(f"lists of different lengths ({said}); give one of each per item")


def identified(
    command: Command, objects: list[dict[str, Any]], ids: Any, extra: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each item's object with its `id` (when `ids` is given; the CLI's rules for an id: a str or an int,
    unique, checked per item as the records are read), and each item's extra fields (`--keep`'s rule: no
    name of a result field)."""
    from itdd_cli.results.rows import SPECS

    if ids is not None:
        ids = texts("ids", ids)
        same_lengths(items=objects, ids=ids)
        for number, ident in enumerate(ids):  # the rule of the CLI's `id` field (records.py)
            if not isinstance(ident, str | int) or isinstance(ident, bool):
                raise ArgumentTypeError(f"ids[{number}] must be a string or an integer, got {type(ident).__name__}")
            if isinstance(ident, str) and not ident.strip():
                raise ArgumentError(f"ids[{number}] is an empty id; give the item one, or leave ids out")
        objects = [obj | {"id": ident} for obj, ident in zip(objects, ids, strict=True)]
        for _, error in flag_duplicate_ids(enumerate(objects, 1), "id", "item"):
            if isinstance(error, InputError):  # a repeated id, before any model work
                raise error
    if extra is None:
        return objects, [{} for _ in objects]
    extras = texts("extra", extra)
    same_lengths(items=objects, extra=extras)
    names: list[str] = []
    for number, item in enumerate(extras):
        if not isinstance(item, Mapping) or not all(isinstance(key, str) for key in item):
            raise ArgumentTypeError(f"extra[{number}] must be a dict of named fields, got {type(item).__name__}")
        names += [key for key in item if key not in names]
    with as_argument_errors():
        checks.kept_names(names, lambda name: SPECS[command].field(name) or (name == "extra" or None), "extra")
    return objects, [dict(item) for item in extras]
