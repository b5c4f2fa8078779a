"""The settings that fix a scoring run's numbers, and the perplexity helper every report shares.

Imports neither torch nor transformers, so the command line can read them before the model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from itdd_cli.core.windows import Long
from itdd_cli.estimators.kinds import DEFAULT_ESTIMATOR, Estimator

LN2 = math.log(2.0)
# The seed is hashed with each record's token ids as 16 signed bytes (estimators.sampling),
# so any integer in this range works and none outside it does.
SEED_MIN, SEED_MAX = -(2**127), 2**127 - 1


@dataclass(frozen=True)
class Settings:
    estimator: Estimator = DEFAULT_ESTIMATOR
    samples: int = 128  # forward passes per record (per side for ratio), pilot included
    seed: int = 0
    independent: bool = False
    batch_rows: int | None = None  # None: fill batches up to max_tokens
    max_tokens: int | None = None  # None: the engine's default for the model's device
    chat_template: bool = False  # wrap the prompt in the tokenizer's chat template as a user turn
    long: Long = Long.error  # a text longer than the model's window: refuse it, or score it in windows
    context: int = 0  # --long rolling: earlier tokens each later window is conditioned on
    keep_boundary: bool = False  # False: the prompt's trailing whitespace starts the response (lm-eval)
    strict: bool = False  # refuse a record whose text the tokenizer cannot represent, instead of flagging it
    target_se: float | None = None  # draw in rounds until the SE (of nll, or of log_ratio) is at most this
    until_decided: float | None = None  # ratio, choice: rounds until the pick is decided at this level (α or z)
    max_samples: int | None = None  # cap on passes per record in rounds; None: 8 × samples
    per_token: bool = False  # also split each draw's value over its positions (no extra passes, same numbers)
    cfg: float = 0.0  # classifier-free guidance scale S (LLaDA's protocol); 0: none, the plain likelihood

    @property
    def guidance(self) -> float | None:
        """The guidance scale when guided (--cfg > 0); None at 0, which takes the plain path untouched."""
        return self.cfg if self.cfg > 0 else None

    @property
    def adaptive(self) -> bool:
        """Whether records are drawn in rounds (--target-se / --until-decided)."""
        return self.estimator.monte_carlo and (self.target_se is not None or self.until_decided is not None)

    @property
    def cap(self) -> int:
        return self.max_samples if self.max_samples is not None else 8 * self.samples

    def reached(self, se: float) -> bool:
        """Whether a record drawn in rounds is precise enough (--target-se); --until-decided's rule
        is estimators.decisions'."""
        return self.target_se is not None and se <= self.target_se


def safe_exp(value: float) -> float:
    """exp, saturating to inf instead of raising OverflowError (a perplexity can be huge)."""
    return math.inf if value >= 700 else math.exp(value)  # NaN stays NaN
