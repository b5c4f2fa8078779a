"""Turns (record × draw) rows into padded forward batches and hands back per-position losses.

Rows from many records share a batch; inside a bounded look-ahead window they are sorted
longest first (so an oversized batch shows up at once and padding stays small) and cut into
batches under a row count or a token budget, padded to few distinct shapes (`shapes`).
Log-probabilities stay on the device until the window ends; on CUDA the next batch is
assembled, in pinned memory, while the current one runs. Results come back in input order. A block
model's job asks for a clean copy: its rows are laid out [noisy ‖ clean] (`CleanCopy`). The
engine knows nothing about tokenization, estimators, blocks or files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Generic, TypeVar

import numpy as np
import torch

from itdd_cli.attention import Kernels
from itdd_cli.errors import ModelError
from itdd_cli.models.base import ScoringModel
from itdd_cli.models.block import Concatenated
from itdd_cli.shapes import plan

Payload = TypeVar("Payload")

# Padded tokens per forward batch when --batch-size is auto: CPUs run fastest on cache-sized
# batches (measured by bench/throughput.py), GPUs want large ones.
CPU_MAX_TOKENS = 2048
GPU_MAX_TOKENS = 16384
WINDOW_ROWS = 8192  # rows gathered before sorting; bounds memory on any input size


@dataclass(frozen=True)
class CleanCopy:
    """A row in the [noisy ‖ clean] layout of block-diffusion models: `ids[noisy_start:noisy_end]`
    with the draw's masks, then the clean `ids[:clean_end]`, each token at its own position id."""

    noisy_start: int
    noisy_end: int
    clean_end: int

    @property
    def width(self) -> int:
        return self.noisy_end - self.noisy_start + self.clean_end


@dataclass(frozen=True)
class Job:
    """One framed sequence and the masks of its draws over the scored span.

    `scored` (⊆ masks) names the positions whose loss a draw needs; None scores every masked
    position. A chain-rule pass masks many positions but scores one: the LM head runs on the
    scored positions only.
    """

    ids: torch.Tensor  # (T,) long
    start: int  # first scored position in `ids`
    masks: torch.Tensor  # (N, L) bool
    scored: torch.Tensor | None = None  # (N, L) bool
    clean_copy: CleanCopy | None = None  # None: the row is `ids` with the draw's masks

    def targets(self) -> torch.Tensor:
        return self.masks if self.scored is None else self.scored  # (N, L) bool

    @property
    def width(self) -> int:
        """Tokens in each of the job's rows."""
        return len(self.ids) if self.clean_copy is None else self.clean_copy.width

    @property
    def first_column(self) -> int:
        """The column of the row that holds `ids[start]`."""
        return self.start - (0 if self.clean_copy is None else self.clean_copy.noisy_start)


@dataclass(frozen=True)
class BatchProgress:
    """What the engine has done so far, handed to `on_batch` after each forward batch (a progress bar).

    Rows are (record × draw); a row served by an identical mask or costing nothing counts as done
    when its window starts. `records_known` counts the records pulled so far, skipped ones included.
    """

    rows_done: int
    rows_known: int
    records_known: int
    tokens: int  # tokens sent through the model so far, padding excluded


@dataclass(frozen=True, slots=True)
class _Row:
    task: int
    job: int
    draw: int
    width: int
    concatenated: bool  # a [noisy ‖ clean] row: never batched with plain rows


@dataclass
class _Pending(Generic[Payload]):
    payload: Payload
    jobs: list[Job]
    losses: list[torch.Tensor]  # per job (N, L) float64: −log p at scored positions, 0 elsewhere


@dataclass
class _Batch:
    """One forward batch, assembled on the host: its real rows first, then rows that only pad it
    to its shape (pad tokens, nothing scored)."""

    rows: list[_Row]
    groups: list[tuple[int, int, np.ndarray, int]]  # (task, job, its draws, first batch row): runs of one job
    input_ids: torch.Tensor  # (B, W) long, masks applied
    attention: torch.Tensor  # (B, W) long
    score: torch.Tensor  # (B, W) bool
    targets: torch.Tensor  # (B, W) long
    concatenated: Concatenated | None
    scored: int  # positions scored: the length of the batch's log-probabilities


