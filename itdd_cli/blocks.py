"""How a framed sequence is cut into the rows a block-diffusion model scores.

−log p(x) of a block model is Σ_b NELBO(x_b | x_<b): each block is its own masked-diffusion
problem, conditioned on the clean blocks before it, with later blocks absent. Blocks tile the
whole framed sequence from position 0, so a prompt may end inside a block: its tokens there
stay unmasked context, and only the block's scored tokens are drawn over. A model without
blocks is one span covering every scored token, and nothing changes for it.

A side of a record is scored in one [noisy ‖ clean] job (models/block.py): its row r carries the
r-th distinct draw of every block at once, each block masked by its own draw. A noisy block sees
only itself and the clean blocks before it, so the blocks of one row never see one another's
masks and each keeps its own draws, tally and numbers. Blocks draw the same count in Monte
Carlo rounds, but `exact` enumerates 2^L − 1 masks of an L-token block and short blocks repeat
masks (computed once), as does a short block whose masked sets all fit `--samples` under any
estimator (`rounds.round_shape`): a block with fewer distinct draws than the job has rows stays unmasked
and unscored in the remaining rows, which, seen by no other block, changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from itdd_cli.draws import RecordDraws
from itdd_cli.engine import CleanCopy, Job
from itdd_cli.errors import UsageError
from itdd_cli.estimators import Estimate, RoundPlan
from itdd_cli.models.base import Framed
from itdd_cli.settings import Settings


@dataclass(frozen=True)
class Span:
    """The scored tokens of one block: `ids[start:start + length]`, scored on `ids[:end]`."""

    block: int  # index on the block grid (0 for a model without blocks)
    end: int  # the row stops at the end of this block: later blocks are absent
    start: int
    length: int


def block_spans(framed: Framed, block_size: int | None) -> list[Span]:
    if block_size is None:
        return [Span(0, len(framed.ids), framed.start, framed.length)]
    spans = []
    position, stop = framed.start, framed.start + framed.length
    while position < stop:
        block = position // block_size
        block_end = min((block + 1) * block_size, stop)
        spans.append(Span(block, min((block + 1) * block_size, len(framed.ids)), position, block_end - position))
        position = block_end
    return spans


def total(estimates: list[Estimate]) -> Estimate:
    """Σ over blocks; blocks draw independently, so their variances add."""
    return Estimate(sum(e.value for e in estimates), math.sqrt(sum(e.se**2 for e in estimates)))


@dataclass(frozen=True)
class _Placed:
    """One block of one side inside that side's [noisy ‖ clean] job."""

    block: int  # index into BlockDraws.blocks
    member: int  # the side's place among the block's sides
    offset: int  # scored tokens of the side before this block's
    length: int
    slots: torch.Tensor  # (N,) long: the job row computing each draw; −1: nothing to score (loss 0)


