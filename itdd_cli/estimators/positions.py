"""Where a draw's value goes: its split over the scored positions, and the per-position tally.

Every estimator's value per draw is a sum over positions — weight · loss_l over the scored
positions (the engine's losses are 0 elsewhere) — so splitting it per position changes nothing
but the bookkeeping. The control variate's value w·(Σ_M loss − Σ_M c) + Σ_all c splits as

    w · 1{l∈M} · (loss_l − c_l) + c_l

which is unbiased for position l's share on its own, because E[w · 1{l∈M} | |M|] = 1 for the
stratified draw it corrects (and c comes from the independent pilot). The per-position splits
are averaged exactly as the values are (over draws, across rounds), so the contributions sum
to the estimate, and with `exact` they are the exact decomposition
c_l = Σ_k (1/k) · E_{|M|=k}[1{l∈M} · loss_l(M)].

A position's standard error is its column of per-value splits put through `summarise`, the rule
(strata, groups, small-sample scaling) that gives the row's `nll_se` from the values themselves.
The positions' errors are correlated (they share draws), so they do not add up to `nll_se`.
"""

from __future__ import annotations

import torch

from itdd_cli.estimators.control_variate import covariates
from itdd_cli.estimators.stats import summarise


def split_passes(
    masks: torch.Tensor,  # (N, L) bool
    weights: torch.Tensor,  # (N,) float64
    losses: torch.Tensor,  # (N, L) float64, 0 off the scored positions
    table: torch.Tensor | None = None,  # (R, L) the control variate's pilot losses
    rates: torch.Tensor | None = None,  # (R,)
) -> torch.Tensor:
    """(N, L): each pass's value split over positions; row sums are the passes' values."""
    if table is None or rates is None:
        return weights[:, None] * losses
    cov = covariates(table, rates, masks.sum(1))  # (N, L)
    return weights[:, None] * masks * (losses - cov) + cov


class PositionTally:
    """Running per-position sums of the values' splits; `contributions` averages them as
    `summarise` averages the values (the mean over every draw, or the sum of an exact one)."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # (L,) float64
        self.count = 0
        self.exact = False
        self.rounds: list[torch.Tensor] = []  # (V, L) per round: each value's split, for the errors

    def add(self, value_of: torch.Tensor, splits: torch.Tensor, size: int, exact: bool) -> None:
        """`splits` (N, L) of the round's non-pilot passes; `value_of` (N,) the value each adds to."""
        values = torch.zeros((size, splits.shape[1]), dtype=torch.float64).index_add_(0, value_of, splits)  # (V, L)
        total = values.sum(0)
        self.sums = total if self.sums is None else self.sums + total
        self.rounds.append(values)
        self.count += size
        self.exact = self.exact or exact

    def contributions(self) -> torch.Tensor:
        """(L,): each position's share of the estimate."""
        assert self.sums is not None, "no round was tallied"
        return self.sums.clone() if self.exact else self.sums / self.count

    def errors(self, groups: torch.Tensor | None, scale: bool) -> torch.Tensor:
        """(L,): each position's standard error; `groups` and `scale` as the tally summarises its values
        (None: an exact sum, no error)."""
        assert self.sums is not None, "no round was tallied"
        if groups is None:
            return torch.zeros_like(self.sums)
        splits = torch.cat(self.rounds)  # (V, L)
        return torch.tensor([summarise(column, groups, scale=scale).se for column in splits.T],
                            dtype=torch.float64)  # fmt: skip
