"""itdd's command line: the typer app, its commands (cli/scoring.py, cli/tools.py, cli/lm_eval.py) and
`main`. Commands stay thin: they name their options and call one library function."""

from __future__ import annotations

import signal
from typing import Any

import typer
from typer._click.core import Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from itdd_cli.cli import lm_eval, scoring, tools
from itdd_cli.cli.failures import BROKEN_PIPE as BROKEN_PIPE  # the exit code of a closed pipe, for tests
from itdd_cli.cli.failures import report
from itdd_cli.cli.options import VersionOpt
from itdd_cli.cli.usage import plain_arguments


class _ItddGroup(TyperGroup):
    """Applies ERROR_MAP around every command, and to the top level's own options (`itdd --bogus`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except NoArgsIsHelpError:
            raise  # bare `itdd`: the help
        except ClickException as error:
            raise typer.Exit(report(error)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as error:
            if isinstance(error, ClickException) and getattr(error, "ctx", None) is None and ctx.invoked_subcommand:
                command = self.get_command(ctx, ctx.invoked_subcommand)  # so its message says 'itdd nll -h'
                error.ctx = Context(command, info_name=ctx.invoked_subcommand, parent=ctx)  # type: ignore[attr-defined]
            raise typer.Exit(report(error)) from None


plain_arguments()

app = typer.Typer(
    name="itdd",
    cls=_ItddGroup,
    help="Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Run 'itdd COMMAND -h' for a command's options and examples; README.md has the details.",
)


@app.callback()
def _top(version: VersionOpt = False) -> None:
    """Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators)."""


for name, (command, epilog) in scoring.COMMANDS.items():
    app.command(name, epilog=epilog)(command)
app.command("lm-eval", context_settings=lm_eval.SETTINGS, add_help_option=False)(lm_eval.lm_eval)
for name, (command, epilog) in tools.COMMANDS.items():
    app.command(name, epilog=epilog)(command)
app.command("version", hidden=True)(tools.version)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run like Ctrl-C: finished rows stay written


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    app()  # failures are mapped to one line and an exit code by ERROR_MAP, in _ItddGroup
