"""The progress bar on standard error: one line that fits the terminal's width.

rich's column layout squeezes a line that is too wide (the bar shrinks to nothing, then the
texts are cut with "…"); here the line is planned for the width instead: the least useful
parts are left out first, and the rows done and the ETA always stay.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.progress import Progress, Task
from rich.progress_bar import ProgressBar
from rich.table import Table

if TYPE_CHECKING:
    from itdd_cli.results.summary import Summary
    from itdd_cli.scoring.engine import BatchProgress

SEPARATOR = " · "
BAR_MIN, BAR_MAX = 10, 40
# Optional parts, the first left out first when the terminal is narrow (rows and ETA always stay).
DROP_ORDER = ("elapsed", "label", "rate", "records", "bar")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def plan_line(width: int, texts: dict[str, str]) -> tuple[list[str], int]:
    """Which texts to show and the bar's width (0: no bar), so that the line fits `width` columns.

    `texts` holds "label", "rows", "records", "rate", "elapsed" and "eta", in display order.
    """
    shown = dict(texts)
    bar = True
    for drop in (None, *DROP_ORDER):
        if drop == "bar":
            bar = False
        elif drop is not None:
            shown.pop(drop, None)
        label = shown.get("label")
        body = SEPARATOR.join(text for name, text in shown.items() if name != "label")
        used = len(body) + (len(label) + 1 if label else 0)
        if not bar:
            return list(shown), 0
        if used + 1 + BAR_MIN <= width:
            return list(shown), min(BAR_MAX, width - used - 1)
    raise AssertionError("unreachable: the bar is the last part dropped")


def _width(console: Console) -> int:
    """The width of the terminal the line is drawn on (rich asks stdin and stdout first, and a
    stale COLUMNS wins over them; the bar is drawn on stderr)."""
    try:
        return os.get_terminal_size(console.file.fileno()).columns or console.width
    except (AttributeError, ValueError, OSError):  # not a terminal after all
        return console.width


class _FittingProgress(Progress):
    """A `Progress` whose one task is drawn as a line planned for the console's width."""

    def get_renderables(self) -> Iterable[RenderableType]:
        for task in self.tasks:
            if task.visible:
                yield self._line(task)

    def _line(self, task: Task) -> RenderableType:
        fields = task.fields
        texts = {
            "label": "scoring",
            "rows": fields["rows"],
            "records": fields["records"],
            "rate": fields["rate"],
            "elapsed": f"elapsed {_clock(task.finished_time if task.finished else task.elapsed)}",
            "eta": f"ETA {_clock(None if task.total is None else task.time_remaining)}",
        }
        names, bar_width = plan_line(_width(self.console), texts)
        grid = Table.grid(padding=(0, 1))
        cells: list[RenderableType] = []
        if "label" in names:
            grid.add_column(no_wrap=True)
            cells.append(texts["label"])
        if bar_width:
            grid.add_column(width=bar_width, no_wrap=True)
            cells.append(ProgressBar(total=task.total, completed=max(0.0, task.completed), width=bar_width,
                                     pulse=task.total is None, animation_time=task.get_time()))  # fmt: skip
        grid.add_column(no_wrap=True)
        cells.append(SEPARATOR.join(texts[name] for name in names if name != "label"))
        grid.add_row(*cells)
        return grid


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
            progress.add_task("scoring", total=None, rows="0 rows", records=self._records(), rate="– model tok/s")
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
        rate = f"{done.tokens / wall:,.0f} model tok/s" if wall > 0 else "– model tok/s"
        self.progress.update(self.task, completed=done.rows_done, total=total, rate=rate,
                             rows=f"{done.rows_done:,}/{done.rows_known:,} rows", refresh=True)  # fmt: skip

    def record(self, summary: Summary) -> None:
        if self.progress is None or self.task is None or summary.records + summary.skipped == self.records:
            return
        self.records = summary.records + summary.skipped
        self.progress.update(self.task, records=self._records(), refresh=True)


@contextmanager
def progress_bar(path: str | None, enabled: bool, finished: int = 0, limit: int | None = None) -> Iterator[_Bar]:
    """A progress bar on stderr, advanced per forward batch; a bar that draws nothing when disabled.

    `finished`: records an earlier run already scored (--resume), left out of the total.
    """
    if not enabled:
        yield _Bar(None, None)
        return
    counted = _count_records(path)
    if counted is not None and limit is not None:  # --limit N: the first N records
        counted = min(counted, limit)
    with _FittingProgress(console=Console(file=sys.stderr), transient=True) as progress:
        yield _Bar(progress, None if counted is None else max(counted - finished, 0))
