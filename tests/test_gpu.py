"""On a CUDA device: the numbers a CPU gives, and data parallel processes that share the GPU.

Skipped where no CUDA device exists (run them with `pytest -m gpu` on a machine with one)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.support.cli import invoke_rows
from tests.support.jsonl import write_jsonl
from tests.support.launchers import LAUNCHERS, run_launched
from tests.test_oracle import _truths
from tests.test_parallel import TEXTS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _nll(*args):
    return invoke_rows(["nll", *args, "-q"])


def test_the_demo_model_gives_the_cpu_numbers_on_cuda():
    args = [EXAMPLES / "demo.jsonl", "-m", "demo", "-n", "16", "--dtype", "float32"]
    on_cpu, on_gpu = _nll(*args, "--device", "cpu"), _nll(*args, "--device", "cuda")
    assert [row["tokens"] for row in on_gpu] == [row["tokens"] for row in on_cpu]
    for gpu_row, cpu_row in zip(on_gpu, on_cpu, strict=True):  # same masks; only float rounding may differ
        assert gpu_row["nll"] == pytest.approx(cpu_row["nll"], rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("bfloat16", 0.02)])
def test_the_exact_estimator_on_cuda_equals_the_true_value(oracle_dir, distribution, tmp_path, dtype, tolerance):
    rows, truths = _truths(distribution, "nll")
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    options = ["--estimator", "exact", "--device", "cuda", "--dtype", dtype]
    for row, truth in zip(_nll(source, "-m", oracle_dir, "--trust-remote-code", *options), truths, strict=True):
        assert row["nll"] == pytest.approx(truth, rel=tolerance, abs=tolerance)


@pytest.mark.slow
def test_two_processes_on_one_gpu_give_the_file_one_process_writes(oracle_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS * 40])
    args = ["nll", str(source), "-m", str(oracle_dir), "--trust-remote-code", "-n", "8", "--dtype", "float32"]
    single = run_launched([sys.executable, "-m", "itdd_cli"], [*args, "-o", "one.jsonl"], tmp_path)
    assert single.returncode == 0, single.stderr
    double = run_launched(LAUNCHERS["torchrun"](), [*args, "-o", "two.jsonl"], tmp_path)
    assert double.returncode == 0, double.stderr[:3000]
    assert "float32 on cuda:0" in double.stderr and "· 2 processes" in double.stderr  # both on the one GPU
    assert (tmp_path / "two.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
