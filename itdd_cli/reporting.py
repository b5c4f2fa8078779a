"""The one place that renders: result sinks (table / JSONL / CSV) and the closing summary.

Data goes to the sink's stream (standard output by default); the summary of a JSONL or CSV
run goes to standard error so that pipes stay clean.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from itdd_cli.io.formats import Format
from itdd_cli.io.writers import CsvWriter, JsonlWriter
from itdd_cli.rows import SPECS, Command
from itdd_cli.settings import Settings
from itdd_cli.summary import Summary

if TYPE_CHECKING:
    from itdd_cli.engine import BatchProgress
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
    return str(value)


def _natural_width(console: Console, table: Table) -> int:
    """The width a table takes with no cell cut or folded."""
    return Measurement.get(console, console.options.update_width(1_000_000), table).maximum


class TableSink:
    """Rows are kept until the end: a table needs its column widths.

    A cell is never folded (a broken number or id reads as another value): when the terminal is
    too narrow for every column, the least important ones (the highest `Field.rank`) are left
    out, and the table's caption says which.
    """

    def __init__(self, console: Console, command: Command) -> None:
        self.console = console
        self.spec = SPECS[command]
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def _table(self, names: list[str], left_out: list[str]) -> Table:
        caption = None
        if left_out:
            caption = f"left out to fit {self.console.width} columns: {', '.join(left_out)} (jsonl/csv have all)"
        table = Table(title=f"itdd {self.spec.command.value}", title_justify="left", caption=caption,
                      caption_justify="left")  # fmt: skip
        for name in names:
            field = self.spec.field(name)
            justify = "left" if field is None or field.kind is str else "right"
            table.add_column(name, justify=justify, no_wrap=True)
        for row in self.rows:
            table.add_row(*(_cell(row[name]) for name in names))
        return table

    def close(self) -> None:
        if not self.rows:
            return
        names = list(self.rows[0])
        rank = {name: field.rank if (field := self.spec.field(name)) else 1 for name in names}
        left_out: list[str] = []
        table = self._table(names, left_out)
        for worst in sorted({rank[name] for name in names if rank[name] > 1}, reverse=True):
            if _natural_width(self.console, table) <= self.console.width:
                break  # columns of one rank go together: tokens_chosen never without tokens_rejected
            left_out += [name for name in names if rank[name] == worst]
            table = self._table([name for name in names if name not in left_out], left_out)
        width = self.console.width
        try:  # when even the rank-1 columns do not fit, the terminal wraps lines rather than rich cutting cells
            self.console.width = max(width, _natural_width(self.console, table))
            self.console.print(table)
        finally:
            self.console.width = width


class _PipeConsole(Console):
    """rich exits 1 on a closed pipe; itdd's error map ends it quietly (exit 141) instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def console_for(stream: TextIO) -> Console:
    """A terminal's own width; a file gets room for every column."""
    return _PipeConsole(file=stream, highlight=False, width=None if stream.isatty() else FILE_WIDTH)


def make_sink(fmt: Format, stream: TextIO, command: Command, header: bool = True) -> Sink:
    """`header=False` continues a CSV file that already has one (--resume)."""
    if fmt is Format.csv:
        return CsvWriter(stream, header)
    if fmt is Format.table:
        return TableSink(console_for(stream), command)
    return JsonlWriter(stream)


def summary_lines(summary: Summary, info: ModelInfo, settings: Settings) -> list[str]:
    wall = summary.wall_seconds
    notes = f" · skipped {summary.skipped}" if summary.skipped else ""
    notes += f" · {summary.lossy} with characters lost in tokenization" if summary.lossy else ""
    if summary.records == 0:  # no mean of nothing: never a NaN
        lines = [f"records 0{notes} · nothing was scored (the input holds no records)"]
        return lines + [f"model {info.name} ({info.family}, {info.dtype} on {info.device})"]
    lines = [
        f"records {summary.records}{notes} · tokens {summary.tokens} · "
        f"mean NLL/token {summary.nll_per_token:.4f} nats · corpus perplexity {summary.corpus_ppl:.3f}",
    ]
    if summary.spec.measures_text:
        lines.append(
            f"bytes {summary.bytes} · bits/byte {summary.bits_per_byte:.4f} · "
            f"words {summary.words} · word perplexity {summary.word_perplexity:.3f}"
        )
    coupling = "independent" if settings.independent else "coupled"
    tallies = summary.tallies()
    lines += [tally.line.format(value=tallies[tally.name], se=tallies.get(f"{tally.name}_se", math.nan),
                                rows=summary.tally_rows.get(tally.name, 0), coupling=coupling)
              for tally in summary.spec.tallies if tally.line and summary.tally_rows.get(tally.name)]  # fmt: skip
    lines.append(
        f"model {info.name} ({info.family}, {info.dtype} on {info.device}) · framing: {info.framing}"
        f"{' + chat template (prompt as user turn)' if settings.chat_template else ''} · "
        f"estimator {settings.estimator.value}, {settings.samples} passes per record, seed {settings.seed}"
        + (f" · long texts in rolling windows (context {settings.context})" if settings.long == "rolling" else "")
        + (f" · {summary.processes} processes" if summary.processes > 1 else "")
    )
    lines.append(f"forward passes {summary.passes} in all")
    rate = summary.records / wall if wall > 0 else math.inf
    lines.append(f"wall {wall:.2f} s · {rate:.2f} records/s · {summary.tokens / wall if wall else 0:.1f} tokens/s")
    return lines


