"""Every estimator, declared once: `ESTIMATORS` says what each is and where its masks come from.

The runner, the rounds, the CLI's help, the tests and the benches read these entries instead of
naming estimators, so a new member is an entry here, its planner module and its test data.
Planners are named by "module.function" under `itdd_cli.estimators` and imported on first use
(`masks.planner`), so this table costs no torch import and `itdd --help` can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# 2^16 − 1 forward passes per sequence is already minutes on a CPU; beyond it enumerating every
# masked set is a mistake, not a measurement.
EXACT_MAX_TOKENS = 16


class StandardError(StrEnum):
    none = "none: an exact sum"
    stratum_pairs = "spread inside strata of two draws"
    between_orders = "spread between independent orders"


class Estimator(StrEnum):
    control_variate = "control-variate"
    chain_rule = "chain-rule"
    stratified = "stratified"
    time_free = "time-free"
    time_integral = "time-integral"
    exact = "exact"
    dse = "dse"

    @property
    def needs_scores(self) -> bool:
        """True for the score-entropy estimator, which reads a SEDD model's scores on corrupted
        rows instead of masked conditionals (estimators/dse.py); other families refuse it."""
        return self.spec.reads_scores

    @property
    def spec(self) -> EstimatorSpec:
        return ESTIMATORS[self]

    @property
    def monte_carlo(self) -> bool:
        """False for an estimator whose value is an exact sum (no seed, no error bar)."""
        return self.spec.monte_carlo

    @property
    def max_tokens(self) -> int | None:
        """The most scored tokens per sequence it accepts; None: no limit."""
        return None if self.spec.monte_carlo else EXACT_MAX_TOKENS

    @property
    def standard_error(self) -> StandardError:
        if not self.spec.monte_carlo:
            return StandardError.none
        if self.spec.orders is not None:
            return StandardError.between_orders  # with fewer than two orders: stratum pairs of steps
        return StandardError.stratum_pairs

    @property
    def strata_per_group(self) -> int:
        return self.spec.strata_per_group

    @property
    def uses_pilot(self) -> bool:
        return self.spec.uses_pilot


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator: when to pick it, how a round's masks are planned and how its error bar is built.

    `planner(noise, L)` returns a `masks.MaskPlan` (masks, weights, strata, and the scored subset
    when a pass scores fewer positions than it masks). `orders(keys, L)`, when set, plans whole
    orders of L passes, used once two fit a round; the error bar is then their spread.
    """

    advice: str  # shown by --estimator's help
    planner: str | None  # None: it plans no masks (it reads scores: scoring/dse_draws.py)
    monte_carlo: bool = True  # False: every masked set once, an exact sum (at most EXACT_MAX_TOKENS)
    orders: str | None = None
    uses_pilot: bool = False  # the first round's leading passes measure per-token losses (`control_variate`)
    # How many strata of a small round share one variance estimate (`stats.variance_groups`).
    strata_per_group: int = 4
    reads_scores: bool = False  # a score-entropy (SEDD) model's scores on corrupted rows, not masked conditionals


ESTIMATORS: dict[Estimator, EstimatorSpec] = {
    Estimator.control_variate: EstimatorSpec(
        "lowest variance on text (a short pilot measures each token's loss)", "masks.stratified", uses_pilot=True
    ),
    Estimator.chain_rule: EstimatorSpec(
        "best on models whose conditionals agree with each other, such as dna8",
        "chain_rule.step_masks",
        orders="chain_rule.order_masks",
    ),
    Estimator.stratified: EstimatorSpec("low variance, no pilot", "masks.stratified"),
    # time-free weighs every draw alike, so its values climb with the masked count and wide groups
    # would mix very different means (measured: a z spread of 0.7 with groups of 4); the others
    # weigh a draw by about L/l, which keeps their values level across strata.
    Estimator.time_free: EstimatorSpec("the paper's, noisier; for comparison", "masks.time_free", strata_per_group=2),
    Estimator.time_integral: EstimatorSpec(
        "the paper's masking-rate integral, the noisiest; for comparison", "masks.time_integral"
    ),
    Estimator.exact: EstimatorSpec(
        f"every mask once, no error bar, at most {EXACT_MAX_TOKENS} scored tokens; to check the others",
        "masks.enumerated",
        monte_carlo=False,
    ),
    Estimator.dse: EstimatorSpec(
        "SEDD models only: the score entropy time integral SEDD trains on (absorbing and uniform graphs)",
        None,
        reads_scores=True,
    ),
}


def enumerable(lengths: list[int], passes: int) -> bool:
    """Whether every side's 2^L − 1 non-empty masked sets fit in `passes`: then enumerating them
    costs no more than the draws would and gives the exact value (a Monte Carlo estimator's
    record scored exactly, as `exact` scores it)."""
    return all(length <= EXACT_MAX_TOKENS and 2**length - 1 <= passes for length in lengths)


DEFAULT_ESTIMATOR = Estimator.control_variate
# The Monte Carlo estimators every family runs (through masked conditionals); `dse` is SEDD's own.
MONTE_CARLO = [estimator for estimator in Estimator if estimator.monte_carlo and not estimator.needs_scores]
