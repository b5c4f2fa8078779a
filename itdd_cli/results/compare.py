"""`itdd compare`: pair two result files by id and test whether NEW differs from BASE.

Per record d_i = NEW_i − BASE_i; the mean difference has the paired standard error sd(d)/√n,
which contains both runs' Monte Carlo noise and the spread between records. Significance is
two-sided at 5 % with Student's t (exact quantile and p-value, `tdist`). Where the pairs give no
spread (one paired record, or every pair differing by the same amount, up to float rounding) the
rows' own standard errors give the SE (per-token metrics: `nll_se / tokens`) and the normal
distribution the test; a metric whose rows carry no SE then has no verdict, and rows whose SEs are
all 0 (an exact estimator) make the difference exact: judged by its sign, never an infinite t.
A row's SE of 0 counts only where the row enumerated every masked set (`samples` = 2^L − 1);
older files hold Monte Carlo rows with an SE of 0 on a wrong number, and those get no verdict.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from itdd_cli.core.settings import LN2
from itdd_cli.errors import UsageError
from itdd_cli.estimators.tdist import critical, two_sided_p
from itdd_cli.results.reader import read_results, row_key
from itdd_cli.results.rows import SPECS, comparable, spec_of_columns


@dataclass(frozen=True)
class Comparison:
    metric: str
    paired: int
    only_base: int  # rows whose id the other file lacks
    only_new: int
    mean_base: float
    mean_new: float
    difference: float  # mean of NEW − BASE
    se: float | None  # None: nothing says how far apart the runs may fall (no spread, no SE in the rows)
    df: float  # degrees of freedom of the test (inf: the normal, from the rows' own SEs)
    uniform: bool = False  # several pairs, every one differing by the same amount: no spread to test with
    only_base_ids: tuple[str | int, ...] = ()  # those ids as written, in file order
    only_new_ids: tuple[str | int, ...] = ()

    @property
    def critical(self) -> float:
        """|t| above this is significant at 5 %."""
        return critical(self.df)

    @property
    def exact(self) -> bool:
        """No spread and rows without Monte Carlo error: the difference is what it is, with no test."""
        return self.se == 0 and self.difference != 0

    @property
    def t(self) -> float | None:
        if self.se is None or self.exact:
            return None
        return self.difference / self.se if self.se > 0 else 0.0

    @property
    def p(self) -> float | None:
        """Two-sided p-value of "no difference"."""
        return None if self.t is None else two_sided_p(self.t, self.df)

    @property
    def significant(self) -> bool:
        return self.exact or (self.t is not None and abs(self.t) > self.critical)

    @property
    def significantly_worse(self) -> bool:
        worse = self.difference > 0 if comparable()[self.metric].worse == "higher" else self.difference < 0
        return self.significant and worse

    def unpaired_fields(self) -> list[str]:
        """The report's words on rows found in only one file: each side's count and its ids, named; one
        field per id, so a narrow terminal breaks the line between ids, never inside one."""
        both = ((self.only_base, "base", self.only_base_ids), (self.only_new, "new", self.only_new_ids))
        sides = [(count, side, ids) for count, side, ids in both if count]
        if not any(ids for *_, ids in sides):
            return [f"({', '.join(f'{count} only in {side}' for count, side, _ in sides)})"] if sides else []
        fields: list[str] = []
        for count, side, ids in sides:
            words = [f"{count} only in {side}" + (":" if ids else ""), *_named(ids)]
            fields += [*words[:-1], words[-1] + ";"]
        fields[0], fields[-1] = "(" + fields[0], fields[-1][:-1] + ")"
        return fields


NAMED_IDS = 5  # unpaired ids named in the report; the rest are counted


def _named(ids: tuple[str | int, ...]) -> list[str]:
    """Ids as written (repr: the number 1 and the string '1' differ), the first few, then a count."""
    named = [repr(value) for value in ids[:NAMED_IDS]]
    rest = [f"and {len(ids) - NAMED_IDS} more"] if len(ids) > NAMED_IDS else []
    return [*(name + "," for name in named[:-1]), *named[-1:], *rest]


def _no_spread(differences: list[float], values: list[float]) -> bool:
    """Every pair differs by the same amount, up to the rounding of the numbers subtracted."""
    if len(differences) < 2:
        return True
    rounding = 16 * sys.float_info.epsilon * max(abs(value) for value in values)
    return statistics.stdev(differences) <= rounding


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
    guided = ["guided_nll" in rows[0] or "guided_log_ratio" in rows[0] or "guided_logliks" in rows[0]
              for rows in (base, new)]  # fmt: skip
    if metric is None and guided[0] != guided[1]:
        which = [f"{path} is {'guided (--cfg)' if is_guided else 'not guided'}"
                 for path, is_guided in ((base_path, guided[0]), (new_path, guided[1]))]  # fmt: skip
        raise UsageError(f"{which[0]} and {which[1]}: a guided score is not a log-likelihood, so the two do not "
                         "compare; score both with the same --cfg")  # fmt: skip
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
    no_spread = _no_spread(differences, before + after)
    if not no_spread:
        se: float | None = statistics.stdev(differences) / math.sqrt(len(differences))
        df = float(len(differences) - 1)
    else:  # only the rows' Monte Carlo errors say how far apart the runs may fall
        se = _rows_se([(base_by_id[key], new_by_id[key]) for key in shared], metric, base_path, new_path)
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
        uniform=no_spread and len(differences) > 1,
        only_base_ids=tuple(base_by_id[key]["id"] for key in base_by_id if key not in new_by_id),
        only_new_ids=tuple(new_by_id[key]["id"] for key in new_by_id if key not in base_by_id),
    )


def _rows_se(pairs: list[tuple[dict[str, Any], dict[str, Any]]], metric: str, base: str, new: str) -> float | None:
    """The SE of the mean difference from the rows' own errors (independent across rows and runs)."""
    variance = 0.0
    for pair in pairs:
        for row, path in zip(pair, (base, new), strict=True):
            error = _row_se(row, metric, path)
            if error is None:
                return None
            variance += error**2
    return math.sqrt(variance) / len(pairs)


