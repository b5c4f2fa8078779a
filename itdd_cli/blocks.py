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

from itdd_cli.estimators import Estimate
from itdd_cli.models.base import Framed


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
