"""Several checkpoints in one run: same draws, rows carrying `model`, paired differences, the plot."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import weakref

import pytest

from itdd_cli.core.settings import Settings
from itdd_cli.estimators import Estimator
from itdd_cli.io.records import Fields
from itdd_cli.io.sources import Source
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.results.checkpoints import RatioTally, expand, step_of
from itdd_cli.results.destination import Output, Policy
from itdd_cli.results.rows import Command
from itdd_cli.run.study import run_study
from tests.support.cli import invoke
from tests.support.jsonl import read_jsonl, write_jsonl

TEXTS = [{"text": "abca"}, {"text": "dd"}, {"text": "cab"}, {"text": "bbad"}]


@pytest.fixture
def run_dir(oracle_dir, tmp_path):
    """A training run's directory: two identical checkpoints, listed out of step order on disk."""
    run = tmp_path / "run"
    for step in (1000, 200):
        shutil.copytree(oracle_dir, run / f"checkpoint-{step}")
    return run


def test_a_run_directory_expands_to_its_checkpoints_in_step_order(run_dir):
    assert [step_of(name) for name in expand([str(run_dir)])] == [200, 1000]
    assert expand(["some/hub-id"]) == ["some/hub-id"]
    assert (step_of("checkpoint-500"), step_of("run/step_2000"), step_of("final")) == (500, 2000, None)