def distinct_slots(masks: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N,) long: each draw's slot among the distinct (mask, scored) pairs, in first-seen order;
    −1 for a draw with nothing to score. A repeated mask is computed once, as the engine would."""
    slots = torch.full((len(masks),), -1, dtype=torch.long)
    first: dict[bytes, int] = {}
    for d in targets.any(dim=1).nonzero().flatten().tolist():
        key = masks[d].numpy().tobytes() + targets[d].numpy().tobytes()
        slots[d] = first.setdefault(key, len(first))
    return slots


@dataclass
class BlockDraws:
    """A block model's record: each block is its own RecordDraws over the framed ids cut at the
    block's end, seeded with its block index. A block both ratio sides have is one RecordDraws
    with two sides (coupled through their token alignment unless --independent); a block only one
    side has stands alone."""

    framed: list[Framed]  # the sides' full framed sequences
    blocks: list[tuple[list[int], RecordDraws]]  # (the sides present, in order; the block's draws)
    block_size: int
    placed: list[list[_Placed]] = field(default_factory=list)  # per side, set by `jobs`

    @classmethod
    def of(cls, context: list[int], framed: list[Framed], settings: Settings, block_size: int) -> BlockDraws:
        members: dict[int, list[tuple[int, Span]]] = {}
        for side, f in enumerate(framed):
            for span in block_spans(f, block_size):
                members.setdefault(span.block, []).append((side, span))
        blocks = []
        for block in sorted(members):
            cut = [Framed(framed[side].ids[: span.end], span.start, span.length) for side, span in members[block]]
            sides = [side for side, _ in members[block]]
            blocks.append((sides, RecordDraws(context, cut, settings, tag=(block,))))
        return cls(framed, blocks, block_size)

    @property
    def passes(self) -> int:
        """Draws over all blocks, pilot included (each block draws its own)."""
        return sum(draws.passes for _, draws in self.blocks)

    def jobs(self) -> list[Job]:
        """One [noisy ‖ clean] job per side, its rows carrying every block's distinct draws."""
        self.placed = [[] for _ in self.framed]
        jobs = []
        for side, framed in enumerate(self.framed):
            parts = []
            for k, (sides, draws) in enumerate(self.blocks):
                if side in sides:
                    member = sides.index(side)
                    cut, plan = draws.framed[member], draws.plans[member]
                    slots = distinct_slots(plan.masks, plan.masks if plan.scored is None else plan.scored)
                    self.placed[side].append(_Placed(k, member, cut.start - framed.start, cut.length, slots))
                    parts.append((cut, plan))
            jobs.append(self._job(framed, self.placed[side], parts))
        return jobs

    def _job(self, framed: Framed, placed: list[_Placed], parts: list[tuple[Framed, RoundPlan]]) -> Job:
        rows = max((int(p.slots.max()) + 1 for p in placed if len(p.slots)), default=0)
        masks = torch.zeros((rows, framed.length), dtype=torch.bool)  # (R, L)
        # scored subsets of the masks (the chain rule); an enumerated block scores all it masks
        chain = any(plan.scored is not None for _, plan in parts)
        scored = torch.zeros((rows, framed.length), dtype=torch.bool) if chain else None  # (R, L)
        for p, (_, plan) in zip(placed, parts, strict=True):
            draws = (p.slots >= 0).nonzero().flatten()
            columns = slice(p.offset, p.offset + p.length)
            masks[p.slots[draws], columns] = plan.masks[draws]
            if scored is not None:
                scored[p.slots[draws], columns] = (plan.masks if plan.scored is None else plan.scored)[draws]
        first, last = parts[0][0], parts[-1][0]
        block = self.block_size
        copy = CleanCopy(noisy_start=first.start // block * block, noisy_end=len(last.ids),
                         clean_end=last.start // block * block)  # fmt: skip
        return Job(torch.tensor(framed.ids, dtype=torch.long), framed.start, masks, scored, copy)

    def absorb(self, losses: list[torch.Tensor]) -> None:
        """Split each side's (R, L) losses back into its blocks' (N, L_b) draws and tally them."""
        if len(losses) != len(self.placed):
            raise ValueError(f"{len(losses)} losses for {len(self.placed)} sides")
        per_block: list[list[torch.Tensor | None]] = [[None] * len(sides) for sides, _ in self.blocks]
        for side_losses, placed in zip(losses, self.placed, strict=True):
            for p in placed:
                block_losses = torch.zeros((len(p.slots), p.length), dtype=torch.float64)
                draws = (p.slots >= 0).nonzero().flatten()
                block_losses[draws] = side_losses[p.slots[draws], p.offset : p.offset + p.length]
                per_block[p.block][p.member] = block_losses
        for (_, draws), block_losses in zip(self.blocks, per_block, strict=True):
            draws.absorb(block_losses)

    def estimates(self) -> list[Estimate]:
        parts: list[list[Estimate]] = [[] for _ in self.framed]
        for sides, draws in self.blocks:
            for side, estimate in zip(sides, draws.estimates(), strict=True):
                parts[side].append(estimate)
        return [total(side) for side in parts]

    def contributions(self) -> list[torch.Tensor]:
        """Per side, its blocks' per-token shares concatenated in token order (blocks are sorted)."""
        return self._per_side([draws.contributions() for _, draws in self.blocks])

    def contribution_errors(self) -> list[torch.Tensor]:
        """Per side, its blocks' per-token standard errors in token order (each block draws its own masks)."""
        return self._per_side([draws.contribution_errors() for _, draws in self.blocks])

    def _per_side(self, per_block: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        parts: list[list[torch.Tensor]] = [[] for _ in self.framed]
        for (sides, _), values in zip(self.blocks, per_block, strict=True):
            for side, shares in zip(sides, values, strict=True):
                parts[side].append(shares)
        return [torch.cat(side) for side in parts]

    def difference(self) -> Estimate:
        """rejected − chosen, Σ over blocks; a block only one side has counts with its sign."""
        parts = []
        for sides, draws in self.blocks:
            if len(sides) == 2:
                parts.append(draws.difference())
            else:
                estimate = draws.estimates()[0]
                parts.append(estimate if sides == [1] else Estimate(-estimate.value, estimate.se))
        return total(parts)

    def next_round(self) -> bool:
        raise UsageError("--target-se / --until-decided are not supported for block-diffusion models")
