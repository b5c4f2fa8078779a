"""The settings that fix a scoring run's numbers, and the perplexity helper every report shares.

Imports neither torch nor transformers, so the command line can read them before the model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from itdd_cli.estimators.kinds import Estimator

LN2 = math.log(2.0)
# The seed is hashed with each record's token ids as 16 signed bytes (estimators.sampling),
# so any integer in this range works and none outside it does.
SEED_MIN, SEED_MAX = -(2**127), 2**127 - 1


@dataclass(frozen=True)
class Settings:
    estimator: Estimator = Estimator.stratified
    samples: int = 128
    seed: int = 0
    independent: bool = False
    batch_rows: int | None = None  # None: fill batches up to max_tokens
    max_tokens: int | None = None  # None: the engine's default for the model's device
    chat_template: bool = False  # wrap the prompt in the tokenizer's chat template as a user turn
    strict: bool = False  # refuse a record whose text the tokenizer cannot represent, instead of flagging it


def safe_exp(value: float) -> float:
    """exp, saturating to inf instead of raising OverflowError (a perplexity can be huge)."""
    return math.inf if value >= 700 else math.exp(value)  # NaN stays NaN
