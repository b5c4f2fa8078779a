"""The commands that read result files or describe models: compare, show, inspect, models, version."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console

from itdd_cli.cli import signature as g
from itdd_cli.cli.build import loader_from
from itdd_cli.cli.options import (
    BaseArg,
    FailIfWorseOpt,
    HtmlOpt,
    HtmlOverwriteOpt,
    MetricOpt,
    NewArg,
    OtherResultsArg,
    ResultsArg,
    ShowIdOpt,
    ShowLimitOpt,
    WorstOpt,
)
from itdd_cli.cli.scoring import examples
from itdd_cli.cli.signature import Options, takes
from itdd_cli.errors import GateError, UsageError
from itdd_cli.version import __version__

COMPARE_EXAMPLES = examples(
    "itdd compare base.jsonl new.jsonl",
    "itdd compare base.csv new.csv --metric bits_per_token --fail-if-worse",
)
SHOW_EXAMPLES = examples(
    "itdd nll examples/demo.jsonl --per-token -o demo.jsonl && itdd show demo.jsonl",
    "itdd show demo.jsonl --id s1 --worst 10",
    "itdd show demo.jsonl --html demo.html",
    "itdd show base.jsonl tuned.jsonl --html diff.html   # tuned − base per token",
)
INSPECT_EXAMPLES = examples("itdd inspect -m demo", "itdd inspect -m GSAI-ML/LLaDA-8B-Base --device cpu")
MODELS_EXAMPLES = examples("itdd models", "itdd models | grep -i llada")
INSPECT_LOAD = tuple(option for option in g.LOAD if option[0] not in ("device_map", "allow_pickle"))


def _stdout(command: str) -> Console:
    """The console a command prints to; with standard output closed (`>&-`) its answer would vanish."""
    if sys.stdout is None:
        raise UsageError(f"standard output is closed; itdd {command} prints its answer there")
    return Console(highlight=False, soft_wrap=command == "compare")


def compare(base: BaseArg, new: NewArg, metric: MetricOpt = None, fail_if_worse: FailIfWorseOpt = False) -> None:
    """Pair two result files by id: the mean difference NEW − BASE, its standard error, significance."""
    from itdd_cli.results.compare import compare_files
    from itdd_cli.views.reporting import print_comparison

    console = _stdout("compare")
    comparison = compare_files(base, new, metric)
    print_comparison(console, comparison)
    if fail_if_worse and comparison.significantly_worse:
        raise GateError(f"{new} is significantly worse than {base} on {comparison.metric}")


def show(results: ResultsArg, other: OtherResultsArg = None, html: HtmlOpt = None, overwrite: HtmlOverwriteOpt = False,
         ids: ShowIdOpt = None, limit: ShowLimitOpt = None, worst: WorstOpt = 5) -> None:  # fmt: skip
    """Where the nats go: each token of a --per-token result file coloured by its share of the NLL."""
    from itdd_cli.views.heat import TERMINAL_ROWS, read_heat
    from itdd_cli.views.heat_diff import read_diff

    def read(most: int | None) -> Any:  # OTHER: the per-token difference OTHER − RESULTS
        return read_heat(results, ids, most) if other is None else read_diff(results, other, ids, most)

    if html:
        from itdd_cli.views.heat_html import write_page

        if other is not None and os.path.realpath(html) == os.path.realpath(other):
            raise UsageError(f"--html {html} is the result file {other}; name another file")
        write_page(read(limit), html, overwrite, results)
        return
    from itdd_cli.views.heat_view import print_heat

    console = _stdout("show")
    print_heat(console, read(limit or (None if ids else TERMINAL_ROWS)), worst)


@takes(g.ONE_MODEL, INSPECT_LOAD)
def inspect(options: Options) -> None:
    """What itdd detected for a model: family, mask id, framing, maximum length, …"""
    from itdd_cli.views.reporting import print_model_info

    console = _stdout("inspect")
    print_model_info(console, loader_from(options)(options.model).info)


def models() -> None:
    """Supported checkpoint families, with example hub ids."""
    from itdd_cli.bundled import DESCRIPTIONS
    from itdd_cli.models.registry import FAMILIES
    from itdd_cli.views.reporting import print_families

    print_families(_stdout("models"), FAMILIES, DESCRIPTIONS)


def version() -> None:
    typer.echo(__version__)


COMMANDS = {
    "compare": (compare, COMPARE_EXAMPLES),
    "show": (show, SHOW_EXAMPLES),
    "inspect": (inspect, INSPECT_EXAMPLES),
    "models": (models, MODELS_EXAMPLES),
}
