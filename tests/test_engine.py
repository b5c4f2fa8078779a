"""The engine: order, coverage, laziness and out-of-memory safety."""

from __future__ import annotations

import math

import pytest
import torch

from itdd_cli.errors import ModelError
from itdd_cli.estimators import Estimator
from itdd_cli.scoring.engine import Engine, Job
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.fakes import UniformModel


class OutOfMemoryAbove(UniformModel):
    """Raises CUDA's out-of-memory error for batches larger than `limit` rows."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def target_logprobs(self, input_ids, attention_mask, score_mask, targets):  # type: ignore[no-untyped-def]
        self.rows_seen.append(input_ids.shape[0])
        if input_ids.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        # position-dependent values, so that a mixed-up row would change the numbers
        positions = score_mask.nonzero()[:, 1].float()
        return -(1.0 + 0.01 * positions + 0.001 * targets[score_mask].float())


def _objects(count: int):
    return [(i + 1, {"text": f"record number {i}" + "x" * (i % 7)}) for i in range(count)]


def test_out_of_memory_shrinks_the_batch_and_changes_no_number():
    settings = Settings(Estimator.time_free, 16, batch_rows=None, max_tokens=100_000)
    reference = list(score(Command.nll, _objects(6), OutOfMemoryAbove(limit=10_000), settings))
    model = OutOfMemoryAbove(limit=5)
    constrained = list(score(Command.nll, _objects(6), model, settings))
    assert constrained == reference
    assert max(model.rows_seen) > 5  # it did run out of memory


def test_out_of_memory_on_a_single_row_ends_with_a_message_saying_what_to_change():
    with pytest.raises(ModelError, match="single row of .* tokens"):
        list(score(Command.nll, _objects(1), OutOfMemoryAbove(limit=0), Settings(samples=8)))


def test_results_come_back_in_input_order_with_every_record_covered():
    jobs = [(i, [Job(torch.arange(2, 2 + n), 0, torch.ones(3, n, dtype=torch.bool))]) for i, n in
            enumerate([5, 1, 9, 3, 9, 2])]  # fmt: skip
    out = list(Engine(UniformModel(), max_tokens=12, window_rows=7).run(jobs))
    assert [payload for payload, _ in out] == list(range(6))
    for (_, [job]), (_, [losses]) in zip(jobs, out, strict=True):
        assert losses.shape == (3, len(job.ids))  # per position; a draw's loss is the row sum
        assert torch.allclose(losses, torch.full((3, len(job.ids)), math.log(50), dtype=torch.float64))


def test_scored_positions_get_their_loss_and_masked_but_unscored_ones_cost_nothing():
    masks = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)
    scored = torch.tensor([[1, 0, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    model = UniformModel()
    [(_, [losses])] = list(Engine(model).run([(0, [Job(torch.arange(2, 6), 0, masks, scored)])]))
    assert torch.equal(losses > 0, scored)
    assert torch.allclose(losses.sum(1), torch.tensor([1.0, 2.0], dtype=torch.float64) * math.log(50))
    assert model.rows_seen == [2]


def test_the_same_mask_scored_at_different_positions_is_two_forward_rows():
    masks = torch.ones(2, 3, dtype=torch.bool)
    scored = torch.tensor([[1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    model = UniformModel()
    list(Engine(model).run([(0, [Job(torch.arange(2, 5), 0, masks, scored)])]))
    assert sum(model.rows_seen) == 2


def test_the_reader_stays_lazy_first_results_arrive_before_the_input_ends():
    pulled = []

    def records():
        for number in range(1, 10_001):
            pulled.append(number)
            yield number, {"text": "lazy"}

    rows = score(Command.nll, records(), UniformModel(), Settings(samples=64))
    first = next(rows)
    assert first["id"] == 1
    assert len(pulled) < 1000  # one look-ahead window, not the whole input


def test_identical_masks_of_one_sequence_cost_one_forward_row():
    masks = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    engine = Engine(UniformModel(), batch_rows=100)
    [(_, [losses])] = list(engine.run([(0, [Job(torch.arange(2, 5), 0, masks)])]))
    assert engine.forward_rows == 2
    assert torch.allclose(losses.sum(1), torch.tensor([2, 2, 1, 2], dtype=torch.float64) * math.log(50))