def test_copies_give_identical_rows_and_a_zero_difference_with_zero_se(run_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    summary = tmp_path / "study.json"
    result = invoke(["nll", source, "-m", run_dir, "--trust-remote-code", "-n", "8", "--summary", summary])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    first, second = rows[: len(TEXTS)], rows[len(TEXTS) :]
    assert {row["model"] for row in first} == {str(run_dir / "checkpoint-200")}
    assert [{**row, "model": None} for row in first] == [{**row, "model": None} for row in second]
    lines = json.loads(summary.read_text())["checkpoints"]
    assert [line["step"] for line in lines] == [200, 1000] and lines[1]["coupled"] is True
    assert lines[1]["delta_nll_per_token"] == 0.0 and lines[1]["delta_nll_per_token_se"] == 0.0
    assert lines[1]["delta_bits_per_byte"] == 0.0 and lines[1]["delta_bits_per_byte_se"] == 0.0
    assert "checkpoint-1000" in result.stderr and "coupled" in result.stderr


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_the_plot_file_is_produced(run_dir, tmp_path, suffix):
    pytest.importorskip("matplotlib")
    plot = tmp_path / f"study.{suffix}"
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    result = invoke(["nll", source, "-m", run_dir, "--trust-remote-code", "-n", "8", "--plot", plot, "-q"])
    assert result.exit_code == 0, result.stderr
    head = plot.read_bytes()[:200]
    assert plot.stat().st_size > 1000
    assert head.startswith(b"\x89PNG\r\n\x1a\n") if suffix == "png" else b"<svg" in plot.read_bytes()


def test_plot_needs_several_checkpoints_and_a_png_or_svg_name(oracle_dir, run_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    one = invoke(["nll", source, "-m", oracle_dir, "--trust-remote-code", "--plot", tmp_path / "p.png"])
    assert one.exit_code == 2 and "several checkpoints" in one.stderr
    jpeg = invoke(["nll", source, "-m", run_dir, "--trust-remote-code", "--plot", tmp_path / "p.jpg"])
    assert jpeg.exit_code == 2 and "name a .png or .svg file" in jpeg.stderr and not jpeg.stdout


def test_a_plot_in_a_missing_directory_is_refused_before_any_checkpoint_is_scored(run_dir, tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    plot = tmp_path / "no" / "p.png"
    monkeypatch.setattr("itdd_cli.run.study.run_study", lambda *args: pytest.fail("scored before the check"))
    result = invoke(["nll", source, "-m", run_dir, "--trust-remote-code", "--plot", plot])
    assert result.exit_code == 2 and not result.stdout
    assert result.stderr == f"itdd: error: cannot write --plot {plot}: directory {plot.parent} does not exist\n"


def test_checkpoints_with_different_tokenizers_are_scored_independently_and_say_so(oracle_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    summary = tmp_path / "study.json"
    result = invoke(["nll", source, "-m", oracle_dir, "-m", "demo", "--trust-remote-code", "-n", "8",
                     "--summary", summary])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = json.loads(summary.read_text())["checkpoints"]
    assert lines[1]["coupled"] is False and "independent masks (tokenizer or framing differs" in result.stderr
    assert lines[1]["delta_bits_per_byte"] is not None  # bytes do not depend on the tokenizer


def test_several_checkpoints_need_a_file_not_standard_input(oracle_dir):
    twice = ["-m", oracle_dir, "-m", f"{oracle_dir}/"]  # the same checkpoint under two names
    result = invoke(["nll", "-", *twice, "--trust-remote-code"], stdin='{"text":"ab"}\n')
    assert result.exit_code == 2 and "standard input" in result.stderr


def test_several_checkpoints_refuse_a_pipe_they_could_read_only_once(oracle_dir, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: the refusal must come before any read
    result = invoke(["nll", fifo, "-m", oracle_dir, "-m", f"{oracle_dir}/", "--trust-remote-code"])
    assert result.exit_code == 2 and "name a regular file" in result.stderr, result.stderr


def test_a_failed_gate_still_writes_the_summary_of_several_checkpoints(run_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    summary = tmp_path / "study.json"
    result = invoke(["nll", source, "-m", run_dir, "--trust-remote-code", "-n", "8", "-q", "--summary", summary,
                     "--fail-above", "nll_per_token=0.001"])  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert len(json.loads(summary.read_text())["checkpoints"]) == 2


def test_one_checkpoint_is_in_memory_at_a_time(oracle_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    previous: list[weakref.ref] = []

    def load(name):
        assert all(ref() is None for ref in previous), "the earlier checkpoint is still alive"
        model = load_model(LoadOptions(name, trust_remote_code=True))
        previous.append(weakref.ref(model))
        return model

    study = run_study(Command.nll, Source(str(source)), [str(oracle_dir)] * 3, load, Settings(samples=8), Fields(),
                      Output(path=str(tmp_path / "out.jsonl")), Policy())  # fmt: skip
    assert len(study.lines) == 3 and len(previous) == 3


def test_ratio_tally_is_the_ratio_estimator_with_its_standard_error():
    generator = random.Random(3)
    pairs = [(generator.gauss(5, 2), generator.uniform(1, 9)) for _ in range(50)]
    tally = RatioTally()
    for x, b in pairs:
        tally.add(x, b)
    ratio = sum(x for x, _ in pairs) / sum(b for _, b in pairs)
    residuals = [x - ratio * b for x, b in pairs]
    expected = math.sqrt(len(pairs) / (len(pairs) - 1) * sum(r * r for r in residuals)) / sum(b for _, b in pairs)
    assert tally.value == pytest.approx(ratio) and tally.se == pytest.approx(expected, rel=1e-9)


def test_a_run_directory_with_one_checkpoint_scores_it(oracle_dir, tmp_path):
    shutil.copytree(oracle_dir, tmp_path / "run" / "checkpoint-7")
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS[:2])
    result = invoke(["nll", source, "-m", tmp_path / "run", "--trust-remote-code", "-n", "8"])
    assert result.exit_code == 0, result.stderr
    assert [row["model"] for row in read_jsonl(result.stdout)] == [str(tmp_path / "run" / "checkpoint-7")] * 2


@pytest.fixture(scope="module")
def two_oracles(tmp_path_factory, distribution):
    """The session's oracle and another one (other conditionals, same letters): differences known exactly."""
    from itdd_cli.oracle import OracleDistribution, write_checkpoint

    run = tmp_path_factory.mktemp("pair")
    other = OracleDistribution.random(11)
    write_checkpoint(run / "checkpoint-100", distribution)
    write_checkpoint(run / "checkpoint-300", other)
    return run, distribution, other


def test_the_plot_draws_paired_differences_to_the_first_checkpoint_with_their_paired_se(two_oracles, tmp_path):
    from itdd_cli.views.study_view import plot_points

    run, first, second = two_oracles
    source = write_jsonl(tmp_path / "held-out.jsonl", TEXTS)
    study = run_study(Command.nll, Source(str(source)), expand([str(run)]), lambda name: load_model(
        LoadOptions(name, trust_remote_code=True)), Settings(estimator=Estimator.exact), Fields(),
        Output(path=str(tmp_path / "rows.jsonl")), Policy())  # fmt: skip
    points = plot_points(study, str(source), 8)
    texts = [record["text"] for record in TEXTS]
    differences = [second.nll(t) - first.nll(t) for t in texts]
    sizes = [len(t) for t in texts]  # one byte per letter
    ratio = sum(differences) / sum(sizes)
    residual = sum((d - ratio * b) ** 2 for d, b in zip(differences, sizes, strict=True))
    paired_se = math.sqrt(len(texts) / (len(texts) - 1) * residual) / sum(sizes)
    assert points.xs == [100, 300] and points.by_step
    assert points.deltas[0] == 0.0 and points.errors[0] == 0.0
    assert points.deltas[1] == pytest.approx(ratio / math.log(2), abs=1e-6)
    assert points.errors[1] == pytest.approx(paired_se / math.log(2), rel=1e-4)
    assert "held-out.jsonl · 4 records · 8 draws" in points.title and "checkpoint-100" in points.title
    assert "paired SE" in points.caption and "same records" in points.caption


@pytest.mark.slow
def test_the_svg_plot_says_what_it_draws_and_renders_in_headless_chromium(two_oracles, tmp_path):
    pytest.importorskip("matplotlib")
    import subprocess
    from pathlib import Path

    run, _, _ = two_oracles
    plot = tmp_path / "study.svg"
    source = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    result = invoke(["nll", source, "-m", run, "--trust-remote-code", "-n", "8", "--plot", plot, "-q"])
    assert result.exit_code == 0, result.stderr
    svg = plot.read_text(encoding="utf-8")
    for words in ("in.jsonl · 4 records · 8 draws", "Δ bits per byte vs the first (± paired SE)", "paired SE across"):
        assert words in svg, words
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    import matplotlib.image

    shot = tmp_path / "plot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=800,600"]
    taken = subprocess.run([str(chromium), *flags, plot.as_uri()], capture_output=True, text=True, timeout=120)
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    pixels = (matplotlib.image.imread(str(shot))[..., :3] * 255).round().astype(int)
    blue = (abs(pixels - [31, 119, 180]).max(axis=2) <= 8).sum()  # matplotlib's first colour: the points and bars
    assert blue >= 50 and len({tuple(p) for p in pixels.reshape(-1, 3)[::5]}) > 20
