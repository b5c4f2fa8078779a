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
from dataclasses import dataclass, replace
from typing import TypeVar

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.base import ScoringModel
from itdd_cli.scoring.attention import Kernels
from itdd_cli.scoring.batches import Batch, Pending, Row, assemble, call, distinct_rows, head, prefetched, scatter
from itdd_cli.scoring.shapes import plan

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


class Engine:
    def __init__(
        self,
        model: ScoringModel,
        batch_rows: int | None = None,
        max_tokens: int | None = None,
        window_rows: int = WINDOW_ROWS,
        on_batch: Callable[[BatchProgress], None] | None = None,
        bounded_shapes: bool = True,
        guidance: float | None = None,
    ) -> None:
        self.model = model
        # --cfg S: each row goes through the model with its unconditional twin (models/guidance.py),
        # so every row costs two forward rows, in the batch budget and in every count
        self.guidance = guidance
        self.copies = 1 if guidance is None else 2
        self.batch_rows = batch_rows
        self.cuda = model.info.device.startswith("cuda")
        self.device = torch.device(model.info.device) if self.cuda else None  # where batches are copied ahead
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
        pending: list[Pending[Payload]] = []
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
            pending.append(Pending(payload, jobs, [torch.zeros(j.masks.shape, dtype=torch.float64) for j in jobs]))
            rows += sum(len(job.masks) for job in jobs)
            self._report(rows_known=self.copies * sum(len(job.masks) for job in jobs), records_known=1)
            if rows >= self.window_rows:  # resume.plan_resume replays this rule
                yield from self._flush(pending, full=True)
                pending, rows = [], 0
        yield from self._flush(pending, full=False)

    def _flush(self, pending: list[Pending[Payload]], full: bool) -> Iterator[tuple[Payload, list[torch.Tensor]]]:
        rows, copies = distinct_rows(pending)
        rows.sort(key=lambda row: -row.width)  # stable: ties keep input order
        window = sum(len(job.masks) for task in pending for job in task.jobs)
        self._report(rows_done=self.copies * (window - len(rows)), tell=False)  # copies and empty masks: no forward
        done: list[tuple[Batch, torch.Tensor]] = []  # log-probabilities stay on the device until the window ends
        for batch in prefetched(self._assembled(pending, rows, full), self.cuda):
            done += self._forward_or_split(pending, batch)
            self._report(rows_done=self.copies * len(batch.rows),
                         tokens=self.copies * sum(row.width for row in batch.rows), tell=True)  # fmt: skip
        scatter(pending, done)
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

    def _assembled(self, pending: list[Pending[Payload]], rows: list[Row], full: bool) -> Iterator[Batch]:
        """The window's batches, planned lazily (a budget shrunk by an out-of-memory error applies
        to the batches after it)."""
        for indices, shape in self._plan(rows, full):
            yield assemble(self.model.info, self.device, pending, [rows[i] for i in indices], shape, self.guidance)

    def _plan(self, rows: list[Row], full: bool) -> Iterator[tuple[list[int], tuple[int, int]]]:
        info = self.model.info
        return plan(rows, self._capacity, bounded=self.bounded_shapes, pads=info.pads, full_window=full,
                    ceiling=info.max_length)  # fmt: skip

    def _capacity(self, width: int) -> int:
        """Rows in a batch of this width: --batch-size, else the token budget's share (read at each
        cut, so a budget shrunk after an out-of-memory error applies at once); under guidance the
        rows whose twins fill the rest."""
        return max(1, (self.batch_rows or self.max_tokens // width) // self.copies)

    def _forward_or_split(self, pending: list[Pending[Payload]], batch: Batch) -> list[tuple[Batch, torch.Tensor]]:
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
                self.batch_rows = half * self.copies
            else:
                self.max_tokens = max(1, half * self.copies * batch.input_ids.shape[1])
            done: list[tuple[Batch, torch.Tensor]] = []
            for part in (rows[:half], rows[half:]):
                for indices, shape in self._plan(part, full=False):
                    batch = assemble(self.model.info, self.device, pending, [part[i] for i in indices], shape,
                                     self.guidance)  # fmt: skip
                    done += self._forward_or_split(pending, batch)
            return done

    def _forward(self, batch: Batch) -> torch.Tensor:
        """The batch's log-probabilities at its scored positions, row-major, left where the model made them."""
        if self.kernels is None:
            logprobs = call(self.model, batch)
        else:
            padded = not bool(batch.attention.all())  # a host tensor: no sync
            kind = "block layout" if batch.concatenated is not None else "padded" if padded else "no padding"
            logprobs = self.kernels.run(kind, lambda: call(self.model, batch), lambda: call(self.model, head(batch)))
            self.model.info = replace(self.model.info, attention=self.kernels.describe())
        self.forward_rows += self.copies * len(batch.rows)
        self.shapes[(batch.input_ids.shape[0], batch.input_ids.shape[1])] += 1
        return logprobs  # (P,)
