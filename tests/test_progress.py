"""The progress bar moves per forward batch on a terminal, and prints nothing elsewhere."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import torch

from itdd_cli.scoring.engine import WINDOW_ROWS, BatchProgress, Engine, Job
from itdd_cli.views.progress_view import DROP_ORDER, plan_line
from tests.support.fakes import UniformModel
from tests.support.jsonl import write_jsonl

ROOT = Path(__file__).resolve().parent.parent
DRAWS = 64
TEXTS = ["abcdabcd", "dcba", "abc", "ddaab", "bcdabca"]


def two_windows(tmp_path: Path) -> Path:
    records = WINDOW_ROWS // DRAWS + 10  # more rows than one look-ahead window holds
    return write_jsonl(tmp_path / "in.jsonl", [{"text": TEXTS[i % len(TEXTS)]} for i in range(records)])


def run_in_terminal(args: list[str], columns: int = 140) -> tuple[int, str]:
    """Run itdd with stderr on a pseudo-terminal, stdout to nowhere: (exit code, what the terminal got)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("NO_COLOR", "COLUMNS", "LINES"):  # the terminal's own size, as a fresh shell in it has
        env.pop(name, None)
    process = subprocess.Popen([sys.executable, "-m", "itdd_cli", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT, env=env)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the follower side closed
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_the_bar_advances_per_forward_batch_over_a_two_window_run(oracle_dir, tmp_path):
    path = two_windows(tmp_path)
    code, terminal = run_in_terminal(["nll", str(path), "-m", str(oracle_dir), "--trust-remote-code",
                                      "-n", str(DRAWS), "--batch-size", "256"])  # fmt: skip
    assert code == 0, terminal
    frames = [(int(done.replace(",", "")), int(known.replace(",", "")))
              for done, known in re.findall(r"([\d,]+)/([\d,]+) rows", terminal)]  # fmt: skip
    done = sorted({d for d, _ in frames})
    assert len(done) > 2, terminal[-2000:]  # it moved more than once
    assert all(d <= k for d, k in frames)
    first_window = [d for d, k in frames if k <= WINDOW_ROWS + DRAWS]
    assert len(set(first_window)) > 1  # it moved inside the first window, not only when records finished
    assert re.search(r"\d+/\d+ records", terminal) and "model tok/s" in terminal and "ETA" in terminal


def frames_of(terminal: str) -> list[str]:
    """The progress lines the terminal was sent (rich redraws in place: cursor moves, then the line)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", terminal)  # colours
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", plain).replace("\r", "\n")  # cursor moves
    return [line for line in plain.split("\n") if " rows" in line]


@pytest.mark.parametrize("columns", [80, pytest.param(60, marks=pytest.mark.slow)])
def test_the_progress_line_fits_a_narrow_terminal_with_its_eta(tmp_path, columns):
    dna = ["ATGGGGAA", "CCTTCAAC", "GATTACAG", "TTGCAACG"]  # the bundled dna8 model's alphabet
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": dna[i % len(dna)]} for i in range(40)])
    code, terminal = run_in_terminal(["nll", str(path), "-m", "dna8", "--device", "cpu", "-n", "64",
                                      "--batch-size", "32"], columns=columns)  # fmt: skip
    assert code == 0, terminal
    frames = frames_of(terminal)
    assert frames, terminal[-2000:]
    assert all(len(frame.rstrip()) <= columns and "…" not in frame for frame in frames), frames
    timed = [frame for frame in frames if re.search(r"ETA \d+:\d\d:\d\d", frame)]
    assert timed, frames  # once a batch is done the ETA is a time, not cut
    assert all(re.search(r"[\d,]+/[\d,]+ rows", frame) for frame in timed)
    if columns >= 80:
        assert all(re.search("━", frame) and "/40 records" in frame for frame in timed)


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 160])
def test_the_line_is_planned_for_the_width_rows_and_eta_always_stay(width):
    texts = {"label": "scoring", "rows": "1,234,567/2,345,678 rows", "records": "12,345/100,000 records",
             "rate": "213,733 model tok/s", "elapsed": "elapsed 1:02:03", "eta": "ETA 12:34:56"}  # fmt: skip
    names, bar = plan_line(width, texts)
    assert "rows" in names and "eta" in names
    used = len(" · ".join(texts[name] for name in names if name != "label"))
    used += (len(texts["label"]) + 1 if "label" in names else 0) + (bar + 1 if bar else 0)
    assert used <= width and (bar == 0 or 10 <= bar <= 40)
    dropped = [name for name in DROP_ORDER if name != "bar" and name not in names] + ([] if bar else ["bar"])
    assert dropped == list(DROP_ORDER[: len(dropped)])  # the least useful parts go first
    if width >= 130:  # with these 7-digit counts; 120 columns leave out the elapsed time first
        assert bar and len(names) == len(texts)  # a wide terminal shows everything


def test_nothing_is_printed_about_progress_when_stderr_is_not_a_terminal(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    result = subprocess.run([sys.executable, "-m", "itdd_cli", "nll", str(path), "-m", str(oracle_dir),
                             "--trust-remote-code", "-n", "8"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rows" not in result.stderr and "\r" not in result.stderr and "\x1b[" not in result.stderr


def test_the_engine_reports_each_batch_and_ends_with_every_row_done():
    model = UniformModel(vocab_size=10)
    seen: list[BatchProgress] = []
    generator = torch.Generator().manual_seed(0)
    jobs = [(i, [Job(torch.arange(6), 0, torch.rand(16, 6, generator=generator) < 0.5)]) for i in range(40)]
    engine = Engine(model, batch_rows=32, window_rows=200, on_batch=seen.append)
    list(engine.run(jobs))
    assert len(seen) >= 4 and [p.rows_done for p in seen] == sorted(p.rows_done for p in seen)
    assert seen[-1].rows_done == seen[-1].rows_known == 40 * 16 and seen[-1].records_known == 40
    assert seen[-1].tokens == engine.forward_rows * 6
