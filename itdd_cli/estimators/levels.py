"""--until-decided's level: the error rate α it asks for. Pure arithmetic, no torch (the CLI checks it).

A level in (0, 1) is α itself; a level from 1 to Z_MAX is a z, mapped to the two-sided normal tail
α = P(|N(0,1)| > z) (2 → 0.0455, 3 → 0.0027). Anything else is no level.
"""

from __future__ import annotations

import math

Z_MAX = 8.0  # α = 1.2e-15: beyond it no Monte Carlo budget decides anything


def alpha_of(level: float) -> float:
    """The error rate α a --until-decided level asks for; ValueError if it is none."""
    if not math.isfinite(level) or level <= 0 or level > Z_MAX:
        raise ValueError(level)
    return level if level < 1 else math.erfc(level / math.sqrt(2.0))
