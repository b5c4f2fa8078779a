"""The random-order chain rule: an order σ of the scored positions; pass k masks σ_k … σ_L
and scores σ_k alone, so Σ_k −log p(x_{σ_k} | x_{σ_{>k}}) is one draw.

Its mean over uniform orders is the I-MDCE quantity for any model (step k masks a uniform
subset of size L−k+1 and scores a uniform member of it); for a model whose conditionals are
consistent every order gives the exact −log p, which is why it wins on such models and loses
on others. With fewer passes than two whole orders (BLOCK_ORDERS on a block), each pass is one
sampled step (weight L).
"""

from __future__ import annotations

import torch

from itdd_cli.estimators.masks import MaskPlan
from itdd_cli.estimators.sampling import Noise

# Whole orders give an SE from their spread with one degree of freedom per order less one, taken
# as it is (`stats.summarise`); below this many orders a block of a block model draws single steps
# instead, whose strata are joined and whose SE is scaled like any small round's. Measured on a
# 3-block record at -n 8 (2 orders a 4-token block): rms error/SE 2.42, |z| > 3 for 11 %.
# 16 orders is where the spread between orders was calibrated (dna8). Plain records keep 2.
# Whole orders from 4 (3 degrees of freedom, the fewest a t-scaled SE allows); with 2 or 3 the spread
# between orders is no error bar (bench/chain_rule_orders.py), so passes are drawn as single steps.
MIN_ORDERS = 4
BLOCK_ORDERS = 16


def _steps(ranks: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the `counts` smallest ranks; score the largest of them."""
    masks = ranks < counts[:, None]  # (N, L)
    return masks, ranks == (counts[:, None] - 1)


def order_masks(keys: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole orders, one per key row: (m·L, L) masks and scored positions, order by order."""
    ranks = keys[:, :length].argsort(dim=1).argsort(dim=1)  # (m, L)
    counts = torch.arange(1, length + 1).repeat(len(ranks))  # (m·L,)
    return _steps(ranks.repeat_interleave(length, dim=0), counts)


def step_masks(noise: Noise, length: int) -> MaskPlan:
    """One step per draw, weight L, its masked count l = ⌈u·L⌉ stratified like `stratified`'s."""
    ranks = noise.keys[:, :length].argsort(dim=1).argsort(dim=1)  # (N, L)
    counts = torch.ceil(noise.u * length).clamp(1, length).to(torch.int64)
    masks, scored = _steps(ranks, counts)
    weights = torch.full((len(masks),), float(length), dtype=torch.float64)
    return MaskPlan(masks, weights, noise.strata, scored)
