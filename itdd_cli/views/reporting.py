"""The one place that renders: result sinks (table / JSONL / CSV) and the closing summary.

Data goes to the sink's stream (standard output by default); the summary of a JSONL or CSV
run goes to standard error so that pipes stay clean.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from itdd_cli.core.settings import Settings
from itdd_cli.io.formats import Format
from itdd_cli.io.writers import CsvWriter, JsonlWriter
from itdd_cli.results.rows import Command, spec_for
from itdd_cli.results.summary import Summary
from itdd_cli.views.progress_view import progress_bar as progress_bar  # re-exported: the session imports it here
from itdd_cli.views.visible import visible

if TYPE_CHECKING:
    from itdd_cli.models.base import ModelInfo

FILE_WIDTH = 160


class Sink(Protocol):
    def write(self, row: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_cell(item) for item in value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return visible(str(value))  # an id or a kept field from the input: no escape sequence acts


def _natural_width(console: Console, table: Table) -> int:
    """The width a table takes with no cell cut or folded."""
    return Measurement.get(console, console.options.update_width(1_000_000), table).maximum


class TableSink:
    """Rows are kept until the end: a table needs its column widths.

    A cell is never folded (a broken number or id reads as another value): when the terminal is
    too narrow for every column, the least important ones (the highest `Field.rank`; columns of
    one rank go together, e.g. tokens_chosen never without tokens_rejected) are left out until
    the table fits, then any left-out rank that still fits comes back, and a line below the table
    says which columns are missing.
    """

    def __init__(self, console: Console, command: Command, guided: bool = False) -> None:
        self.console = console
        self.spec = spec_for(command, guided)
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def _table(self, names: list[str]) -> Table:
        table = Table(title=f"itdd {self.spec.command.value}", title_justify="left")
        for name in names:
            field = self.spec.field(name)
            justify = "left" if field is None or field.kind is str else "right"
            table.add_column(Text(visible(name)), justify=justify, no_wrap=True)  # a --keep name is the user's
        for row in self.rows:
            table.add_row(*(Text(_cell(row[name])) for name in names))  # Text: "[red]" in an id is not markup
        return table

    def _columns(self, names: list[str]) -> list[str]:
        rank = {name: field.rank if (field := self.spec.field(name)) else 1 for name in names}
        return columns_that_fit(self.console, names, rank, self._table)

    def close(self) -> None:
        if not self.rows:
            return
        # a column empty in every row (`decided` without --until-decided) is not a column to show
        names = [name for name in self.rows[0] if any(row[name] is not None for row in self.rows)]
        shown = self._columns(names)
        print_unfolded(self.console, self._table(shown))
        left_out = [name for name in names if name not in shown]
        if left_out:
            print_left_out(self.console, left_out, "jsonl/csv have all")


def columns_that_fit(console: Console, names: list[str], rank: dict[str, int],
                     table_of: Callable[[list[str]], Table]) -> list[str]:  # fmt: skip
    """The columns to show: whole ranks left out, the least important (highest) first, until the table
    fits; then each left-out rank that fits in the room left comes back, the most important first."""
    optional = sorted({rank[name] for name in names if rank[name] > 1})
    kept = {1, *optional}

    def fits(ranks: set[int]) -> bool:
        table = table_of([name for name in names if rank[name] in ranks])
        return _natural_width(console, table) <= console.width

    for worst in reversed(optional):
        if fits(kept):
            break
        kept.discard(worst)
    for back in optional:
        if back not in kept and fits(kept | {back}):
            kept.add(back)
    return [name for name in names if rank[name] in kept]


def print_unfolded(console: Console, table: Table) -> None:
    """Every cell whole: when even the rank-1 columns do not fit, the terminal wraps lines rather
    than rich cutting cells."""
    width = console.width
    try:
        console.width = max(width, _natural_width(console, table))
        console.print(table)
    finally:
        console.width = width


def print_left_out(console: Console, left_out: list[str], where: str) -> None:
    """The terminal's width, not the table's: one or two lines, not a narrow column."""
    console.print(f"left out to fit {console.width} columns: {visible(', '.join(left_out))} ({where})",
                  markup=False, highlight=False)  # fmt: skip


class _PipeConsole(Console):
    """rich exits 1 on a closed pipe; itdd's error map ends it quietly (exit 141) instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def console_for(stream: TextIO) -> Console:
    """A terminal's own width; a file gets room for every column."""
    return _PipeConsole(file=stream, highlight=False, width=None if stream.isatty() else FILE_WIDTH)


def make_sink(fmt: Format, stream: TextIO, command: Command, header: bool = True, guided: bool = False) -> Sink:
    """`header=False` continues a CSV file that already has one (--resume)."""
    if fmt is Format.csv:
        return CsvWriter(stream, header)
    if fmt is Format.table:
        return TableSink(console_for(stream), command, guided)
    return JsonlWriter(stream)


