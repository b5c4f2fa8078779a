"""I-MDCE Monte Carlo estimators: pure tensor maths, no I/O, no transformers, no rich.

    −log p(x_S | x_rest) = Σ_{l=1..L} (1/l) · E_{|M|=l} [ loss(M) ]

One sampler feeds every estimator: a draw is a uniform `u` and one key per scored position;
an estimator maps `u` to a masked count (or rate) and masks the positions with the smallest
keys. The caller runs the model on the masks and hands back `loss(M)` per draw; `summarise`
turns weighted losses into an estimate and a standard error.

Shape letters: N draws, L scored positions of one sequence, K keys per draw (≥ L; coupled
ratio sides share them by rank).

This package knows nothing about tokenizers, models or files.
"""

from itdd_cli.estimators.masks import EXACT_MAX_TOKENS, Estimator, MaskPlan, plan_masks
from itdd_cli.estimators.sampling import Noise, draw_noise, record_generator
from itdd_cli.estimators.stats import Estimate, summarise

__all__ = [
    "EXACT_MAX_TOKENS",
    "Estimate",
    "Estimator",
    "MaskPlan",
    "Noise",
    "draw_noise",
    "plan_masks",
    "record_generator",
    "summarise",
]
