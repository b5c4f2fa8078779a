"""How a framed sequence is cut into the rows a block-diffusion model scores.

−log p(x) of a block model is Σ_b NELBO(x_b | x_<b): each block is its own masked-diffusion
problem, conditioned on the clean blocks before it, with later blocks absent. Blocks tile the
whole framed sequence from position 0, so a prompt may end inside a block: its tokens there
stay unmasked context, and only the block's scored tokens are drawn over. A model without
blocks is one span covering every scored token, and nothing changes for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from itdd_cli.draws import RecordDraws
from itdd_cli.engine import Job
from itdd_cli.errors import UsageError
from itdd_cli.estimators import Estimate
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


@dataclass
class BlockDraws:
    """A block model's record: each block is its own RecordDraws over the framed ids cut at the
    block's end, seeded with its block index. A block both ratio sides have is one RecordDraws
    with two sides (coupled by rank unless --independent); a block only one side has stands alone."""

    framed: list[Framed]  # the sides' full framed sequences
    blocks: list[tuple[list[int], RecordDraws]]  # (the sides present, in order; the block's draws)

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
        return cls(framed, blocks)

    @property
    def passes(self) -> int:
        """Forward passes over all blocks (each block draws its own)."""
        return sum(draws.passes for _, draws in self.blocks)

    def jobs(self) -> list[Job]:
        return [job for _, draws in self.blocks for job in draws.jobs()]

    def absorb(self, losses: list[torch.Tensor]) -> None:
        offset = 0
        for sides, draws in self.blocks:
            draws.absorb(losses[offset : offset + len(sides)])
            offset += len(sides)
        if offset != len(losses):
            raise ValueError(f"{len(losses)} losses for {offset} block jobs")

    def estimates(self) -> list[Estimate]:
        parts: list[list[Estimate]] = [[] for _ in self.framed]
        for sides, draws in self.blocks:
            for side, estimate in zip(sides, draws.estimates(), strict=True):
                parts[side].append(estimate)
        return [total(side) for side in parts]

    def contributions(self) -> list[torch.Tensor]:
        """Per side, its blocks' per-token shares concatenated in token order (blocks are sorted)."""
        parts: list[list[torch.Tensor]] = [[] for _ in self.framed]
        for sides, draws in self.blocks:
            for side, shares in zip(sides, draws.contributions(), strict=True):
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
