"""From per-draw values to an estimate with an honest standard error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# A round with fewer strata than this has them collapsed into groups for its variance estimate:
# with two draws a stratum, a small round's few high-variance strata give the SE one degree of
# freedom each, and on short texts both draws often land on the same mask (spread 0, estimate
# off). Measured on the oracle at -n 8 … 32: |z| > 3 for up to 12 % of seeds before, ≤ 2.5 % after.
# From 24 strata (-n 48) on, strata of two stay: joining them at -n 64 raised a 9-token record's
# SE by 43 % (0.23 → 0.33 nats on demo), more caution than it needs; at -n 32 (16 strata) not
# joining left the oracle's `badcab` at 3.5 % beyond 3 SE (`stratified`, 3.0 % joined).
COLLAPSE_BELOW = 24
# Below this many degrees of freedom the SE is scaled (`summarise`); -n 128 has 64 (the control variate 57).
FEW_DEGREES = 32
CALIBRATED_ORDERS = 16  # the chain rule's spread between whole orders holds unscaled from here

# Fewest draws whose perfect agreement is taken as a flat integrand rather than chance repeats
# (coupled chain-rule steps of `abca` vs `abcc` all scored a shared token in 1 of 40 seeds at 4 draws).
MIN_AGREEING = 8


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float


def variance_groups(strata: torch.Tensor, per_group: int) -> torch.Tensor:
    """Labels (N,) that join `per_group` neighbouring strata of one round (a leftover few join the
    last full group) when the round has fewer than COLLAPSE_BELOW strata; labels start at 0.

    Treating a group as one stratum is the collapsed-strata estimator: its expected variance is
    the stratified one plus the spread of the joined strata's means, so it can only err high,
    while each group's estimate stands on 2·per_group − 1 degrees of freedom instead of one.
    The estimate (the mean of the values) does not change."""
    first = int(strata.min())
    local = strata - first
    count = int(local.max()) + 1
    if count >= COLLAPSE_BELOW or per_group <= 1:
        return local
    groups = max(1, count // per_group)
    return torch.clamp(torch.div(local, per_group, rounding_mode="floor"), max=groups - 1)


def summarise(values: torch.Tensor, strata: torch.Tensor | None, scale: bool = True) -> Estimate:
    """Mean of stratified draws (strata of equal width per draw) with the stratified SE:

        Var = Σ_h n_h · s_h² / n²   (s_h² the unbiased variance inside stratum h).

    With `strata=None` the values are the terms of an exact sum: no error. A Monte Carlo SE is
    not 0 while draws disagree: where every group's draws agree (repeats of one mask), the spread
    over all draws stands in (one group: larger still). Where all draws agree, MIN_AGREEING or
    more of them across strata mean the integrand is flat (SE 0: a uniform model); fewer may be
    one mask drawn again and again, so the SE is NaN, which the runner refuses with advice.

    Below FEW_DEGREES degrees of freedom ν (values less groups) the SE is scaled by √(ν/(ν − 2)),
    ν at least 3, so that error/SE has unit variance (t with ν degrees of freedom). `scale=False`
    marks the chain rule's spread between whole orders: scaled only below CALIBRATED_ORDERS orders
    (calibrated at 16 on dna8, so default-n numbers there are unchanged; with 2 orders error/SE
    measured rms 3.8 unscaled, bench/chain_rule_orders.py); whole orders that all agree are not chance
    repeats of a mask but a model whose conditionals are consistent on the record: SE 0.
    """
    values = values.to(torch.float64)  # (N,)
    if strata is None:
        return Estimate(float(values.sum()), 0.0)
    variance = _stratified_variance(values, strata)
    if variance <= 0:
        variance = _stratified_variance(values, torch.zeros_like(strata))
    if variance <= 0:
        agreed = values.numel() >= MIN_AGREEING or not scale  # whole orders agreeing: consistent conditionals
        return Estimate(float(values.mean()), 0.0 if agreed else math.nan)
    freedom = values.numel() - len(torch.unique(strata))
    if freedom < (FEW_DEGREES if scale else CALIBRATED_ORDERS - 1):  # error/SE's variance is ν/(ν − 2): make it 1
        nu = max(freedom, 3)
        variance *= nu / (nu - 2)
    return Estimate(float(values.mean()), math.sqrt(variance))


def _stratified_variance(values: torch.Tensor, strata: torch.Tensor) -> float:
    count = values.numel()
    sizes = torch.bincount(strata).to(torch.float64)  # (H,)
    kept = sizes > 1  # a label with one value (none, after `variance_groups`) has no spread
    sums = torch.zeros_like(sizes).index_add_(0, strata, values)
    means = sums / sizes.clamp_min(1)
    squares = torch.zeros_like(sizes).index_add_(0, strata, (values - means[strata]) ** 2)
    return float((squares[kept] / (sizes[kept] - 1) * sizes[kept]).sum()) / count**2
