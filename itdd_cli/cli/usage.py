"""Typer's command-line parsing errors in itdd's words: one line that names the option, says
what is wrong and lists what would be right (`--samples must be ≥ 8`, `--estimator 'foo':
choose one of …`). Knows typer's exception classes and nothing about scoring.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from typer._click.exceptions import BadOptionUsage, BadParameter, ClickException, MissingParameter, NoSuchOption

_NOT_ONE_OF = re.compile(r"'(.*)' is not one of")
_NO_SUCH_COMMAND = re.compile(r"No such command '([^']*)'\.(?: Did you mean (.*)\?)?")
_REQUIRES = re.compile(r"Option '(.*)' requires")
_EXTRA = re.compile(r"unexpected extra argument\(s\) \((.*)\)")
_FLAG = re.compile(r"Option '(.*)' does not take a value")


def _name(param: Any) -> str:
    if param.param_type_name == "argument":
        return str(param.metavar or param.name).upper()
    return max(param.opts, key=len)  # the long form: --samples, not -n


def _help_hint(ctx: Any) -> str:
    """`'itdd nll -h'`, whatever the program was called (`python -m itdd_cli`, a launcher)."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return "'" + " ".join(["itdd", *reversed(names), "-h"]) + "'"


def _bounds(param: Any) -> str:
    parts = [f"≥ {param.min}" if param.min is not None else "", f"≤ {param.max}" if param.max is not None else ""]
    return " and ".join(part for part in parts if part)


def _bad_value(error: BadParameter) -> str:
    param = error.param
    name = _name(param)
    descriptor = param.type_descriptor
    if descriptor.is_choice:
        quoted = _NOT_ONE_OF.search(error.message)
        choices = ", ".join(str(getattr(choice, "value", choice)) for choice in descriptor.choices or ())
        return f"{name}{f' {quoted.group(1)!r}' if quoted else ''}: choose one of {choices}"
    kind = {int: "an integer", float: "a number"}.get(descriptor.annotation, "")
    bounds = _bounds(param) if descriptor.is_ranged else ""
    if bounds and ("greater" in error.message or "less" in error.message):
        return f"{name} must be {bounds}"
    if kind:
        return f"{name} must be {kind}{f' {bounds}' if bounds else ''}"
    return f"{name}: {error.message}"


def describe(error: ClickException) -> str:
    """The one line (without the `itdd: error: ` prefix) for a parsing error."""
    ctx = getattr(error, "ctx", None)
    if isinstance(error, NoSuchOption):
        closest = difflib.get_close_matches(error.option_name, error.possibilities or [], n=3, cutoff=0)
        guess = f"; did you mean {' or '.join(closest)}?" if closest else ""
        return f"no such option {error.option_name}{guess} ({_help_hint(ctx)} lists them)"
    if isinstance(error, MissingParameter) and error.param is not None:
        help_text = (error.param.help or "").split("  [")[0]
        return f"missing {_name(error.param)}{f' ({help_text})' if help_text else ''}; see {_help_hint(ctx)}"
    if isinstance(error, BadParameter) and error.param is not None:
        return _bad_value(error)
    message = error.format_message()
    if isinstance(error, BadOptionUsage) and (option := _REQUIRES.search(message)):
        return f"{option.group(1)} needs a value; see {_help_hint(ctx)}"
    if isinstance(error, BadOptionUsage) and (flag := _FLAG.search(message)):
        return f"{flag.group(1)} is a flag and takes no value"
    if command := _NO_SUCH_COMMAND.search(message):
        names = [name for name, cmd in ctx.command.commands.items() if not cmd.hidden] if ctx is not None else []
        guess = f"; did you mean {command.group(2)}?" if command.group(2) else ""
        return f"no such command {command.group(1)!r}{guess} (choose one of {', '.join(names)})"
    if extra := _EXTRA.search(message):
        return f"unexpected argument(s) {extra.group(1)}; {_help_hint(ctx)} shows what it takes"
    return message[:1].lower() + message[1:]


def plain_arguments() -> None:
    """Arguments in help as in every Unix tool's: `BASE`, not typer's `{BASE}` in the usage line
    and `BASE <str>` in the list (options already show a metavar instead of a Python type)."""
    from typer.core import TyperArgument

    def usage_name(self: Any) -> str:
        name = str(self.display_name_raw)
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
