"""`itdd compare`: pair two result files by id and test whether NEW differs from BASE.

Per record d_i = NEW_i − BASE_i; the mean difference has the paired standard error sd(d)/√n,
which contains both runs' Monte Carlo noise and the spread between records (with one record:
the two rows' own standard errors). Significance is two-sided at 5 % with Student's t.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.results import NotResults, parse_results, row_key
from itdd_cli.rows import SPECS, comparable, spec_of_columns

Z_975 = 1.959963984540054


@dataclass(frozen=True)
class Comparison:
    metric: str
    paired: int
    only_base: int
    only_new: int
    mean_base: float
    mean_new: float
    difference: float  # mean of NEW − BASE
    se: float
    critical: float  # |t| above this is significant at 5 %

    @property
    def t(self) -> float:
        if self.se > 0:
            return self.difference / self.se
        return 0.0 if self.difference == 0 else math.copysign(math.inf, self.difference)

    @property
    def significant(self) -> bool:
        return abs(self.t) > self.critical

    @property
    def significantly_worse(self) -> bool:
        worse = self.t > 0 if comparable()[self.metric].worse == "higher" else self.t < 0
        return self.significant and worse


def t_critical(df: int) -> float:
    """Two-sided 5 % quantile of Student's t (Cornish-Fisher expansion; exact for df ≤ 2)."""
    if df <= 2:
        return {1: 12.706204736, 2: 4.302652730}.get(df, math.inf)
    z = Z_975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))  # fmt: skip


def _read(path: str) -> list[dict[str, Any]]:
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"cannot read {path}: it is a directory; name a result file (JSONL or CSV)")
    if not file.exists():
        raise UsageError(f"cannot read {path}: no such file")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not an itdd result file: not UTF-8 text (byte {error.start + 1})") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    try:
        return parse_results(text, path.lower().endswith(".csv"))
    except NotResults as error:
        raise UsageError(f"{path} is not an itdd result file: {error}") from None


def _number(row: dict[str, Any], key: str, path: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "nothing" if value is None else repr(value)
        raise UsageError(f"{path}: row id {row.get('id')!r} has {shown} for '{key}', not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{path}: row id {row.get('id')!r} has {value} for '{key}'; compare needs finite numbers")
    return float(value)


def compare_files(base_path: str, new_path: str, metric: str | None) -> Comparison:
    base, new = _read(base_path), _read(new_path)
    if not base or not new:
        raise UsageError("both files need at least one row")
    spec = spec_of_columns(set(base[0]))
    if metric is None:  # a partial file (a few columns) still says which kind it is by its metric
        defaults = [spec.compare_metric] if spec else [s.compare_metric for s in SPECS.values()]
        metric = next((name for name in defaults if name in base[0]), defaults[0])
    metrics = comparable()
    if metric not in metrics:
        raise UsageError(f"--metric {metric!r}: choose one of {', '.join(sorted(metrics))}")
    base_by_id = {row_key(row): row for row in base}
    new_by_id = {row_key(row): row for row in new}
    shared = [key for key in base_by_id if key in new_by_id]
    if not shared:
        raise UsageError(f"{base_path} and {new_path} share no id")
    before = [_number(base_by_id[key], metric, base_path) for key in shared]
    after = [_number(new_by_id[key], metric, new_path) for key in shared]
    differences = [b - a for a, b in zip(before, after, strict=True)]
    if len(differences) > 1:
        se = statistics.stdev(differences) / math.sqrt(len(differences))
        critical = t_critical(len(differences) - 1)
    else:  # one record: only its Monte Carlo errors say how far apart the runs may fall
        se_key = metrics[metric].se
        key = shared[0]
        se = math.hypot(*(_number(rows[key], se_key, path) for rows, path in
                          ((base_by_id, base_path), (new_by_id, new_path)))) if se_key else math.nan  # fmt: skip
        critical = Z_975
    return Comparison(
        metric=metric,
        paired=len(shared),
        only_base=len(base_by_id) - len(shared),
        only_new=len(new_by_id) - len(shared),
        mean_base=statistics.fmean(before),
        mean_new=statistics.fmean(after),
        difference=statistics.fmean(differences),
        se=se,
        critical=critical,
    )
