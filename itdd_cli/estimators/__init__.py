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

from importlib import import_module
from typing import Any

from itdd_cli.estimators.kinds import Estimator

# The tensor modules load on first use, so `Estimator` alone costs no torch import.
_LAZY = {
    "EXACT_MAX_TOKENS": "masks",
    "MaskPlan": "masks",
    "plan_masks": "masks",
    "Noise": "sampling",
    "draw_noise": "sampling",
    "record_generator": "sampling",
    "Estimate": "stats",
    "summarise": "stats",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"itdd_cli.estimators.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'itdd_cli.estimators' has no attribute {name!r}")


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
