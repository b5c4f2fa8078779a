"""`itdd compare`: pair two result files by id and test whether NEW differs from BASE.

Per record d_i = NEW_i − BASE_i; the mean difference has the paired standard error sd(d)/√n,
which contains both runs' Monte Carlo noise and the spread between records. Significance is
two-sided at 5 % with Student's t (exact quantile and p-value, `tdist`). With one paired record
the two rows' own standard errors give the SE (per-token metrics: `nll_se / tokens`) and the
normal distribution the test; a metric whose rows carry no SE then has no verdict, never a NaN.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.results import read_results, row_key
from itdd_cli.rows import SPECS, comparable, spec_of_columns
from itdd_cli.settings import LN2
from itdd_cli.tdist import critical, two_sided_p


@dataclass(frozen=True)
class Comparison:
    metric: str
    paired: int
    only_base: int
    only_new: int
    mean_base: float
    mean_new: float
    difference: float  # mean of NEW − BASE
    se: float | None  # None: nothing says how far apart the runs may fall (one record, no SE in its rows)
    df: float  # degrees of freedom of the test (inf: the normal, for one record)

    @property
    def critical(self) -> float:
        """|t| above this is significant at 5 %."""
        return critical(self.df)

    @property
    def t(self) -> float | None:
        if self.se is None:
            return None
        if self.se > 0:
            return self.difference / self.se
        return 0.0 if self.difference == 0 else math.copysign(math.inf, self.difference)

    @property
    def p(self) -> float | None:
        """Two-sided p-value of "no difference"."""
        return None if self.t is None else two_sided_p(self.t, self.df)

    @property
    def significant(self) -> bool:
        return self.t is not None and abs(self.t) > self.critical

    @property
    def significantly_worse(self) -> bool:
        if self.t is None:
            return False
        worse = self.t > 0 if comparable()[self.metric].worse == "higher" else self.t < 0
        return self.significant and worse


def _by_id(rows: list[dict[str, Any]], path: str) -> dict[tuple[str, Any], dict[str, Any]]:
    """Rows by id; an id twice would pair with whichever came last, so it is refused."""
    by_id: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        key = row_key(row)
        if key in by_id:
            raise UsageError(f"{path}: the id {row['id']!r} appears more than once; compare pairs rows by id, so "
                             "each file needs unique ids (one checkpoint's rows per file)")  # fmt: skip
        by_id[key] = row
    return by_id


def _number(row: dict[str, Any], key: str, path: str) -> float:
    value = row.get(key)
    declared = comparable().get(key)
    if isinstance(value, bool) and declared is not None and declared.kind is bool:  # `correct`: 1 right, 0 wrong
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "nothing" if value is None else repr(value)
        raise UsageError(f"{path}: row id {row.get('id')!r} has {shown} for '{key}', not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{path}: row id {row.get('id')!r} has {value} for '{key}'; compare needs finite numbers")
    return float(value)


def compare_files(base_path: str, new_path: str, metric: str | None) -> Comparison:
    base, new = read_results(base_path), read_results(new_path)
    if not base or not new:
        raise UsageError("both files need at least one row")
    spec = spec_of_columns(set(base[0]))
    if metric is None:  # a partial file (a few columns) still says which kind it is by its metric
        defaults = [spec.compare_metric] if spec else [s.compare_metric for s in SPECS.values()]
        metric = next((name for name in defaults if name in base[0]), defaults[0])
    metrics = comparable()
    if metric not in metrics:
        raise UsageError(f"--metric {metric!r}: choose one of {', '.join(sorted(metrics))}")
    base_by_id, new_by_id = _by_id(base, base_path), _by_id(new, new_path)
    shared = [key for key in base_by_id if key in new_by_id]
    if not shared:
        raise UsageError(f"{base_path} and {new_path} share no id")
    before = [_number(base_by_id[key], metric, base_path) for key in shared]
    after = [_number(new_by_id[key], metric, new_path) for key in shared]
    differences = [b - a for a, b in zip(before, after, strict=True)]
    se: float | None
    if len(differences) > 1:
        se = statistics.stdev(differences) / math.sqrt(len(differences))
        df = float(len(differences) - 1)
    else:  # one record: only its Monte Carlo errors say how far apart the runs may fall
        key = shared[0]
        errors = [_row_se(rows[key], metric, path) for rows, path in ((base_by_id, base_path), (new_by_id, new_path))]
        se = None if None in errors else math.hypot(*(e for e in errors if e is not None))
        df = math.inf
    return Comparison(
        metric=metric,
        paired=len(shared),
        only_base=len(base_by_id) - len(shared),
        only_new=len(new_by_id) - len(shared),
        mean_base=statistics.fmean(before),
        mean_new=statistics.fmean(after),
        difference=statistics.fmean(differences),
        se=se,
        df=df,
    )


def _row_se(row: dict[str, Any], metric: str, path: str) -> float | None:
    """A row's own Monte Carlo standard error of `metric` (None where the row has none)."""
    field = comparable()[metric]
    if field.se and field.se in row:
        return _number(row, field.se, path)
    if "nll_se" not in row or "tokens" not in row:
        return None
    per_token = _number(row, "nll_se", path) / _number(row, "tokens", path)
    derived = {"nll_per_token": per_token, "bits_per_token": per_token / LN2}
    if metric == "ppl":  # delta method: d exp(x) = exp(x) dx
        derived["ppl"] = _number(row, "ppl", path) * per_token
    return derived.get(metric)
