"""One round of draws for one side of a record, and the tally of every round so far.

A record is scored in rounds (one, unless --target-se asks for more). Each round gets its own
noise; the control variate's pilot runs in the first round only and serves every later one.
Values from all rounds are pooled with their strata kept apart, so the stratified error bar
stays valid whatever the round sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from itdd_cli.estimators.chain_rule import MIN_ORDERS
from itdd_cli.estimators.control_variate import Pilot, adjusted_values, loss_table, pilot_levels, plan_pilot
from itdd_cli.estimators.kinds import Estimator, enumerable
from itdd_cli.estimators.masks import enumerated, plan_masks, planner
from itdd_cli.estimators.positions import PositionTally, split_passes
from itdd_cli.estimators.sampling import Noise
from itdd_cli.estimators.stats import Estimate, summarise, variance_groups


@dataclass(frozen=True)
class RoundShape:
    """How a round spends its passes; shared by the sides of a pair so their draws line up."""

    draws: int  # rows of main noise: draws, or whole orders for the chain rule
    levels: int = 0  # pilot rates (control variate, first round)
    orders: bool = False  # whole orders (L passes each), for an estimator that plans them
    exhaustive: bool = False  # every masked set of every side fits the passes: enumerate them, exactly


def round_shape(
    estimator: Estimator, passes: int, lengths: list[int], first: bool, spend_all: bool = False,
    min_orders: int = MIN_ORDERS,
) -> RoundShape:
    """Split `passes` per side (≥ 2) between pilot and main draws, or into whole orders
    (at least `min_orders` of them; `chain_rule.BLOCK_ORDERS` for a block model's blocks).

    A first round whose passes cover every side's 2^L − 1 masked sets enumerates them instead.
    Whole orders may leave a few passes unspent; with `spend_all` (the round that reaches
    --max-samples) an estimator of whole orders (the chain rule) samples single steps instead.
    """
    if not estimator.monte_carlo:
        return RoundShape(0)
    if first and enumerable(lengths, passes):
        return RoundShape(0, exhaustive=True)
    if estimator.uses_pilot and first:
        levels = pilot_levels(passes, min(lengths))
        return RoundShape(passes - (2**levels - 1), levels)
    whole = passes // max(lengths) >= max(min_orders, MIN_ORDERS) and not (spend_all and passes % max(lengths))
    if estimator.spec.orders is not None and whole:
        return RoundShape(passes // max(lengths), orders=True)
    return RoundShape(passes)


@dataclass(frozen=True)
class RoundPlan:
    """What to run for one side in one round, and how its passes become values."""

    masks: torch.Tensor  # (N, L) bool
    scored: torch.Tensor | None  # (N, L) bool; None scores every masked position
    weights: torch.Tensor  # (N,) float64: a pass adds weight · its loss to its value
    value_of: torch.Tensor  # (N,) int64: the value a pass adds to; −1 for a pilot pass
    strata: torch.Tensor | None  # (V,) int64; None: the values are the terms of an exact sum
    pilot: Pilot | None = None  # the leading passes, when the round has a pilot
    orders: bool = False  # whole orders (the chain rule's): the SE is the spread between them


def plan_round(
    estimator: Estimator, length: int, shape: RoundShape, noise: Noise | None, pilot_keys: torch.Tensor | None
) -> RoundPlan:
    if not estimator.monte_carlo or shape.exhaustive:
        base = enumerated(None, length)
        return RoundPlan(base.masks, None, base.weights, torch.arange(len(base.masks)), None)
    assert noise is not None, "Monte Carlo estimators need noise"
    if shape.orders:
        assert estimator.spec.orders is not None
        masks, scored = planner(estimator.spec.orders)(noise.keys, length)
        ones = torch.ones(len(masks), dtype=torch.float64)
        orders = torch.arange(shape.draws).repeat_interleave(length)
        return RoundPlan(masks, scored, ones, orders, torch.zeros(shape.draws, dtype=torch.int64), orders=True)
    base = plan_masks(estimator, noise, length)
    if not shape.levels:
        return RoundPlan(base.masks, base.scored, base.weights, torch.arange(len(base.masks)), base.strata)
    assert pilot_keys is not None and len(pilot_keys) == shape.levels and base.scored is None
    pilot = plan_pilot(pilot_keys, length)
    masks = torch.cat([pilot.masks, base.masks])
    weights = torch.cat([torch.zeros(len(pilot.masks), dtype=torch.float64), base.weights])
    value_of = torch.cat([torch.full((len(pilot.masks),), -1), torch.arange(len(base.masks))])
    return RoundPlan(masks, None, weights, value_of, base.strata, pilot)


@dataclass
class Tally:
    """Every value of one side so far, with the pilot's loss table once measured."""

    estimator: Estimator
    passes: int = 0
    table: torch.Tensor | None = None  # (R, L) control-variate losses per rate and token
    rates: torch.Tensor | None = None
    values: list[torch.Tensor] = field(default_factory=list)
    strata: list[torch.Tensor] = field(default_factory=list)
    groups: list[torch.Tensor] = field(default_factory=list)  # per round, the strata that share a variance
    exact: bool = False
    orders: bool = False  # some round drew whole orders: their spread is not rescaled (`summarise`)
    positions: PositionTally | None = None  # set to also split every value over its positions (--per-token)

    def add(self, plan: RoundPlan, losses: torch.Tensor) -> torch.Tensor:
        """Take one round's (N, L) losses; return that round's values (V,)."""
        self.passes += len(plan.masks)
        if plan.pilot is not None:
            count = len(plan.pilot.masks)
            self.table, self.rates = loss_table(plan.pilot, losses[:count]), plan.pilot.rates
        main = plan.value_of >= 0
        masks, weights, main_losses = plan.masks[main], plan.weights[main], losses[main]
        if self.table is not None and self.rates is not None:
            per_pass = adjusted_values(self.table, self.rates, masks, weights, main_losses)
        else:
            per_pass = weights * main_losses.sum(1)
        size = int(plan.value_of.max()) + 1
        values = torch.zeros(size, dtype=torch.float64).index_add_(0, plan.value_of[main], per_pass)
        self.values.append(values)
        if self.positions is not None:
            splits = split_passes(masks, weights, main_losses, self.table, self.rates)
            self.positions.add(plan.value_of[main], splits, size, exact=plan.strata is None)
        self.orders = self.orders or plan.orders
        if plan.strata is None:
            self.exact = True
        else:
            offset = sum(int(s.max()) + 1 for s in self.strata)
            self.strata.append(plan.strata + offset)
            joined = sum(int(g.max()) + 1 for g in self.groups)
            self.groups.append(variance_groups(plan.strata, self.estimator.strata_per_group) + joined)
        return values

    def all_values(self) -> torch.Tensor:
        return torch.cat(self.values)

    def all_strata(self) -> torch.Tensor | None:
        return None if self.exact else torch.cat(self.strata)

    def all_groups(self) -> torch.Tensor | None:
        """Labels (V,) for the SE: each round's strata, joined in groups when the round is small
        (`stats.variance_groups`); None for an exact sum. Paired differences use these too."""
        return None if self.exact else torch.cat(self.groups)

    def estimate(self) -> Estimate:
        return summarise(self.all_values(), self.all_groups(), scale=not self.orders)

    def contributions(self) -> torch.Tensor:
        """(L,): each scored position's share of `estimate().value` (they sum to it)."""
        if self.positions is None:
            raise ValueError("this tally was not asked to split its values over positions")
        return self.positions.contributions()

    def contribution_errors(self) -> torch.Tensor:
        """(L,): each share's standard error, by the rule that gives `estimate().se`."""
        if self.positions is None:
            raise ValueError("this tally was not asked to split its values over positions")
        return self.positions.errors(self.all_groups(), scale=not self.orders)
