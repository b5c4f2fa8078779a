"""Several checkpoints in one run: expanding `-m DIR` into its `checkpoint-*` folders, the training
step in a checkpoint's name, and the paired corpus tallies of a study. No torch."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

_STEP = re.compile(r"(?:checkpoint|step|ckpt|iter)[-_]?(\d+)", re.IGNORECASE)
_TRAILING = re.compile(r"(\d+)$")


def step_of(name: str) -> int | None:
    """The training step a checkpoint's name carries (`checkpoint-500`, `step_2000`, `run/ckpt-3`)."""
    base = Path(name.rstrip("/")).name
    match = _STEP.search(base) or _TRAILING.search(base)
    return int(match.group(1)) if match else None


def expand(models: list[str]) -> list[str]:
    """Each -m as given, except a directory without config.json holding `checkpoint-*` folders,
    which stands for those folders in step order."""
    expanded: list[str] = []
    for model in models:
        path = Path(model)
        folders = (
            [d for d in path.iterdir() if d.is_dir() and d.name.startswith("checkpoint-")]
            if path.is_dir() and not (path / "config.json").exists()
            else []
        )
        if folders:
            folders.sort(key=lambda d: (step_of(d.name) is None, step_of(d.name) or 0, d.name))
            expanded += [str(d) for d in folders]
        else:
            expanded.append(model)
    return expanded


@dataclass
class RatioTally:
    """Σx / Σb over records with the ratio estimator's standard error across records,

        SE = √(n/(n−1) · Σ (x_i − R·b_i)²) / Σb,   R = Σx / Σb,

    kept as running sums so memory stays flat in the number of records."""

    n: int = 0
    x: float = 0.0
    b: float = 0.0
    xx: float = 0.0
    xb: float = 0.0
    bb: float = 0.0

    def add(self, x: float, b: float) -> None:
        self.n += 1
        self.x += x
        self.b += b
        self.xx += x * x
        self.xb += x * b
        self.bb += b * b

    @property
    def value(self) -> float:
        return self.x / self.b if self.b else math.nan

    @property
    def se(self) -> float:
        if self.n < 2 or not self.b:
            return math.nan
        ratio = self.value
        residual = max(self.xx - 2 * ratio * self.xb + ratio * ratio * self.bb, 0.0)
        return math.sqrt(self.n / (self.n - 1) * residual) / self.b