def _row_se(row: dict[str, Any], metric: str, path: str) -> float | None:
    """A row's own Monte Carlo standard error of `metric` (None where the row has none)."""
    field = comparable()[metric]
    if field.kind is bool:  # right or wrong: without error only where every choice's log-likelihood is exact
        errors = row.get("logliks_se")
        return 0.0 if isinstance(errors, list) and errors and not any(errors) and _enumerated(row) else None
    if field.se and field.se in row:
        error = _number(row, field.se, path)
        return None if error == 0 and not _enumerated(row) else error
    if "nll_se" not in row or "tokens" not in row:
        return None
    if _number(row, "nll_se", path) == 0 and not _enumerated(row):
        return None
    per_token = _number(row, "nll_se", path) / _number(row, "tokens", path)
    derived = {"nll_per_token": per_token, "bits_per_token": per_token / LN2}
    if metric == "ppl":  # delta method: d exp(x) = exp(x) dx
        derived["ppl"] = _number(row, "ppl", path) * per_token
    return derived.get(metric)


def _enumerated(row: dict[str, Any]) -> bool:
    """Whether a row with an SE of 0 scored every masked set: an exact row (or a Monte Carlo
    estimator's record small enough to enumerate) spends 2^L − 1 passes on its longest sequence of
    L tokens. A row without `samples` or token counts (a partial file) cannot say: trusted."""
    samples = row.get("samples")
    counts = [row.get(key) for key in ("tokens", "tokens_chosen", "tokens_rejected") if key in row]
    lengths = [n for c in counts for n in (c if isinstance(c, list) else [c])]
    known = [n for n in lengths if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    if not isinstance(samples, int) or isinstance(samples, bool) or not known or len(known) < len(lengths):
        return True
    longest = max(known)
    return longest < 64 and samples == 2**longest - 1  # beyond 63 tokens no run enumerates
