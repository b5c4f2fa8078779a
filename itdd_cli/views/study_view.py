"""Renders a study of several checkpoints: the summary table, a compact terminal chart, the plot."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from itdd_cli.errors import UsageError
from itdd_cli.results.outfile import check_writable_dir
from itdd_cli.results.study_lines import Study, line_numbers
from itdd_cli.views.reporting import columns_that_fit, print_left_out, print_unfolded
from itdd_cli.views.visible import visible

BAR = 40


def _pm(value: float, se: float) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:+.4f} ± {se:.4f}" if not math.isnan(se) else f"{value:+.4f}"


# Columns by rank: on a terminal too narrow for all, the highest ranks are left out first (and named
# below the table, as for result tables); a file or pipe gets every column. A cell is never cut. Bits
# per byte and its difference always stay: they compare every checkpoint, whatever its tokenizer.
COLUMNS = {"checkpoint": 1, "step": 6, "records": 6, "NLL/token ± SE": 2, "bits/byte ± SE": 1, "perplexity": 4,
           "Δ NLL/token": 3, "Δ bits/byte": 1, "masks": 5}  # fmt: skip


def _cells(study: Study) -> list[dict[str, str]]:
    rows = []
    for index, line in enumerate(study.lines):
        n = line_numbers(line)
        first = index == 0
        rows.append({
            "checkpoint": visible(line.name),
            "step": "—" if line.step is None else str(line.step),
            "records": str(line.summary.records),
            "NLL/token ± SE": f"{n['nll_per_token']:.4f} ± {n['nll_per_token_se']:.4f}",
            "bits/byte ± SE": f"{n['bits_per_byte']:.4f} ± {n['bits_per_byte_se']:.4f}",
            "perplexity": f"{n['perplexity']:.3f}",
            "Δ NLL/token": "" if first else _pm(n["delta_nll_per_token"], n["delta_nll_per_token_se"]),
            "Δ bits/byte": "" if first else _pm(n["delta_bits_per_byte"], n["delta_bits_per_byte_se"]),
            "masks": "first" if first else ("coupled" if line.coupled else "independent"),
        })  # fmt: skip
    return rows


def study_table(cells: list[dict[str, str]], names: list[str]) -> Table:
    table = Table(title="itdd checkpoints (Δ: paired difference to the first, ± SE across records)",
                  title_justify="left")  # fmt: skip
    for column in names:
        table.add_column(column, justify="left" if column in ("checkpoint", "masks") else "right", no_wrap=True)
    for row in cells:
        table.add_row(*(Text(row[name]) for name in names))  # Text: a name's "[x]" is not markup
    return table


def print_study(console: Console, study: Study) -> None:
    cells = _cells(study)
    names = list(COLUMNS)
    shown = (columns_that_fit(console, names, COLUMNS, lambda chosen: study_table(cells, chosen))
             if console.is_terminal else names)  # a file or pipe has no width: every column, whole  # fmt: skip
    print_unfolded(console, study_table(cells, shown))
    if len(shown) < len(names):
        print_left_out(console, [name for name in names if name not in shown], "--summary has every column")
    for line in study.lines[1:]:
        name = visible(line.name)
        if not line.coupled:
            console.print(f"{name}: independent masks (tokenizer or framing differs from the first "
                          "checkpoint's), so its differences carry both runs' noise", markup=False)  # fmt: skip
        if line.unpaired:
            console.print(f"{name}: {line.unpaired} records unpaired (skipped under the first)", markup=False)
    _chart(console, study)


def _chart(console: Console, study: Study) -> None:
    """Bits per byte per checkpoint as a bar between the smallest and the largest value; the bar
    is shortened so that a line fits the terminal (never below 10 cells)."""
    values = [line_numbers(line)["bits_per_byte"] for line in study.lines]
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return
    low, high = min(finite), max(finite)
    names = [visible(line.name) for line in study.lines]
    width = max(len(name) for name in names)
    bar = max(10, min(BAR, console.width - width - 2 - max(len(f"{v:.4f}") for v in values)))
    console.print(f"bits/byte from {low:.4f} to {high:.4f}", markup=False)
    for name, value in zip(names, values, strict=True):
        filled = 1 + round((bar - 1) * (value - low) / (high - low)) if high > low and math.isfinite(value) else 1
        console.print(f"{name:>{width}} {'█' * filled} {value:.4f}", markup=False, soft_wrap=True)


def check_plot(path: str) -> None:
    """Before any scoring: a name matplotlib can write, in a directory that takes it, and matplotlib itself."""
    if Path(path).suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {path}: name a .png or .svg file")
    check_writable_dir(path, "--plot")
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'itdd[plot]'") from None
    matplotlib.use("Agg")  # no display needed


@dataclass(frozen=True)
class PlotPoints:
    """What the plot draws: per checkpoint its paired difference in bits per byte to the first checkpoint
    (the reference, at 0) with the paired SE, the x positions and the words around them."""

    xs: list[int]
    labels: list[str] | None  # tick labels where the checkpoints carry no distinct steps
    deltas: list[float]
    errors: list[float]
    title: str
    caption: str
    by_step: bool


def plot_points(study: Study, source: str, samples: int) -> PlotPoints:
    """Paired differences, not each checkpoint's own SE: that SE holds the spread between records, which
    every checkpoint shares, and hides differences the pairing measures precisely."""
    steps = [line.step for line in study.lines]
    by_step = all(step is not None for step in steps) and len(set(steps)) == len(steps)
    xs = [step for step in steps if step is not None] if by_step else list(range(1, len(study.lines) + 1))
    numbers = [line_numbers(line) for line in study.lines]
    deltas = [0.0, *(n["delta_bits_per_byte"] for n in numbers[1:])]
    errors = [0.0, *(0.0 if math.isnan(n["delta_bits_per_byte_se"]) else n["delta_bits_per_byte_se"]
                     for n in numbers[1:])]  # fmt: skip
    first = Path(study.lines[0].name.rstrip("/")).name or study.lines[0].name
    records = study.lines[0].summary.records
    title = f"itdd: bits per byte against {first}\n{Path(source).name or source} · {records} records · {samples} draws"
    caption = (f"each point: Σ (NLL − {first}'s NLL) / (ln 2 · Σ bytes) over the same records; bars: ± paired SE "
               f"across records. {first} itself: {numbers[0]['bits_per_byte']:.4f} bits/byte")  # fmt: skip
    labels = None if by_step else [Path(line.name).name for line in study.lines]
    return PlotPoints(xs, labels, deltas, errors, title, caption, by_step)


def save_plot(study: Study, path: str, source: str = "input", samples: int = 0) -> None:
    """The paired differences in bits per byte against the first checkpoint (± paired SE), by training
    step (or the checkpoint's position), PNG or SVG; dataset, records and draws in the title."""
    check_plot(path)
    import matplotlib.pyplot as plt

    points = plot_points(study, source, samples)
    with plt.rc_context({"svg.fonttype": "none"}):  # an SVG's words stay text (searchable, readable)
        figure, axes = plt.subplots(figsize=(7, 4.6))
        axes.axhline(0.0, color="#999999", linewidth=0.8)
        axes.errorbar(points.xs, points.deltas, yerr=points.errors, marker="o", capsize=3)
        axes.set_xlabel("training step" if points.by_step else "checkpoint")
        if points.labels is not None:
            axes.set_xticks(points.xs, points.labels, rotation=30, ha="right")
        axes.set_ylabel("Δ bits per byte vs the first (± paired SE)")
        axes.set_title(points.title, fontsize=10)
        figure.text(0.5, 0.01, textwrap.fill(points.caption, 110), ha="center", va="bottom", fontsize=7)
        figure.tight_layout(rect=(0, 0.07, 1, 1))
        try:
            figure.savefig(path)
        except OSError as error:
            raise UsageError(f"cannot write {path}: {error.strerror}") from None
        finally:
            plt.close(figure)
