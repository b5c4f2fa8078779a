"""Input records: which JSON fields a command reads, validated with the line number at hand."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from itdd_cli.errors import InputError


@dataclass(frozen=True)
class Fields:
    """JSONL field names, as set by the --*-field options."""

    text: str = "text"
    prompt: str = "prompt"
    response: str = "response"
    chosen: str = "chosen"
    rejected: str = "rejected"
    choices: str = "choices"
    label: str = "label"
    id: str = "id"
    keep: tuple[str, ...] = ()  # input fields carried into the output row (--keep)


@dataclass(frozen=True)
class Record:
    """One input line. `prompt` is never scored; `texts` are the scored strings (two for ratio,
    k for choice, whose `label` is the index of the right one when known)."""

    line: int
    id: str | int
    prompt: str | None
    texts: tuple[str, ...]
    label: int | None = None
    names: tuple[str, ...] | None = None  # what messages call each text (None: text, or chosen and rejected)
    kept: dict[str, Any] = field(default_factory=dict)  # the --keep fields, as read


def _keys(obj: dict[str, Any]) -> str:
    names = [repr(key) for key in list(obj)[:8]]
    more = f" and {len(obj) - 8} more" if len(obj) > 8 else ""
    return f"fields {', '.join(names)}{more}" if names else "no fields"


def _text(obj: dict[str, Any], name: str, line: int, option: str) -> str:
    if name not in obj:
        raise InputError(line, f"missing field '{name}' (the record has {_keys(obj)}) — use {option} to name another")
    value = obj[name]
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise InputError(line, f"field '{name}' must be a string, got {kind}")
    if not value:
        raise InputError(line, f"field '{name}' is empty; there is nothing to score")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(line, f"field '{name}' holds an unpaired surrogate escape (\\ud8xx); fix the text") from None
    return value


def flag_duplicate_ids(
    items: Iterable[tuple[int, dict[str, Any] | InputError]], id_field: str, unit: str = "line"
) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """Pass items through, replacing a record whose id was seen before with an InputError.

    Ids compare as written (the number 1 and the string "1" differ). A record without an id gets
    its line number, which must not be an explicit id of another record either way round.
    Remembers every id (a set of them), so that output rows can be matched to input by id.
    `unit` is what a record number counts (`line`; `row` of a Parquet file; `index` of a dataset).
    """
    seen: dict[tuple[str, Any], tuple[int, bool]] = {}  # id key → (line, generated)
    for line, value in items:
        if isinstance(value, dict):
            generated = id_field not in value
            ident = line if generated else value[id_field]
            if _valid_id(ident):
                key = (type(ident).__name__, ident)
                if key in seen:
                    value = InputError(line, _collision(ident, generated, seen[key], id_field, unit))
                else:
                    seen[key] = (line, generated)
        yield line, value


def _collision(ident: Any, generated: bool, first: tuple[int, bool], id_field: str, unit: str) -> str:
    first_line, first_generated = first
    if generated:
        return (
            f"this record has no '{id_field}', and its {unit} number {ident} is already the id of {unit} "
            f"{first_line}; give it an explicit id"
        )
    if first_generated:
        return (
            f"id {ident!r} is also the {unit} number of {unit} {first_line}, which has no '{id_field}' and is "
            f"named by its {unit} number; give that record an explicit id"
        )
    return f"duplicate id {ident!r} (first on {unit} {first_line})"


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _record_id(obj: dict[str, Any], fields: Fields, line: int) -> str | int:
    if fields.id not in obj:
        return line
    value = obj[fields.id]
    if not _valid_id(value):
        raise InputError(line, f"field '{fields.id}' must be a string or an integer")
    if isinstance(value, str) and not value.strip():
        raise InputError(
            line, f"field '{fields.id}' is an empty id; give the record one, or drop the field to use the line number"
        )
    return value


def _kept(obj: dict[str, Any], fields: Fields, line: int) -> dict[str, Any]:
    missing = [name for name in fields.keep if name not in obj]
    if missing:
        raise InputError(line, f"missing field '{missing[0]}' named by --keep")
    return {name: _plain(obj[name]) for name in fields.keep}


def _plain(value: Any) -> Any:
    """A kept value as JSON can write it (a Parquet timestamp or bytes becomes its text)."""
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _prompt(obj: dict[str, Any], fields: Fields, line: int) -> str | None:
    """The prompt, never scored: an empty one is no prompt (the texts are scored unconditionally, as
    lm-eval's backend scores an empty context)."""
    if obj.get(fields.prompt) == "":
        return None
    return _text(obj, fields.prompt, line, "--prompt-field")


def text_record(obj: dict[str, Any], line: int, fields: Fields) -> Record:
    text = _text(obj, fields.text, line, "--text-field")
    return Record(line, _record_id(obj, fields, line), None, (text,), kept=_kept(obj, fields, line))


def conditional_record(obj: dict[str, Any], line: int, fields: Fields) -> Record:
    prompt = _prompt(obj, fields, line)
    response = _text(obj, fields.response, line, "--response-field")
    return Record(line, _record_id(obj, fields, line), prompt, (response,), kept=_kept(obj, fields, line))


def pair_record(obj: dict[str, Any], line: int, fields: Fields) -> Record:
    """`prompt` is optional for pairs: absent means an unconditional comparison."""
    prompt = _prompt(obj, fields, line) if fields.prompt in obj else None
    chosen = _text(obj, fields.chosen, line, "--chosen-field")
    rejected = _text(obj, fields.rejected, line, "--rejected-field")
    return Record(line, _record_id(obj, fields, line), prompt, (chosen, rejected), kept=_kept(obj, fields, line))


def choice_record(obj: dict[str, Any], line: int, fields: Fields) -> Record:
    """k-way multiple choice: optional prompt, ≥ 2 non-empty choices, an optional label (an index
    into the choices or the exact text of one). Equal choices are kept, each its own index, as lm-eval
    keeps them: the pick is the first of equal log-likelihoods and a label text names the first."""
    prompt = _prompt(obj, fields, line) if fields.prompt in obj else None
    if fields.choices not in obj:
        raise InputError(line, f"missing field '{fields.choices}' — use --choices-field to name another")
    choices = obj[fields.choices]
    if not isinstance(choices, list) or len(choices) < 2:
        got = f"a list of {len(choices)}" if isinstance(choices, list) else type(choices).__name__
        raise InputError(line, f"field '{fields.choices}' must be a list of at least 2 strings, got {got}")
    for index, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice:
            kind = "an empty string" if choice == "" else "null" if choice is None else type(choice).__name__
            raise InputError(line, f"choice {index} of '{fields.choices}' must be a non-empty string, got {kind}")
        _text({fields.choices: choice}, fields.choices, line, "--choices-field")  # unpaired surrogates
    label = _label(obj, fields, line, choices)
    names = tuple(f"choice {index}" for index in range(len(choices)))
    record_id = _record_id(obj, fields, line)
    return Record(line, record_id, prompt, tuple(choices), label, names, kept=_kept(obj, fields, line))


def _label(obj: dict[str, Any], fields: Fields, line: int, choices: list[str]) -> int | None:
    value = obj.get(fields.label)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(choices):
            raise InputError(line, f"label {value} is out of range: there are {len(choices)} choices (0-based)")
        return value
    if isinstance(value, str):
        if value not in choices:
            raise InputError(line, f"label {value!r} is none of the choices; give the exact text or an index")
        return choices.index(value)
    raise InputError(line, f"field '{fields.label}' must be a choice index or the text of a choice")
