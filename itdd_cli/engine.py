"""Turns (record × draw) rows into padded forward batches and hands back per-position losses.

Rows from many records share a batch; inside a bounded look-ahead window they are sorted
longest first (so an oversized batch shows up at once and padding stays small) and cut into
batches under a row count or a token budget. Results come back in input order. A block
model's job asks for a clean copy: its rows are laid out [noisy ‖ clean] (`CleanCopy`). The
engine knows nothing about tokenization, estimators, blocks or files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.base import ScoringModel
from itdd_cli.models.block import Concatenated

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


@dataclass(frozen=True)
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


class Engine:
    def __init__(
        self,
        model: ScoringModel,
        batch_rows: int | None = None,
        max_tokens: int | None = None,
        window_rows: int = WINDOW_ROWS,
        on_batch: Callable[[BatchProgress], None] | None = None,
    ) -> None:
        self.model = model
        self.batch_rows = batch_rows
        self.max_tokens = max_tokens or (GPU_MAX_TOKENS if model.info.device.startswith("cuda") else CPU_MAX_TOKENS)
        self.window_rows = window_rows
        self.forward_rows = 0  # rows actually sent through the model
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
                yield from self._flush(pending)
                raise
            pending.append(_Pending(payload, jobs, [torch.zeros(j.masks.shape, dtype=torch.float64) for j in jobs]))
            rows += sum(len(job.masks) for job in jobs)
            self._report(rows_known=sum(len(job.masks) for job in jobs), records_known=1)
            if rows >= self.window_rows:
                yield from self._flush(pending)
                pending, rows = [], 0
        yield from self._flush(pending)

    def _flush(self, pending: list[_Pending[Payload]]) -> Iterator[tuple[Payload, list[torch.Tensor]]]:
        rows: list[_Row] = []
        copies: list[tuple[_Row, int]] = []  # (row, draw whose identical mask is computed instead)
        for t, task in enumerate(pending):
            for j, job in enumerate(task.jobs):
                first_with: dict[bytes, int] = {}
                targets = job.targets()
                for d in targets.any(dim=1).nonzero().flatten().tolist():  # nothing to score costs 0
                    key = job.masks[d].numpy().tobytes() + targets[d].numpy().tobytes()
                    row = _Row(t, j, d, job.width, job.clean_copy is not None)
                    if key in first_with:  # short texts repeat masks: one forward serves them all
                        copies.append((row, first_with[key]))
                    else:
                        first_with[key] = d
                        rows.append(row)
        rows.sort(key=lambda row: -row.width)  # stable: ties keep input order
        window = sum(len(job.masks) for task in pending for job in task.jobs)
        self._report(rows_done=window - len(rows), tell=False)  # copies and empty masks cost no forward
        for batch in self._batches(rows):
            self._forward_or_split(pending, batch)
            self._report(rows_done=len(batch), tokens=sum(row.width for row in batch), tell=True)
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

    def _batches(self, rows: list[_Row]) -> Iterator[list[_Row]]:
        batch: list[_Row] = []
        for row in rows:
            if batch and not self.model.info.pads and row.width != batch[0].width:
                yield batch  # a model without attention masks sees one length per batch
                batch = []
            if batch and row.concatenated != batch[0].concatenated:
                yield batch  # a batch is read in one layout
                batch = []
            full = (
                len(batch) >= self.batch_rows
                if self.batch_rows
                else (len(batch) + 1) * (batch[0].width if batch else row.width) > self.max_tokens
            )
            if batch and full:
                yield batch
                batch = []
            batch.append(row)
        if batch:
            yield batch

    def _forward_or_split(self, pending: list[_Pending[Payload]], batch: list[_Row]) -> None:
        """On out-of-memory, halve the batch (and the budget for what follows) and retry.

        Rows are scored independently, so the split changes no number.
        """
        try:
            self._forward(pending, batch)
        except torch.OutOfMemoryError as error:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(batch) == 1:
                raise ModelError(
                    f"out of memory on a single row of {batch[0].width} tokens — use a smaller --dtype, "
                    "--device-map auto, or a device with more memory"
                ) from error
            half = len(batch) // 2
            if self.batch_rows:
                self.batch_rows = half
            else:
                self.max_tokens = max(1, half * max(row.width for row in batch))
            self._forward_or_split(pending, batch[:half])
            self._forward_or_split(pending, batch[half:])

    def _forward(self, pending: list[_Pending[Payload]], batch: list[_Row]) -> None:
        width = max(row.width for row in batch)
        info = self.model.info
        input_ids = torch.full((len(batch), width), info.pad_id, dtype=torch.long)  # (B, W)
        attention = torch.zeros((len(batch), width), dtype=torch.long)  # (B, W)
        masked = torch.zeros((len(batch), width), dtype=torch.bool)  # (B, W)
        score = torch.zeros((len(batch), width), dtype=torch.bool)  # (B, W)
        positions = torch.zeros((len(batch), width), dtype=torch.long)  # (B, W) [noisy ‖ clean] rows only
        noisy_length = torch.zeros(len(batch), dtype=torch.long)  # (B,)
        for b, row in enumerate(batch):
            job = pending[row.task].jobs[row.job]
            span = slice(job.first_column, job.first_column + job.masks.shape[1])
            copy = job.clean_copy
            if copy is None:
                input_ids[b, : row.width] = job.ids
            else:
                noisy = copy.noisy_end - copy.noisy_start
                input_ids[b, :noisy] = job.ids[copy.noisy_start : copy.noisy_end]
                input_ids[b, noisy : row.width] = job.ids[: copy.clean_end]
                positions[b, :noisy] = torch.arange(copy.noisy_start, copy.noisy_end)
                positions[b, noisy : row.width] = torch.arange(copy.clean_end)
                noisy_length[b] = noisy
            attention[b, : row.width] = 1
            masked[b, span] = job.masks[row.draw]
            score[b, span] = job.targets()[row.draw]
        targets = input_ids.clone()
        input_ids[masked] = info.mask_id
        if batch[0].concatenated:
            rows = Concatenated(positions, noisy_length)
            logprobs = self.model.concatenated_logprobs(input_ids, attention, rows, score, targets)  # (P,) row-major
        else:
            logprobs = self.model.target_logprobs(input_ids, attention, score, targets)  # (P,) row-major
        losses = torch.zeros((len(batch), width), dtype=torch.float64)  # (B, W)
        losses[score] = -logprobs.double()
        for b, row in enumerate(batch):
            job = pending[row.task].jobs[row.job]
            first = job.first_column
            pending[row.task].losses[row.job][row.draw] = losses[b, first : first + job.masks.shape[1]]
        self.forward_rows += len(batch)
