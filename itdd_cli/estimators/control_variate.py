"""The multi-rate control variate: a few pilot passes measure every token's loss at mask rates
1, ½, ¼, …; each main draw subtracts those losses (interpolated at its own rate, summed over its
masked positions) and adds back their exact mean.

For a main draw masking a uniform l-subset M of L positions with weight L/l,

    value = (L/l) · (loss(M) − Σ_{i∈M} c_i(l/L)) + Σ_i c_i(l/L)

and E[(L/l) Σ_{i∈M} c_i | l] = Σ_i c_i, so the value keeps the stratified draw's mean whatever
the pilot measured. That holds only because β is fixed at 1 and the pilot's randomness is
independent of the main draws: fitting β on the same draws, or pooling pilot passes into the
level means, biases the estimate and shrinks the error bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MIN_PILOT_LENGTH = 3
# Main draws a pilot must leave: the error bar stands on them alone, and with fewer than 8 its
# few degrees of freedom made it too short (|z| > 3 for 3 % of seeds on the oracle at -n 8, where
# the pilot took 3 of 8 passes). Below that the round is plain `stratified`; -n ≥ 11 keeps a pilot.
MIN_MAIN_DRAWS = 8


def pilot_levels(samples: int, length: int) -> int:
    """How many rates the pilot measures: ⌈log₂(n)/2⌉ (15 of 128 passes, 7 of 32), at most one
    block per position, and at least MIN_MAIN_DRAWS main draws left for the error bar. 0: no pilot.

    No pilot below 3 positions: there the pilot measures every possible masked set, each main
    value is fixed by its masked count alone, and stratum pairs straddling a count boundary would
    report an error bar of 0 (measured on the oracle). The choice depends only on the length."""
    if length < MIN_PILOT_LENGTH:
        return 0
    levels = math.ceil(math.log2(samples) / 2) if samples > 1 else 0
    levels = min(levels, int(math.log2(length)) + 1)  # 2^(R−1) blocks ≤ L positions
    while levels > 0 and samples - pilot_passes(levels) < MIN_MAIN_DRAWS:
        levels -= 1
    return levels


def pilot_passes(levels: int) -> int:
    return 2**levels - 1  # 1 + 2 + 4 + … blocks


@dataclass(frozen=True)
class Pilot:
    """Level r splits a fresh permutation into 2^r blocks and masks each block once."""

    masks: torch.Tensor  # (P, L) bool
    level: torch.Tensor  # (P,) int64, the rate each pass measures
    rates: torch.Tensor  # (R,) float64: 1, 1/2, 1/4, …


def plan_pilot(keys: torch.Tensor, length: int) -> Pilot:
    """`keys` (R, K ≥ L): one permutation per level (coupled sides' columns aligned by token)."""
    rows, levels = [], []
    for level in range(keys.shape[0]):
        blocks = 2**level
        ranks = keys[level, :length].argsort().argsort()  # (L,)
        block = ranks * blocks // length  # sizes differ by at most one
        for b in range(blocks):
            rows.append(block == b)
            levels.append(level)
    rates = torch.tensor([0.5**level for level in range(keys.shape[0])], dtype=torch.float64)
    return Pilot(torch.stack(rows), torch.tensor(levels, dtype=torch.int64), rates)


def loss_table(pilot: Pilot, losses: torch.Tensor) -> torch.Tensor:
    """(R, L): each token's loss at each rate (every position is masked once per level)."""
    table = torch.zeros((len(pilot.rates), losses.shape[1]), dtype=torch.float64)
    return table.index_add_(0, pilot.level, losses * pilot.masks)


def covariates(table: torch.Tensor, rates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(N, L): per-token losses at rate l/L, linear in the rate, constant beyond the measured rates."""
    length = table.shape[1]
    if len(rates) == 1:
        return table[0].expand(len(counts), length)
    ascending, values = rates.flip(0), table.flip(0)  # rates 1/2^(R−1) … 1
    rate = (counts.to(torch.float64) / length).clamp(float(ascending[0]), float(ascending[-1]))  # (N,)
    high = torch.searchsorted(ascending, rate).clamp(1, len(rates) - 1)
    low = high - 1
    share = ((rate - ascending[low]) / (ascending[high] - ascending[low]))[:, None]  # (N, 1)
    return values[low] + share * (values[high] - values[low])


def adjusted_values(
    table: torch.Tensor, rates: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor, losses: torch.Tensor
) -> torch.Tensor:
    """(N,) main draws' values with the covariate subtracted and its exact mean added back."""
    cov = covariates(table, rates, masks.sum(1))  # (N, L)
    return weights * (losses.sum(1) - (cov * masks).sum(1)) + cov.sum(1)
