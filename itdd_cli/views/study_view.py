"""Renders a study of several checkpoints: the summary table, a compact terminal chart, the plot."""

from __future__ import annotations

import math
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


def save_plot(study: Study, path: str) -> None:
    """Bits per byte (± SE) against the training step (or the checkpoint's position), PNG or SVG."""
    check_plot(path)
    import matplotlib.pyplot as plt

    steps = [line.step for line in study.lines]
    by_step = all(step is not None for step in steps) and len(set(steps)) == len(steps)
    xs = steps if by_step else list(range(1, len(study.lines) + 1))
    numbers = [line_numbers(line) for line in study.lines]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.errorbar(xs, [n["bits_per_byte"] for n in numbers],
                  yerr=[0.0 if math.isnan(n["bits_per_byte_se"]) else n["bits_per_byte_se"] for n in numbers],
                  marker="o", capsize=3)  # fmt: skip
    axes.set_xlabel("training step" if by_step else "checkpoint")
    if not by_step:
        axes.set_xticks(xs, [Path(line.name).name for line in study.lines], rotation=30, ha="right")
    axes.set_ylabel("bits per byte (± SE)")
    axes.set_title("itdd: corpus bits per byte by checkpoint")
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
