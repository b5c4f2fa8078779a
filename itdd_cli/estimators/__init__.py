"""I-MDCE Monte Carlo estimators: pure tensor maths, no I/O, no transformers, no rich.

    −log p(x_S | x_rest) = Σ_{l=1..L} (1/l) · E_{|M|=l} [ loss(M) ]

One sampler feeds every estimator: a draw is a uniform `u` and one key per scored position;
an estimator maps `u` to a masked count (or rate) and masks the positions with the smallest
keys. The caller runs the model on a round's masks and hands back the per-position losses;
a `Tally` turns them into values and `summarise` into an estimate and a standard error.
`ESTIMATORS` (kinds.py) declares each estimator once: its advice, its mask planner, whether it is
Monte Carlo, its whole orders and pilot; `Estimator` reads its properties from there.

Shape letters: N passes, L scored positions of one sequence, K keys per draw (≥ L; coupled
sides take columns of them through a token alignment, `coupling`), R control-variate pilot rates,
P pilot passes, V values, m chain-rule orders.

This package knows nothing about tokenizers, models or files.
"""

from importlib import import_module
from typing import Any

from itdd_cli.estimators.kinds import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    EXACT_MAX_TOKENS,
    MONTE_CARLO,
    Estimator,
    EstimatorSpec,
    StandardError,
    enumerable,
)

# The tensor modules load on first use, so `Estimator` alone costs no torch import.
_LAZY = {
    "MaskPlan": "masks",
    "plan_masks": "masks",
    "PositionTally": "positions",
    "split_passes": "positions",
    "RoundPlan": "rounds",
    "RoundShape": "rounds",
    "Tally": "rounds",
    "plan_round": "rounds",
    "round_shape": "rounds",
    "PILOT_STREAM": "sampling",
    "Noise": "sampling",
    "draw_noise": "sampling",
    "pilot_keys": "sampling",
    "record_generator": "sampling",
    "round_stream": "sampling",
    "Estimate": "stats",
    "summarise": "stats",
    "variance_groups": "stats",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"itdd_cli.estimators.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'itdd_cli.estimators' has no attribute {name!r}")


__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "EXACT_MAX_TOKENS", "MONTE_CARLO", "Estimator", "EstimatorSpec",
           "StandardError", "enumerable", *_LAZY]  # fmt: skip