def _share(se: float) -> str:
    """A binomial SE as a percentage; "n/a" where one record gives none."""
    return f"{se:.1%}" if math.isfinite(se) else "n/a"


def summary_lines(summary: Summary, info: ModelInfo, settings: Settings) -> list[str]:
    wall = summary.wall_seconds
    notes = f" · skipped {summary.skipped}" if summary.skipped else ""
    notes += f" · {summary.lossy} with characters lost in tokenization" if summary.lossy else ""
    if summary.records == 0:  # no mean of nothing: never a NaN
        lines = [f"records 0{notes} · nothing was scored (the input holds no records)"]
        return lines + [f"model {info.name} ({info.family}, {info.dtype} on {info.device})"]
    guided = "guided " if summary.guided else ""  # --cfg: a guided score, not a log-likelihood
    lines = [
        f"records {summary.records}{notes} · tokens {summary.tokens} · "
        f"{guided}NLL/token {summary.nll_per_token:.4f} nats (Σ NLL / Σ tokens) · {guided or 'corpus '}perplexity "
        f"{summary.corpus_ppl:.3f}",
    ]
    if summary.spec.measures_text:
        lines.append(
            f"bytes {summary.bytes} · {guided}bits/byte {summary.bits_per_byte:.4f} · "
            f"words {summary.words} · {guided}word perplexity {summary.word_perplexity:.3f}"
        )
    coupling = "independent" if settings.independent else "coupled"
    tallies = summary.tallies()
    lines += [tally.line.format(value=tallies[tally.name], se=_share(tallies.get(f"{tally.name}_se", math.nan)),
                                rows=summary.tally_rows.get(tally.name, 0), coupling=coupling)
              for tally in summary.spec.tallies if tally.line and summary.tally_rows.get(tally.name)]  # fmt: skip
    lines.append(
        f"model {info.name} ({info.family}, {info.dtype} on {info.device})"
        f"{f' · attention {info.attention}' if info.attention else ''} · framing: {info.framing}"
        f"{' + chat template (prompt as user turn)' if settings.chat_template else ''} · "
        f"estimator {settings.estimator.value}, {settings.samples} passes per record, seed {settings.seed}"
        + (f" · guidance --cfg {settings.cfg:g}: two forward rows per pass (a guided score, not a log-likelihood)"
           if settings.guidance is not None else "")
        + (f" · long texts in rolling windows (context {settings.context})" if settings.long == "rolling" else "")
        + (f" · {summary.processes} processes" if summary.processes > 1 else "")
    )
    lines.append(f"forward passes {summary.passes} in all")
    rate = summary.records / wall if wall > 0 else math.inf
    scored = summary.tokens / wall if wall else 0  # the input's tokens; the progress line counts every draw's
    lines.append(f"wall {wall:.2f} s · {rate:.2f} records/s · {scored:.1f} scored tokens/s")
    return lines


def stderr_console() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def notice(message: str) -> None:
    """One line on standard error, never markup-interpreted."""
    stderr_console().print(f"itdd: {visible(message)}", markup=False)


def print_summary(console: Console, summary: Summary, info: ModelInfo, settings: Settings) -> None:
    """On a terminal a long line breaks between its " · " fields (a path or a token never split)."""
    width = _terminal_width(console)
    for line in summary_lines(summary, info, settings):  # a model's name is the user's text: made visible
        for part in fitted(visible(line).split(" · "), width, " · "):
            console.print(part, highlight=False, markup=False, soft_wrap=True)


def block_layout(block_size: int | None) -> str:
    if block_size is None:
        return "bidirectional"
    return (f"block diffusion, block size {block_size} (blocks from position 0; [noisy ‖ clean] rows: "
            "one pass carries a draw of every block, earlier blocks clean, later ones absent)")  # fmt: skip


def print_model_info(console: Console, info: ModelInfo) -> None:
    table = Table(show_header=False, title=Text(f"itdd inspect {visible(info.name)}"), title_justify="left")
    table.add_column("field")
    table.add_column("value")
    rows = {
        "family": info.family,
        "parameters": f"{info.parameters:,}",
        "dtype": info.dtype,
        "device": info.device,
        "mask id": info.mask_id,
        "pad id": info.pad_id,
        "vocabulary": info.vocab_size,
        "shifted logits": "yes" if info.shifted_logits else "no",
        "time input": "yes" if info.time_input else "no",
        "framing": info.framing,
        "maximum length": "unbounded" if info.max_length is None else info.max_length,
        "attention": block_layout(info.block_size),
    }
    if adapter := info.adapter:  # -m ADAPTER_DIR: what was applied, and to what
        scaling = "alpha/√r (rsLoRA)" if adapter.rslora else "alpha/r"
        rows |= {
            "LoRA base": adapter.base,
            "LoRA rank": adapter.describe_rank(),
            "LoRA alpha": f"{adapter.alpha:g} (scale {scaling})",
            "LoRA targets": f"{', '.join(adapter.targets)} ({adapter.layers} layers)",
            "LoRA modules_to_save": ", ".join(adapter.saved) or "none",
            "LoRA applied": "merged into the weights" if adapter.merged else "beside the weights (--no-merge)",
        }
    for key, value in rows.items():
        table.add_row(key, Text(visible(str(value))))
    console.print(table)


