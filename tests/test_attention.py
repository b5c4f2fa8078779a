"""The attention kernel is chosen on purpose: the fastest whose numbers match the math kernel's."""

from __future__ import annotations

import pytest
import torch

from itdd_cli.scoring.attention import KERNELS, choose
from tests.support.cli import invoke
from tests.support.jsonl import write_jsonl

TRUE = torch.tensor([-1.0, -2.0, -3.0])


def _chooser(results: dict[str, torch.Tensor | None], seconds: dict[str, float], dtype=torch.bfloat16):
    calls: list[str] = []

    def run(name: str) -> torch.Tensor:
        calls.append(name)
        if results[name] is None:
            raise RuntimeError("No available kernel. Aborting execution.")
        return results[name]

    timed: list[str] = []

    def timer(function) -> float:  # a fake clock: the kernel's preset time, whatever the function costs
        before = len(calls)
        function()
        timed.append(calls[before])
        return seconds[calls[before]]

    return choose(run, timer, dtype), timed


def test_the_fastest_kernel_that_runs_and_agrees_is_chosen():
    results = {"flash": None, "cudnn": TRUE + 0.5, "efficient": TRUE + 0.01, "math": TRUE}  # cudnn disagrees
    seconds = {"flash": 0.1, "cudnn": 0.2, "efficient": 0.4, "math": 0.9}
    (chosen, measured), timed = _chooser(results, seconds)
    assert chosen == "efficient"
    assert measured == {"flash": None, "cudnn": None, "efficient": 0.4, "math": 0.9}
    assert sorted(timed) == ["efficient", "math"]  # only the usable ones are timed
    results["cudnn"] = TRUE - 0.02  # within half precision's tolerance: now the fastest usable
    assert _chooser(results, seconds)[0][0] == "cudnn"


def test_a_tie_goes_to_the_earlier_kernel_and_float32_is_held_to_a_tight_tolerance():
    results = {name: TRUE for name in KERNELS}
    (chosen, _), _ = _chooser(results, dict.fromkeys(KERNELS, 0.3))
    assert chosen == KERNELS[0]
    results = {"flash": None, "cudnn": TRUE + 0.01, "efficient": TRUE + 1e-5, "math": TRUE}
    (chosen, measured), _ = _chooser(results, {"cudnn": 0.1, "efficient": 0.2, "math": 0.5}, torch.float32)
    assert chosen == "efficient" and measured["cudnn"] is None


def test_the_summary_names_the_attention_kernel(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "abcd"}])
    result = invoke(["nll", source, *base])
    assert result.exit_code == 0, result.stderr
    assert " · attention cpu default · " in result.stdout + result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_chosen_kernel_is_named(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "abcd"}, {"text": "ab"}])
    result = invoke(["nll", source, *base, "--device", "cuda"])
    assert result.exit_code == 0, result.stderr
    assert any(f"attention {name} (" in result.stdout + result.stderr for name in KERNELS)
