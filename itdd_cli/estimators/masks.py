"""Estimators as maps from noise to (masks, weights): one draw's value is weight · loss(M)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from itertools import combinations
from typing import Any

import torch

from itdd_cli.estimators.kinds import EXACT_MAX_TOKENS, Estimator
from itdd_cli.estimators.sampling import Noise


@dataclass(frozen=True)
class MaskPlan:
    """masks[j, i] says whether scored position i is masked in draw j; value_j = weights[j]·loss_j."""

    masks: torch.Tensor  # (N, L) bool
    weights: torch.Tensor  # (N,) float64
    strata: torch.Tensor | None  # (N,) int64; None for `exact`, whose sum has no error
    scored: torch.Tensor | None = None  # (N, L) bool; None scores every masked position


def smallest_keys(keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    ranks = keys.argsort(dim=1).argsort(dim=1)  # (N, L)
    return ranks < counts[:, None]


def harmonic(length: int) -> float:
    return sum(1.0 / k for k in range(1, length + 1))


def stratified(noise: Noise, length: int) -> MaskPlan:
    counts = torch.ceil(noise.u * length).clamp(1, length)  # (N,) uniform on 1..L
    return MaskPlan(smallest_keys(noise.keys[:, :length], counts), length / counts, noise.strata)


def time_free(noise: Noise, length: int) -> MaskPlan:
    inverse = 1.0 / torch.arange(1, length + 1, dtype=torch.float64)
    cdf = inverse.cumsum(0) / inverse.sum()  # P(l) = 1/(l·H_L)
    counts = (torch.searchsorted(cdf, noise.u) + 1).clamp(max=length).to(torch.float64)
    weights = torch.full_like(noise.u, harmonic(length))
    return MaskPlan(smallest_keys(noise.keys[:, :length], counts), weights, noise.strata)


def time_integral(noise: Noise, length: int) -> MaskPlan:
    """Rate λ = u, each position masked with probability λ, value loss(M)/λ — but drawn given
    M ≠ ∅ with weight P(M ≠ ∅)/λ ≤ L. An empty M has loss 0, so the mean is unchanged, while the
    plain form's second moment ∫ L·c²/λ dλ diverges at λ → 0 and no error bar could be honest.

    Given its count, a Bernoulli(λ) mask is a uniform subset; the count (binomial, at least 1)
    comes by inverse CDF from v = 1 − (1 − min κ)^L, uniform and independent of the keys' ranks."""
    keys = noise.keys[:, :length]
    u = noise.u.clamp(max=1.0 - 1e-12)[:, None]  # (N, 1)
    counts = torch.arange(1, length + 1, dtype=torch.float64)  # (L,)
    log_choose = torch.lgamma(torch.tensor(length + 1.0)) - torch.lgamma(counts + 1) - torch.lgamma(length - counts + 1)
    log_pmf = log_choose + counts * u.log() + (length - counts) * torch.log1p(-u)  # (N, L)
    nonempty = -torch.expm1(length * torch.log1p(-u))  # (N, 1): P(|M| ≥ 1)
    cdf = (log_pmf.exp() / nonempty).cumsum(1)
    v = -torch.expm1(length * torch.log1p(-keys.min(1, keepdim=True).values))  # (N, 1) uniform
    count = (torch.searchsorted(cdf, v * cdf[:, -1:]) + 1).clamp(max=length).squeeze(1)
    return MaskPlan(smallest_keys(keys, count), nonempty.squeeze(1) / noise.u, noise.strata)


def enumerated(noise: Noise | None, length: int) -> MaskPlan:
    """Every non-empty masked set once, weighted 1/(l·C(L, l)): the exact sum (noise unused)."""
    if length < 1:
        raise ValueError("nothing to score")
    if length > EXACT_MAX_TOKENS:
        raise ValueError(f"exact enumeration is limited to {EXACT_MAX_TOKENS} scored tokens")
    rows = []
    weights = []
    for count in range(1, length + 1):
        weight = 1.0 / (count * math.comb(length, count))
        for subset in combinations(range(length), count):
            row = torch.zeros(length, dtype=torch.bool)
            row[list(subset)] = True
            rows.append(row)
            weights.append(weight)
    return MaskPlan(torch.stack(rows), torch.tensor(weights, dtype=torch.float64), None)


def planner(name: str) -> Callable[..., Any]:
    """The function an `EstimatorSpec` names as "module.function" under `itdd_cli.estimators`."""
    module, _, function = name.rpartition(".")
    return getattr(import_module(f"itdd_cli.estimators.{module}"), function)


def plan_masks(estimator: Estimator, noise: Noise | None, length: int) -> MaskPlan:
    """Masks over the first `length` keys of `noise` (coupled sides' keys are columns picked by
    `coupling`), by the planner `ESTIMATORS` names for the estimator."""
    if length < 1:
        raise ValueError("nothing to score")
    assert noise is not None or not estimator.monte_carlo, "Monte Carlo estimators need noise"
    plan: MaskPlan = planner(estimator.spec.planner)(noise, length)
    return plan