class Engine:
    def __init__(
        self,
        model: ScoringModel,
        batch_rows: int | None = None,
        max_tokens: int | None = None,
        window_rows: int = WINDOW_ROWS,
        on_batch: Callable[[BatchProgress], None] | None = None,
        bounded_shapes: bool = True,
    ) -> None:
        self.model = model
        self.batch_rows = batch_rows
        self.cuda = model.info.device.startswith("cuda")
        self.max_tokens = max_tokens or (GPU_MAX_TOKENS if self.cuda else CPU_MAX_TOKENS)
        self.window_rows = window_rows
        self.bounded_shapes = bounded_shapes  # False: each batch exactly as wide and as long as its rows
        self.forward_rows = 0  # real rows actually sent through the model
        self.shapes: Counter[tuple[int, int]] = Counter()  # forward calls per (rows, width) shape
        # CUDA: the attention kernel of each kind of batch, measured (`attention`); the CPU keeps its own
        self.kernels = Kernels(getattr(torch, model.info.dtype, None)) if self.cuda else None
        if not self.cuda:
            model.info = replace(model.info, attention="cpu default")
        # Progress reporting only (never changes a number): counted here, handed to `on_batch`.
        self.on_batch = on_batch
        self.progress = BatchProgress(0, 0, 0, 0)

    def run(self, tasks: Iterable[tuple[Payload, list[Job]]]) -> Iterator[tuple[Payload, list[torch.Tensor]]]:
        """Yield (payload, losses per job (N, L) float64) in input order; a draw's loss is its row sum.

        If pulling the next task raises (an invalid record), the tasks already pulled are
        scored and yielded first, so no finished work is lost, then the error propagates.
        """
        pending: list[_Pending[Payload]] = []
        rows = 0
        iterator = iter(tasks)
        while True:
            try:
                payload, jobs = next(iterator)
            except StopIteration:
                break
            except BaseException:
                yield from self._flush(pending, full=False)
                raise
            pending.append(_Pending(payload, jobs, [torch.zeros(j.masks.shape, dtype=torch.float64) for j in jobs]))
            rows += sum(len(job.masks) for job in jobs)
            self._report(rows_known=sum(len(job.masks) for job in jobs), records_known=1)
            if rows >= self.window_rows:  # resume.plan_resume replays this rule
                yield from self._flush(pending, full=True)
                pending, rows = [], 0
        yield from self._flush(pending, full=False)

    def _flush(self, pending: list[_Pending[Payload]], full: bool) -> Iterator[tuple[Payload, list[torch.Tensor]]]:
        rows, copies = _distinct_rows(pending)
        rows.sort(key=lambda row: -row.width)  # stable: ties keep input order
        window = sum(len(job.masks) for task in pending for job in task.jobs)
        self._report(rows_done=window - len(rows), tell=False)  # copies and empty masks cost no forward
        done: list[tuple[_Batch, torch.Tensor]] = []  # log-probabilities stay on the device until the window ends
        for batch in prefetched(self._assembled(pending, rows, full), self.cuda):
            done += self._forward_or_split(pending, batch)
            self._report(rows_done=len(batch.rows), tokens=sum(row.width for row in batch.rows), tell=True)
        _scatter(pending, done)
        for row, source in copies:
            losses = pending[row.task].losses[row.job]
            losses[row.draw] = losses[source]
        for task in pending:
            yield task.payload, task.losses

    def _report(self, rows_done: int = 0, rows_known: int = 0, records_known: int = 0, tokens: int = 0,
                tell: bool = False) -> None:  # fmt: skip
        p = self.progress
        self.progress = BatchProgress(p.rows_done + rows_done, p.rows_known + rows_known,
                                      p.records_known + records_known, p.tokens + tokens)  # fmt: skip
        if tell and self.on_batch is not None:
            self.on_batch(self.progress)

    def _assembled(self, pending: list[_Pending[Payload]], rows: list[_Row], full: bool) -> Iterator[_Batch]:
        """The window's batches, planned lazily (a budget shrunk by an out-of-memory error applies
        to the batches after it)."""
        for indices, shape in self._plan(rows, full):
            yield self._assemble(pending, [rows[i] for i in indices], shape)

    def _plan(self, rows: list[_Row], full: bool) -> Iterator[tuple[list[int], tuple[int, int]]]:
        info = self.model.info
        return plan(rows, self._capacity, bounded=self.bounded_shapes, pads=info.pads, full_window=full,
                    ceiling=info.max_length)  # fmt: skip

    def _capacity(self, width: int) -> int:
        """Rows in a batch of this width: --batch-size, else the token budget's share (read at each
        cut, so a budget shrunk after an out-of-memory error applies at once)."""
        return self.batch_rows or max(1, self.max_tokens // width)

    def _forward_or_split(self, pending: list[_Pending[Payload]], batch: _Batch) -> list[tuple[_Batch, torch.Tensor]]:
        """On out-of-memory, halve the batch (and the budget for what follows) and retry.

        Rows are scored independently, so the split changes no number beyond float rounding.
        """
        try:
            return [(batch, self._forward(batch))]
        except torch.OutOfMemoryError as error:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            rows = batch.rows
            if len(rows) == 1:
                raise ModelError(
                    f"out of memory on a single row of {rows[0].width} tokens — use a smaller --dtype, "
                    "--device-map auto, or a device with more memory"
                ) from error
            half = len(rows) // 2
            if self.batch_rows:
                self.batch_rows = half
            else:
                self.max_tokens = max(1, half * batch.input_ids.shape[1])
            done: list[tuple[_Batch, torch.Tensor]] = []
            for part in (rows[:half], rows[half:]):
                for indices, shape in self._plan(part, full=False):
                    done += self._forward_or_split(pending, self._assemble(pending, [part[i] for i in indices], shape))
            return done

    def _assemble(self, pending: list[_Pending[Payload]], rows: list[_Row], shape: tuple[int, int]) -> _Batch:
        """The batch's host tensors, one job's run of rows at a time (numpy: small copies cost less
        there); on CUDA copied from pinned memory without waiting."""
        count, width = shape
        info = self.model.info
        input_ids = np.full((count, width), info.pad_id, dtype=np.int64)  # (B, W)
        attention = np.zeros((count, width), dtype=np.int64)  # (B, W)
        masked = np.zeros((count, width), dtype=bool)  # (B, W)
        score = np.zeros((count, width), dtype=bool)  # (B, W)
        concatenated = rows[0].concatenated
        positions = np.zeros((count, width), dtype=np.int64)  # (B, W) [noisy ‖ clean] rows only
        noisy_length = np.zeros(count, dtype=np.int64)  # (B,) [noisy ‖ clean] rows only
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
            masked[here, span] = job.masks.numpy()[draws]
            score[here, span] = job.targets().numpy()[draws]
            groups.append((task, j, draws, first))
            first += len(draws)
        attention[first:] = 1  # padding rows: pad tokens that see each other, so no row attends to nothing
        targets = torch.from_numpy(input_ids)
        noisy_ids = torch.from_numpy(np.where(masked, info.mask_id, input_ids))
        mask = torch.from_numpy(attention)
        if self.cuda:  # pinned, so the copy to the device runs beside the forward pass; the attention
            # mask stays on the host, where the adapter sees without a sync whether anything is padding
            noisy_ids = noisy_ids.pin_memory().to(self.model_device, non_blocking=True)
            mask = mask.pin_memory()
        layout = Concatenated(torch.from_numpy(positions), torch.from_numpy(noisy_length)) if concatenated else None
        return _Batch(rows, groups, noisy_ids, mask, torch.from_numpy(score), targets, layout, int(score.sum()))

    @property
    def model_device(self) -> torch.device:
        return torch.device(self.model.info.device)

    def _forward(self, batch: _Batch) -> torch.Tensor:
        """The batch's log-probabilities at its scored positions, row-major, left where the model made them."""
        if self.kernels is None:
            logprobs = _call(self.model, batch)
        else:
            padded = not bool(batch.attention.all())  # a host tensor: no sync
            kind = "block layout" if batch.concatenated is not None else "padded" if padded else "no padding"
            logprobs = self.kernels.run(kind, lambda: _call(self.model, batch), lambda: _call(self.model, _head(batch)))
            self.model.info = replace(self.model.info, attention=self.kernels.describe())
        self.forward_rows += len(batch.rows)
        self.shapes[(batch.score.shape[0], batch.score.shape[1])] += 1
        return logprobs  # (P,)


def _call(model: ScoringModel, batch: _Batch) -> torch.Tensor:
    if batch.concatenated is not None:
        return model.concatenated_logprobs(batch.input_ids, batch.attention, batch.concatenated, batch.score,
                                           batch.targets)  # fmt: skip
    return model.target_logprobs(batch.input_ids, batch.attention, batch.score, batch.targets)


def _head(batch: _Batch) -> _Batch:
    """A quarter of the batch's rows: what the attention kernels are timed on."""
    rows = max(1, len(batch.rows) // 4)
    layout = batch.concatenated
    if layout is not None:
        layout = Concatenated(layout.positions[:rows], layout.noisy_length[:rows])
    return _Batch(batch.rows[:rows], [], batch.input_ids[:rows], batch.attention[:rows], batch.score[:rows],
                  batch.targets[:rows], layout, int(batch.score[:rows].sum()))  # fmt: skip


def _distinct_rows(pending: list[_Pending[Payload]]) -> tuple[list[_Row], list[tuple[_Row, int]]]:
    """The rows that need a forward pass, and (row, draw whose identical mask is computed instead)."""
    rows: list[_Row] = []
    copies: list[tuple[_Row, int]] = []
    for t, task in enumerate(pending):
        for j, job in enumerate(task.jobs):
            masks, targets = job.masks.numpy(), job.targets().numpy()
            wanted = np.flatnonzero(targets.any(axis=1)).tolist()  # nothing to score costs 0
            width, concatenated = job.width, job.clean_copy is not None
            if len(wanted) == 1:
                rows.append(_Row(t, j, wanted[0], width, concatenated))
                continue
            keys = np.packbits(masks if job.scored is None else np.concatenate([masks, targets], axis=1), axis=1)
            first_with: dict[bytes, int] = {}
            for d in wanted:
                key = keys[d].tobytes()
                row = _Row(t, j, d, width, concatenated)
                if key in first_with:  # short texts repeat masks: one forward serves them all
                    copies.append((row, first_with[key]))
                else:
                    first_with[key] = d
                    rows.append(row)
    return rows, copies


def _scatter(pending: list[_Pending[Payload]], done: list[tuple[_Batch, torch.Tensor]]) -> None:
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


def prefetched(batches: Iterator[_Batch], enabled: bool) -> Iterator[_Batch]:
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
