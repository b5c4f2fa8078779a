"""Student's t distribution without scipy: the two-sided p-value through the regularized
incomplete beta function (Lentz's continued fraction), and the quantile by bisection on it.

P(|T| > t) with ν degrees of freedom is I_x(ν/2, 1/2) at x = ν / (ν + t²).
"""

from __future__ import annotations

import math

_TINY = 1e-300
_EPS = 1e-15


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf), converging for x < (a+1)/(a+b+2)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b


def two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with `df` degrees of freedom (df = inf: the normal)."""
    if math.isnan(t):
        raise ValueError("t is NaN")
    if math.isinf(t):
        return 0.0
    if math.isinf(df):
        return math.erfc(abs(t) / math.sqrt(2.0))
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def critical(df: float, level: float = 0.05) -> float:
    """The t with P(|T| ≥ t) = level: bisection on the p-value (monotone in t) to machine precision."""
    low, high = 0.0, 1.0
    while two_sided_p(high, df) > level:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        low, high = (middle, high) if two_sided_p(middle, df) > level else (low, middle)
    return (low + high) / 2.0


def binomial_upper(runs: int, rate: float, tail: float = 1e-2) -> int:
    """The smallest count c with P(Binomial(runs, rate) > c) ≤ tail: how many wrong decisions of `runs`, each
    wrong with probability `rate`, are still within chance (the decision tests and bench/decisions.py)."""
    total = 0.0
    for count in range(runs + 1):
        log_mass = math.lgamma(runs + 1) - math.lgamma(count + 1) - math.lgamma(runs - count + 1)
        total += math.exp(log_mass + count * math.log(rate) + (runs - count) * math.log1p(-rate))
        if 1 - total <= tail:
            return count
    return runs
