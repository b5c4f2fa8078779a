"""Anytime-valid decisions between the coupled sides of a record (`choice` / `ratio --until-decided`).

A record is drawn at planned looks: the first round's passes (-n), then the total doubles each
round up to the cap (--max-samples). The schedule is fixed before any draw and every round has
fresh noise, so the draws pooled at look j are a fixed-size sample whatever earlier looks did.

At look j of K (1-based) the rule spends α_j = α·2^-j (the last look spends what is left,
α·2^-(K-1), so Σ α_j = α). A side c leaves contention when another side a still in it beats it:
the one-sided Student-t lower bound, at level α_j / (k − 1), on the mean of the paired per-draw
differences d = value_c − value_a (NLL: d > 0 means a is more likely) over every draw so far is
above 0. A pick is decided when one side is left. A wrong decided pick, or the best side put out,
needs one of the k − 1 comparisons against the truly best side to fail at one of the K looks, so
by the union bound P(wrong decided pick) ≤ Σ_j (k − 1)·α_j / (k − 1) = α, whatever the dependence
between looks. Comparisons between two other sides cannot make the pick wrong and cost nothing.

The variance is the plain sample variance of the d's with n − 1 degrees of freedom, not the
stratified one: with stratified draws it includes the spread between strata, so it over-states
the variance of the mean in expectation (the bound is conservative), and it keeps n − 1 degrees
of freedom where the stratified estimate of 8 draws has 4 or fewer — at look 1 of `--until-decided 3`
with 4 choices (level 4.5e-4) the one-sided t quantile is 33 with 2 degrees of freedom, 5.5 with 7.

`FixedZ` is the rule this replaces (stop once the margin exceeds Z stratified SEs, at every
look); it is kept only so that tests and the bench can show it failing where `Spending` holds.
Pure maths: no I/O. The level's spelling (α or z) is `levels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from itdd_cli.estimators.stats import summarise
from itdd_cli.estimators.tdist import two_sided_p


def planned_passes(first: int, cap: int) -> list[int]:
    """Cumulative passes per side at each look: first, 2·first, 4·first, …, cap (no step below 2)."""
    looks = [first]
    while looks[-1] < cap:
        looks.append(min(2 * looks[-1], cap))
    if len(looks) > 2 and looks[-1] - looks[-2] < 2:  # a last round of one pass: fold it into the one before
        looks.pop(-2)
    return looks


class Rule(Protocol):
    def beats(self, differences: torch.Tensor, strata: torch.Tensor, look: int, looks: int, sides: int) -> bool:
        """Whether the differences (value_c − value_a per draw) show side a more likely than c at this look."""
        ...


def t_clears(differences: torch.Tensor, level: float) -> bool:
    """Whether the one-sided Student-t lower confidence bound on the mean, at `level` (plain variance,
    n − 1 degrees of freedom), is above 0: the t statistic's one-sided p-value is below `level`."""
    values = differences.to(torch.float64)
    count = values.numel()
    mean = float(values.mean()) if count else 0.0
    if count < 2 or mean <= 0.0:
        return False
    spread = float(values.std())
    if spread == 0.0:
        return True  # identical positive differences: no noise left to bound
    t = mean / (spread / math.sqrt(count))
    return two_sided_p(t, count - 1) / 2.0 < level


@dataclass(frozen=True)
class Spending:
    """Alpha-spending over the planned looks with one-sided t bounds (the module docstring)."""

    alpha: float

    def look_alpha(self, look: int, looks: int) -> float:
        """α_j for look `look` (0-based) of `looks`; they sum to α."""
        return self.alpha * 0.5 ** min(look + 1, looks - 1) if looks > 1 else self.alpha

    def beats(self, differences: torch.Tensor, strata: torch.Tensor, look: int, looks: int, sides: int) -> bool:
        level = self.look_alpha(look, looks) / max(sides - 1, 1)
        return t_clears(differences, level)


@dataclass(frozen=True)
class FixedZ:
    """The naive rule: margin > z stratified SEs at every look. Not anytime-valid; for comparison only."""

    z: float

    def beats(self, differences: torch.Tensor, strata: torch.Tensor, look: int, looks: int, sides: int) -> bool:
        estimate = summarise(differences, strata)
        return estimate.value > self.z * estimate.se


def contenders(values: list[torch.Tensor], strata: torch.Tensor, active: list[bool], rule: Rule, look: int,
               looks: int) -> list[bool]:  # fmt: skip
    """Which sides stay in contention after this look: those no other side in contention beats.

    `values[i]` are side i's per-draw NLL values, paired by index across the sides in contention
    (which have drawn the same rounds); `strata` the draws' strata (for FixedZ).
    """
    sides = len(values)
    inside = [i for i in range(sides) if active[i]]
    return [active[c] and not any(_beaten(values, c, a, rule, strata, look, looks) for a in inside if a != c)
            for c in range(sides)]  # fmt: skip


def _beaten(values: list[torch.Tensor], c: int, a: int, rule: Rule, strata: torch.Tensor, look: int,
            looks: int) -> bool:  # fmt: skip
    """Whether side a puts side c out: by the rule, or as an identical earlier copy (coupled equal texts draw
    equal values; their tie goes to the first, as it would with infinitely many draws, so no draw can change it)."""
    return (a < c and torch.equal(values[c], values[a])) or rule.beats(values[c] - values[a], strata, look, looks,
                                                                       len(values))  # fmt: skip


def replay(values: list[list[torch.Tensor]], strata: list[torch.Tensor], rule: Rule) -> tuple[bool, int | None, int]:
    """The decision a run under `rule` makes from every planned round drawn for every side:
    `values[i][r]` side i's values in round r, `strata[r]` round r's strata (numbered apart across
    rounds, as a tally keeps them). Returns (decided, the pick or None, looks used).

    A round's noise does not depend on earlier looks and a side put out only stops drawing, so this
    equals the run's own decision (tests check it); benches use it to try several rules on one set of draws."""
    looks = len(strata)
    active = [True] * len(values)
    for look in range(looks):
        pooled = [torch.cat(side[: look + 1]) for side in values]
        active = contenders(pooled, torch.cat(strata[: look + 1]), active, rule, look, looks)
        if sum(active) == 1:
            return True, active.index(True), look + 1
    return False, None, looks
