"""Renders a study of several checkpoints: the summary table, a compact terminal chart, the plot."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from itdd_cli.errors import UsageError
from itdd_cli.outfile import check_writable_dir
from itdd_cli.study import Study, line_numbers

BAR = 40


def _pm(value: float, se: float) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:+.4f} ± {se:.4f}" if not math.isnan(se) else f"{value:+.4f}"


def print_study(console: Console, study: Study) -> None:
    table = Table(title="itdd checkpoints (Δ: paired difference to the first, ± SE across records)",
                  title_justify="left")  # fmt: skip
    for column in ("checkpoint", "step", "records", "NLL/token ± SE", "bits/byte ± SE", "perplexity",
                   "Δ NLL/token", "Δ bits/byte", "masks"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("checkpoint", "masks") else "right")
    for index, line in enumerate(study.lines):
        n = line_numbers(line)
        first = index == 0
        table.add_row(
            line.name,
            "—" if line.step is None else str(line.step),
            str(line.summary.records),
            f"{n['nll_per_token']:.4f} ± {n['nll_per_token_se']:.4f}",
            f"{n['bits_per_byte']:.4f} ± {n['bits_per_byte_se']:.4f}",
            f"{n['perplexity']:.3f}",
            "" if first else _pm(n["delta_nll_per_token"], n["delta_nll_per_token_se"]),
            "" if first else _pm(n["delta_bits_per_byte"], n["delta_bits_per_byte_se"]),
            "first" if first else ("coupled" if line.coupled else "independent"),
        )
    console.print(table)
    for line in study.lines[1:]:
        if not line.coupled:
            console.print(f"{line.name}: independent masks (tokenizer or framing differs from the first "
                          "checkpoint's), so its differences carry both runs' noise", markup=False)  # fmt: skip
        if line.unpaired:
            console.print(f"{line.name}: {line.unpaired} records unpaired (skipped under the first)", markup=False)
    _chart(console, study)


def _chart(console: Console, study: Study) -> None:
    """Bits per byte per checkpoint as a bar between the smallest and the largest value."""
    values = [line_numbers(line)["bits_per_byte"] for line in study.lines]
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return
    low, high = min(finite), max(finite)
    width = max(len(line.name) for line in study.lines)
    console.print(f"bits/byte from {low:.4f} to {high:.4f}", markup=False)
    for line, value in zip(study.lines, values, strict=True):
        filled = 1 + round((BAR - 1) * (value - low) / (high - low)) if high > low and math.isfinite(value) else 1
        console.print(f"{line.name:>{width}} {'█' * filled} {value:.4f}", markup=False)


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
