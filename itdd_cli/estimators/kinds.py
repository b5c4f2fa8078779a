"""What each estimator is: Monte Carlo or exact, its size limit, how its error bar is built.

The runner, the tests and the benches read these properties instead of naming estimators,
so a new member is tested and benched without touching them.
"""

from __future__ import annotations

from enum import StrEnum

# 2^16 − 1 forward passes per sequence is already minutes on a CPU; beyond it `exact` is
# a mistake, not a measurement.
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
        return self is Estimator.dse

    @property
    def monte_carlo(self) -> bool:
        """False for an estimator whose value is an exact sum (no seed, no error bar)."""
        return self is not Estimator.exact

    @property
    def max_tokens(self) -> int | None:
        """The most scored tokens per sequence it accepts; None: no limit."""
        return EXACT_MAX_TOKENS if self is Estimator.exact else None

    @property
    def standard_error(self) -> StandardError:
        if self is Estimator.exact:
            return StandardError.none
        if self is Estimator.chain_rule:
            return StandardError.between_orders  # with fewer than two orders: stratum pairs of steps
        return StandardError.stratum_pairs

    @property
    def strata_per_group(self) -> int:
        """How many strata of a small round share one variance estimate (`stats.variance_groups`).
        `time-free` weighs every draw alike, so its values climb with the masked count and wide
        groups would mix very different means (measured: a z spread of 0.7 with groups of 4);
        the others weigh a draw by about L/l, which keeps their values level across strata."""
        return 2 if self is Estimator.time_free else 4

    @property
    def uses_pilot(self) -> bool:
        """Whether some passes of the first round measure per-token losses for a control variate."""
        return self is Estimator.control_variate


def enumerable(lengths: list[int], passes: int) -> bool:
    """Whether every side's 2^L − 1 non-empty masked sets fit in `passes`: then enumerating them
    costs no more than the draws would and gives the exact value (a Monte Carlo estimator's
    record scored exactly, as `exact` scores it)."""
    return all(length <= EXACT_MAX_TOKENS and 2**length - 1 <= passes for length in lengths)


DEFAULT_ESTIMATOR = Estimator.control_variate
# The Monte Carlo estimators every family runs (through masked conditionals); `dse` is SEDD's own.
MONTE_CARLO = [estimator for estimator in Estimator if estimator.monte_carlo and not estimator.needs_scores]