def _longest_word(texts: list[str]) -> int:
    return max(len(word) for text in texts for word in text.split())


def print_families(console: Console, families: dict[str, Any], bundled: dict[str, str]) -> None:
    """Hub ids one per line and never folded (a cut id cannot be pasted); descriptions wrap between
    words, never cut. Where the ids leave the descriptions too little room (80 columns), the ids go
    below each description instead of beside it."""
    names = [family.name for family in families.values()]
    ids = [hub_id for family in families.values() for hub_id in family.examples]
    descriptions = [family.description for family in families.values()]
    room = max(len(name) for name in names) + max(len(hub_id) for hub_id in ids) + 10  # 3 columns: padding, rules
    beside = console.width - room >= max(24, _longest_word(descriptions))
    table = Table(title="itdd models", title_justify="left", show_lines=True)
    table.add_column("family", no_wrap=True)
    if beside:
        table.add_column("what it loads", ratio=1, min_width=_longest_word(descriptions), overflow="fold")
        table.add_column("example hub ids", no_wrap=True)
    else:
        table.add_column("what it loads; example hub ids", ratio=1, overflow="fold")
    for family in families.values():
        examples = Text("\n".join(("" if beside else "  ") + hub_id for hub_id in family.examples), no_wrap=True)
        if beside:
            table.add_row(family.name, family.description, examples)
        else:
            table.add_row(family.name, Group(Text(family.description, overflow="fold"), examples))
    console.print(table)
    shipped = Table(title="bundled models (-m NAME, no download; 'demo' is the default)", title_justify="left")
    shipped.add_column("name", no_wrap=True)
    shipped.add_column("what it is", ratio=1, min_width=_longest_word(list(bundled.values())), overflow="fold")
    for name, description in bundled.items():
        shipped.add_row(name, description)
    console.print(shipped)


def fitted(fields: list[str], width: int | None, separator: str = " ") -> list[str]:
    """`fields` joined by `separator` into lines of at most `width` columns (None: one line), broken
    only between fields: a number, a word or "5 % critical 12.706" is never split. A field wider
    than `width` gets a line of its own."""
    if width is None:
        return [separator.join(fields)]
    lines: list[str] = []
    for field in fields:
        if lines and len(lines[-1]) + len(separator) + len(field) <= width:
            lines[-1] += separator + field
        else:
            lines.append(field if not lines else "  " + field)  # a continued line is indented
    return lines


def _terminal_width(console: Console) -> int | None:
    """A terminal's width for lines that must not wrap mid-word; files and pipes keep whole lines."""
    return console.width if console.is_terminal else None


def print_comparison(console: Console, comparison: Any) -> None:
    c = comparison
    uniform = f"every pair differs by exactly {c.difference:+.6g},".split() + "so the pairs give no spread".split()
    if c.se is None:
        why = [*uniform, "and", "the"] if c.uniform else "one paired record and its".split()
        verdict = ["not", "judged:", *why, *f"rows carry no standard error of {c.metric}".split()]
        spread = [f"mean difference (new − base) {c.difference:+.6g}", "(no standard error)"]
    elif c.exact:
        direction = "worse" if c.significantly_worse else "better"
        verdict = [f"significantly {direction}", *"(exact: the rows carry no Monte Carlo error)".split()]
        exactly = "exactly (the rows' standard errors are 0)".split()
        spread = [f"mean difference (new − base) {c.difference:+.6g}", *exactly]
    else:
        verdict = [
            ("significantly worse" if c.significantly_worse else "significantly better")
            if c.significant
            else "no significant difference"
        ]
        test = "normal, from the rows' own SEs" if math.isinf(c.df) else f"Student t, {c.df:.0f} d.o.f."
        spread = [f"mean difference (new − base) {c.difference:+.6g} ± {c.se:.3g}", f"(t = {c.t:+.2f},",
                  f"p = {c.p:.3g};", f"5 % critical {c.critical:.3f},", f"{test})"]  # fmt: skip
    no_spread = [*uniform[:-1], "spread;", *"the rows' own standard errors judge it".split()]
    fields = [
        [f"{c.metric}, mean over records: base {c.mean_base:.6g} → new {c.mean_new:.6g}",
         f"over {c.paired} paired records"]
        + c.unpaired_fields(),
        *([no_spread] if c.uniform and c.se is not None else []),
        spread,
        ["verdict:", *verdict],
    ]
    width = _terminal_width(console)
    for line in (line for group in fields for line in fitted([visible(field) for field in group], width)):
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # ids of unpaired rows made visible
