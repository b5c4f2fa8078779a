"""I-MDCE Monte Carlo estimators: pure tensor maths, no I/O, no transformers, no rich.

    −log p(x_S | x_rest) = Σ_{l=1..L} (1/l) · E_{|M|=l} [ loss(M) ]

One sampler feeds every estimator: a draw is a uniform `u` and one key per scored position;
an estimator maps `u` to a masked count (or rate) and masks the positions with the smallest
keys. The caller runs the model on a round's masks and hands back the per-position losses;
a `Tally` turns them into values and `summarise` into an estimate and a standard error.
`Estimator` says what each estimator is (Monte Carlo or exact, size limit, error bar).

Shape letters: N passes, L scored positions of one sequence, K keys per draw (≥ L; coupled
ratio sides share them by rank), R control-variate pilot rates, P pilot passes, V values,
m chain-rule orders.

This package knows nothing about tokenizers, models or files.
"""

from itdd_cli.estimators.kinds import DEFAULT_ESTIMATOR, EXACT_MAX_TOKENS, MONTE_CARLO, Estimator, StandardError
from itdd_cli.estimators.masks import MaskPlan, plan_masks
from itdd_cli.estimators.rounds import RoundPlan, RoundShape, Tally, plan_round, round_shape
from itdd_cli.estimators.sampling import (
    PILOT_STREAM,
    Noise,
    draw_noise,
    pilot_keys,
    record_generator,
    round_stream,
)
from itdd_cli.estimators.stats import Estimate, summarise

__all__ = [
    "DEFAULT_ESTIMATOR",
    "EXACT_MAX_TOKENS",
    "MONTE_CARLO",
    "PILOT_STREAM",
    "Estimate",
    "Estimator",
    "MaskPlan",
    "Noise",
    "RoundPlan",
    "RoundShape",
    "StandardError",
    "Tally",
    "draw_noise",
    "pilot_keys",
    "plan_masks",
    "plan_round",
    "record_generator",
    "round_shape",
    "round_stream",
    "summarise",
]
