"""The engine's batches on the host: which (record × draw) rows need a forward pass, each batch's
tensors (one job's run of rows at a time, numpy where small copies cost less; on CUDA copied
from pinned memory without waiting), and the losses scattered back once per window.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch

from itdd_cli.models.base import ModelInfo, ScoringModel
from itdd_cli.models.block import Concatenated

if TYPE_CHECKING:
    from itdd_cli.scoring.engine import Job

Payload = TypeVar("Payload")


@dataclass(frozen=True, slots=True)
class Row:
    task: int
    job: int
    draw: int
    width: int
    concatenated: bool  # a [noisy ‖ clean] row: never batched with plain rows


@dataclass
class Pending(Generic[Payload]):
    payload: Payload
    jobs: list[Job]
    losses: list[torch.Tensor]  # per job (N, L) float64: −log p at scored positions, 0 elsewhere


@dataclass
class Batch:
    """One forward batch, assembled on the host: its real rows first, then rows that only pad it
    to its shape (pad tokens, nothing scored)."""

    rows: list[Row]
    groups: list[tuple[int, int, np.ndarray, int]]  # (task, job, its draws, first batch row): runs of one job
    input_ids: torch.Tensor  # (B, W) long, masks applied
    attention: torch.Tensor  # (B, W) long
    score: torch.Tensor  # (B, W) bool
    targets: torch.Tensor  # (B, W) long
    concatenated: Concatenated | None
    scored: int  # positions scored: the length of the batch's log-probabilities
    guidance: float | None = None  # S: `input_ids`/`attention` hold [conditional; unconditional] rows (2B)


def assemble(info: ModelInfo, device: torch.device | None, pending: list[Pending[Any]], rows: list[Row],
         shape: tuple[int, int], guidance: float | None = None) -> Batch:  # fmt: skip
    """The batch's host tensors, one job's run of rows at a time (numpy: small copies cost less
    there); on CUDA copied from pinned memory without waiting. With `guidance` every row is
    followed, after all of them, by its unconditional twin (models/guidance.py)."""
    count, width = shape
    input_ids = np.full((count, width), info.pad_id, dtype=np.int64)  # (B, W)
    attention = np.zeros((count, width), dtype=np.int64)  # (B, W)
    masked = np.zeros((count, width), dtype=bool)  # (B, W)
    score = np.zeros((count, width), dtype=bool)  # (B, W)
    concatenated = rows[0].concatenated
    positions = np.zeros((count, width), dtype=np.int64)  # (B, W) [noisy ‖ clean] rows only
    noisy_length = np.zeros(count, dtype=np.int64)  # (B,) [noisy ‖ clean] rows only
    before = np.zeros((count, width), dtype=bool)  # (B, W) every position before the scored text
    groups = []
    first = 0
    for (task, j), run in groupby(rows, key=lambda row: (row.task, row.job)):
        job = pending[task].jobs[j]
        draws = np.array([row.draw for row in run])
        here = slice(first, first + len(draws))
        span = slice(job.first_column, job.first_column + job.masks.shape[1])
        ids, copy, row_width = job.ids.numpy(), job.clean_copy, rows[first].width
        if copy is None:
            input_ids[here, :row_width] = ids
        else:
            noisy = copy.noisy_end - copy.noisy_start
            input_ids[here, :noisy] = ids[copy.noisy_start : copy.noisy_end]
            input_ids[here, noisy:row_width] = ids[: copy.clean_end]
            positions[here, :noisy] = np.arange(copy.noisy_start, copy.noisy_end)
            positions[here, noisy:row_width] = np.arange(copy.clean_end)
            noisy_length[here] = noisy
        attention[here, :row_width] = 1
        before[here, : job.first_column] = True
        masked[here, span] = job.masks.numpy()[draws]
        score[here, span] = job.targets().numpy()[draws]
        groups.append((task, j, draws, first))
        first += len(draws)
    attention[first:] = 1  # padding rows: pad tokens that see each other, so no row attends to nothing
    targets = torch.from_numpy(input_ids)
    noisy = np.where(masked, info.mask_id, input_ids)
    if guidance is not None:  # the twins: the prompt (BOS included) masked as well, the same draw's masks
        noisy = np.concatenate([noisy, np.where(before, info.mask_id, noisy)])
        attention = np.concatenate([attention, attention])
    noisy_ids = torch.from_numpy(noisy)
    mask = torch.from_numpy(attention)
    if device is not None:  # pinned, so the copy to the device runs beside the forward pass; the attention
        # mask stays on the host, where the adapter sees without a sync whether anything is padding
        noisy_ids = noisy_ids.pin_memory().to(device, non_blocking=True)
        mask = mask.pin_memory()
    layout = Concatenated(torch.from_numpy(positions), torch.from_numpy(noisy_length)) if concatenated else None
    return Batch(rows, groups, noisy_ids, mask, torch.from_numpy(score), targets, layout, int(score.sum()), guidance)


def call(model: ScoringModel, batch: Batch) -> torch.Tensor:
    if batch.concatenated is not None:
        return model.concatenated_logprobs(batch.input_ids, batch.attention, batch.concatenated, batch.score,
                                           batch.targets)  # fmt: skip
    if batch.guidance is not None:  # both halves score the same positions
        twice = lambda tensor: torch.cat([tensor, tensor])  # noqa: E731
        return model.target_logprobs(batch.input_ids, batch.attention, twice(batch.score), twice(batch.targets),
                                     guidance=batch.guidance)  # fmt: skip
    return model.target_logprobs(batch.input_ids, batch.attention, batch.score, batch.targets)


def head(batch: Batch) -> Batch:
    """A quarter of the batch's rows: what the attention kernels are timed on."""
    rows = max(1, len(batch.rows) // 4)
    layout = batch.concatenated
    if layout is not None:
        layout = Concatenated(layout.positions[:rows], layout.noisy_length[:rows])
    ids, attention = batch.input_ids[:rows], batch.attention[:rows]
    if batch.guidance is not None:  # the rows' twins too
        count = batch.score.shape[0]
        ids = torch.cat([ids, batch.input_ids[count : count + rows]])
        attention = torch.cat([attention, batch.attention[count : count + rows]])
    return Batch(batch.rows[:rows], [], ids, attention, batch.score[:rows], batch.targets[:rows], layout,
                 int(batch.score[:rows].sum()), batch.guidance)  # fmt: skip


def distinct_rows(pending: list[Pending[Payload]]) -> tuple[list[Row], list[tuple[Row, int]]]:
    """The rows that need a forward pass, and (row, draw whose identical mask is computed instead)."""
    rows: list[Row] = []
    copies: list[tuple[Row, int]] = []
    for t, task in enumerate(pending):
        for j, job in enumerate(task.jobs):
            masks, targets = job.masks.numpy(), job.targets().numpy()
            wanted = np.flatnonzero(targets.any(axis=1)).tolist()  # nothing to score costs 0
            width, concatenated = job.width, job.clean_copy is not None
            if len(wanted) == 1:
                rows.append(Row(t, j, wanted[0], width, concatenated))
                continue
            keys = np.packbits(masks if job.scored is None else np.concatenate([masks, targets], axis=1), axis=1)
            first_with: dict[bytes, int] = {}
            for d in wanted:
                key = keys[d].tobytes()
                row = Row(t, j, d, width, concatenated)
                if key in first_with:  # short texts repeat masks: one forward serves them all
                    copies.append((row, first_with[key]))
                else:
                    first_with[key] = d
                    rows.append(row)
    return rows, copies


def scatter(pending: list[Pending[Payload]], done: list[tuple[Batch, torch.Tensor]]) -> None:
    """Each batch's losses into its jobs' (N, L) tensors: one copy from the device per window."""
    if not done:
        return
    logprobs = torch.cat([lp.reshape(-1) for _, lp in done]).cpu().numpy().astype(np.float64)
    offset = 0
    for batch, _ in done:
        score = batch.score.numpy()
        losses = np.zeros(score.shape, dtype=np.float64)  # (B, W)
        losses[score] = -logprobs[offset : offset + batch.scored]
        offset += batch.scored
        for task, j, draws, first in batch.groups:
            job = pending[task].jobs[j]
            column = job.first_column
            target = pending[task].losses[j].numpy()  # shares the tensor's memory
            target[draws] = losses[first : first + len(draws), column : column + job.masks.shape[1]]


def prefetched(batches: Iterator[Batch], enabled: bool) -> Iterator[Batch]:
    """On CUDA, the next batch is planned and assembled in a worker thread while the current one
    runs (the forward pass releases the GIL); on the CPU the two would compete for its cores."""
    if not enabled:
        yield from batches
        return
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(next, batches, None)
        while (batch := ahead.result()) is not None:
            ahead = pool.submit(next, batches, None)
            yield batch
