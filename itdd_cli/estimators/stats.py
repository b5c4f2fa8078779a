"""From per-draw values to an estimate with an honest standard error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float


def summarise(values: torch.Tensor, strata: torch.Tensor | None) -> Estimate:
    """Mean of stratified draws (strata of equal width per draw) with the stratified SE:

        Var = Σ_h n_h · s_h² / n²   (s_h² the unbiased variance inside stratum h).

    With `strata=None` the values are the terms of an exact sum: no error.
    """
    values = values.to(torch.float64)  # (N,)
    if strata is None:
        return Estimate(float(values.sum()), 0.0)
    count = values.numel()
    sizes = torch.bincount(strata).to(torch.float64)  # (H,)
    sums = torch.zeros_like(sizes).index_add_(0, strata, values)
    means = sums / sizes
    squares = torch.zeros_like(sizes).index_add_(0, strata, (values - means[strata]) ** 2)
    variance = float((squares / (sizes - 1) * sizes).sum()) / count**2
    return Estimate(float(values.mean()), math.sqrt(max(variance, 0.0)))