def stderr_console() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def notice(message: str) -> None:
    """One line on standard error, never markup-interpreted."""
    stderr_console().print(f"itdd: {message}", markup=False)


def print_summary(console: Console, summary: Summary, info: ModelInfo, settings: Settings) -> None:
    for line in summary_lines(summary, info, settings):
        console.print(line, highlight=False, markup=False)


def block_layout(block_size: int | None) -> str:
    if block_size is None:
        return "bidirectional"
    return (f"block diffusion, block size {block_size} (blocks from position 0; [noisy ‖ clean] rows: "
            "one pass carries a draw of every block, earlier blocks clean, later ones absent)")  # fmt: skip


def print_model_info(console: Console, info: ModelInfo) -> None:
    table = Table(show_header=False, title=f"itdd inspect {info.name}", title_justify="left")
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
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)


def print_families(console: Console, families: dict[str, Any], bundled: dict[str, str]) -> None:
    """Hub ids one per line and never folded (a cut id cannot be pasted); descriptions wrap."""
    table = Table(title="itdd models", title_justify="left", show_lines=True)
    table.add_column("family", no_wrap=True)
    table.add_column("what it loads", ratio=1)
    table.add_column("example hub ids", no_wrap=True)
    for family in families.values():
        table.add_row(family.name, family.description, "\n".join(family.examples))
    console.print(table)
    shipped = Table(title="bundled models (-m NAME, no download; 'demo' is the default)", title_justify="left")
    shipped.add_column("name", no_wrap=True)
    shipped.add_column("what it is", ratio=1)
    for name, description in bundled.items():
        shipped.add_row(name, description)
    console.print(shipped)


def _count_records(path: str | None) -> int | None:
    """Non-blank lines of a file, for the progress total; None for standard input."""
    if path in (None, "-") or not Path(path).is_file():
        return None
    with open(path, "rb") as file:
        return sum(1 for line in file if line.strip())


class _Bar:
    """The progress bar's two inputs: the engine after each forward batch, the session after each row.

    The bar counts (record × draw) rows done of the rows known (the records read so far); with a
    file's record count it extrapolates the total, which the ETA follows.
    """

    def __init__(self, progress: Progress | None, records_total: int | None) -> None:
        self.progress = progress
        self.records_total = records_total  # records this run will score (None: unknown, e.g. stdin)
        self.records = 0
        self.started = time.perf_counter()
        self.task = (
            progress.add_task("scoring", total=None, rows="0 rows", records=self._records(), rate="–")
            if progress
            else None
        )

    def _records(self) -> str:
        return f"{self.records:,}{f'/{self.records_total:,}' if self.records_total is not None else ''} records"

    def batch(self, done: BatchProgress) -> None:
        if self.progress is None or self.task is None:
            return
        total = done.rows_known
        if self.records_total and done.records_known:
            total = max(total, round(done.rows_known * self.records_total / done.records_known))
        wall = time.perf_counter() - self.started
        rate = f"{done.tokens / wall:,.0f}" if wall > 0 else "–"
        self.progress.update(self.task, completed=done.rows_done, total=total, rate=rate,
                             rows=f"{done.rows_done:,}/{done.rows_known:,} rows", refresh=True)  # fmt: skip

    def record(self, summary: Summary) -> None:
        if self.progress is None or self.task is None or summary.records + summary.skipped == self.records:
            return
        self.records = summary.records + summary.skipped
        self.progress.update(self.task, records=self._records(), refresh=True)


@contextmanager
def progress_bar(path: str | None, enabled: bool, finished: int = 0) -> Iterator[_Bar]:
    """A progress bar on stderr, advanced per forward batch; a bar that draws nothing when disabled.

    `finished`: records an earlier run already scored (--resume), left out of the total.
    """
    if not enabled:
        yield _Bar(None, None)
        return
    columns = (
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.fields[rows]} · {task.fields[records]} · {task.fields[rate]} tokens/s through the model"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    counted = _count_records(path)
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as progress:
        yield _Bar(progress, None if counted is None else max(counted - finished, 0))


def print_comparison(console: Console, comparison: Any) -> None:
    c = comparison
    uniform = f"every pair differs by exactly {c.difference:+.6g}, so the pairs give no spread"
    if c.se is None:
        why = uniform if c.uniform else "one paired record"
        verdict = f"not judged: {why} and the rows carry no standard error of {c.metric}"
        spread = f"mean difference (new − base) {c.difference:+.6g} (no standard error)"
    elif c.exact:
        direction = "worse" if c.significantly_worse else "better"
        verdict = f"significantly {direction} (exact: the rows carry no Monte Carlo error)"
        spread = f"mean difference (new − base) {c.difference:+.6g} exactly (the rows' standard errors are 0)"
    else:
        verdict = (
            ("significantly worse" if c.significantly_worse else "significantly better")
            if c.significant
            else "no significant difference"
        )
        test = "normal, from the rows' own SEs" if math.isinf(c.df) else f"Student t, {c.df:.0f} d.o.f."
        spread = (f"mean difference (new − base) {c.difference:+.6g} ± {c.se:.3g} "
                  f"(t = {c.t:+.2f}, p = {c.p:.3g}; 5 % critical {c.critical:.3f}, {test})")  # fmt: skip
    lines = [
        f"{c.metric}: base {c.mean_base:.6g} → new {c.mean_new:.6g} over {c.paired} paired records"
        + (f" ({c.unpaired})" if c.unpaired else ""),
        *([uniform + "; the rows' own standard errors judge it"] if c.uniform and c.se is not None else []),
        spread,
        f"verdict: {verdict}",
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)
