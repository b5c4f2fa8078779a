"""Bounded batch shapes: few distinct (rows, width) shapes on any input, and the numbers of the
exact batching up to float rounding (bit for bit where a batch's shape is unchanged)."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
import torch

from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.engine import Engine, Job
from itdd_cli.scoring.shapes import rung
from tests.support.fakes import UniformModel
from tests.support.family_checkpoints import write_llada


def test_the_ladder_pads_at_most_a_third_and_respects_a_position_limit():
    assert [rung(w) for w in (1, 8, 9, 12, 13, 16, 17, 24, 25, 33, 49, 65, 97, 512, 513)] == [
        8, 8, 12, 12, 16, 16, 24, 24, 32, 48, 64, 96, 128, 512, 768]  # fmt: skip
    assert all(w <= rung(w) < max(8.1, w * 1.5) for w in range(1, 5000))
    assert rung(300, ceiling=320) == 320 and rung(330, ceiling=320) == 330  # never past the limit, never cut


def _mixed_jobs(count: int, seed: int = 0, draws: int = 8) -> list[tuple[int, list[Job]]]:
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    jobs = []
    for i in range(count):
        length = rng.choice([rng.randint(4, 40), rng.randint(32, 128), rng.randint(100, 500)])
        masks = torch.rand(draws, length, generator=generator) < 0.5
        masks[:, 0] = True  # every draw scores something
        jobs.append((i, [Job(torch.randint(2, 50, (length,), generator=generator), 0, masks)]))
    return jobs


class CountingModel(UniformModel):
    """A forward pass that costs nothing: only the batch shapes matter here."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        self.info = self.info.__class__(**{**self.info.__dict__, "device": device})


@pytest.mark.parametrize("budget", [None, 16384])  # the CPU's and the GPU's token budget
def test_a_mixed_length_run_of_ten_thousand_records_meets_at_most_sixteen_shapes(budget):
    jobs = _mixed_jobs(10_000)
    bounded = Engine(CountingModel(), max_tokens=budget)
    results = list(bounded.run(jobs))
    assert [payload for payload, _ in results] == list(range(10_000))
    exact = Engine(CountingModel(), max_tokens=budget, bounded_shapes=False)
    list(exact.run(jobs))
    print(f"budget {bounded.max_tokens}: {len(bounded.shapes)} distinct shapes (exact batching: {len(exact.shapes)})")
    assert len(bounded.shapes) <= 16 < len(exact.shapes)
    assert bounded.forward_rows == exact.forward_rows  # padding rows are not rows (repeated masks share one)


@pytest.fixture(scope="module")
def llada():
    with tempfile.TemporaryDirectory() as directory:
        write_llada(Path(directory), d=64, heads=4, kv_heads=2, layers=2, mlp=128, embedding=64, max_length=512)
        yield load_model(LoadOptions(directory, dtype="float32"))


def test_padding_rows_and_columns_change_a_real_row_only_by_float_rounding(llada):
    jobs = _mixed_jobs(40, seed=1, draws=4)
    jobs = [(i, [Job(job.ids[: 3 + i * 7 % 60].clamp(max=60), 0, job.masks[:, : 3 + i * 7 % 60])]) for i, [job] in jobs]
    exact_engine, bounded_engine = Engine(llada, max_tokens=400, bounded_shapes=False), Engine(llada, max_tokens=400)
    exact = [losses for _, [losses] in exact_engine.run(jobs)]
    bounded = [losses for _, [losses] in bounded_engine.run(jobs)]
    assert len(bounded_engine.shapes) < len(exact_engine.shapes)  # batches were padded: rows or columns
    assert all(torch.equal(a > 0, b > 0) for a, b in zip(exact, bounded, strict=True))
    # a draw's loss is its row sum: what the estimators read
    worst = max(float(((a.sum(1) - b.sum(1)).abs() / a.sum(1)).max()) for a, b in zip(exact, bounded, strict=True))
    print(f"largest relative change of a draw's loss: {worst:.1e}")
    assert worst <= 1e-6


def test_a_batch_whose_shape_is_unchanged_gives_the_same_bits(llada):
    generator = torch.Generator().manual_seed(3)
    jobs = [(i, [Job(torch.randint(2, 60, (32,), generator=generator), 0, torch.rand(4, 32, generator=generator) < .5)])
            for i in range(4)]  # fmt: skip # 16 rows of a ladder width: 4 full batches of 4 either way
    exact, bounded = Engine(llada, batch_rows=4, bounded_shapes=False), Engine(llada, batch_rows=4)
    for (_, [a]), (_, [b]) in zip(exact.run(jobs), bounded.run(jobs), strict=True):
        assert torch.equal(a, b)
    assert exact.shapes == bounded.shapes == {(4, 32): 4}
