"""k-way multiple choice: log p(choice_i | prompt) for every choice of a record, and the decision.

All k choices of a record share their draws (one u and one key vector per draw, keys by rank,
as `ratio` does), so the margin between two choices is the mean of paired per-draw
differences and its standard error sees the coupling. This module turns a prepared record's
per-draw losses into the choice row; it knows nothing about files, the CLI or lm-eval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from itdd_cli.estimators import Estimate, summarise

UNDECIDED_SE = 2.0  # a decision whose margin is within this many SE could flip at this budget


@dataclass(frozen=True)
class ChoiceScores:
    """Estimates for the k choices of one record; `values[i]` are choice i's per-draw NLL values."""

    nll: list[Estimate]
    values: list[torch.Tensor]  # k × (N,), paired by draw index when coupled
    strata: torch.Tensor | None  # (N,); None for `exact`

    @property
    def logliks(self) -> list[float]:
        return [-estimate.value for estimate in self.nll]

    def pred(self) -> int:
        """Index of the highest log-likelihood (the first on a tie, as numpy's argmax)."""
        logliks = self.logliks
        return logliks.index(max(logliks))

    def pred_by(self, lengths: list[int]) -> int:
        """Index of the highest log-likelihood per unit of `lengths` (bytes: lm-eval's normalisation)."""
        per_unit = [value / max(length, 1) for value, length in zip(self.logliks, lengths, strict=True)]
        return per_unit.index(max(per_unit))

    def margin(self) -> Estimate:
        """log-likelihood of the best choice minus that of the runner-up, from paired draws."""
        best = self.pred()
        second = max((i for i in range(len(self.nll)) if i != best), key=lambda i: self.logliks[i])
        if self.strata is None:
            return Estimate(self.nll[second].value - self.nll[best].value, 0.0)
        return summarise(self.values[second] - self.values[best], self.strata)


def choice_row(record_id: str | int, label: int | None, scores: ChoiceScores, texts: tuple[str, ...],
               tokens: list[int], samples: int) -> dict[str, Any]:  # fmt: skip
    """The output row of `itdd choice` (`correct*` are null when the record has no label)."""
    byte_counts = [len(text.encode("utf-8")) for text in texts]
    pred, pred_norm = scores.pred(), scores.pred_by(byte_counts)
    margin = scores.margin()
    return {
        "id": record_id,
        "pred": pred,
        "pred_norm": pred_norm,
        "logliks": scores.logliks,
        "logliks_se": [estimate.se for estimate in scores.nll],
        "margin": margin.value,
        "margin_se": margin.se,
        "tokens": tokens,
        "bytes": byte_counts,
        "correct": None if label is None else pred == label,
        "correct_norm": None if label is None else pred_norm == label,
        "samples": samples,
    }


@dataclass
class ChoiceTally:
    """Running accuracy of a choice run, over the records that carry a label."""

    labelled: int = 0
    correct: int = 0
    correct_norm: int = 0
    decided: int = 0
    records: int = 0

    def add(self, row: dict[str, Any]) -> None:
        self.records += 1
        self.decided += not undecided(row)
        if row.get("correct") is not None:
            self.labelled += 1
            self.correct += bool(row["correct"])
            self.correct_norm += bool(row["correct_norm"])

    def metrics(self) -> dict[str, float]:
        accuracy, accuracy_norm = self._share(self.correct), self._share(self.correct_norm)
        return {
            "labelled": float(self.labelled),
            "accuracy": accuracy,
            "accuracy_se": self._binomial_se(accuracy),
            "accuracy_norm": accuracy_norm,
            "accuracy_norm_se": self._binomial_se(accuracy_norm),
            "undecided": (self.records - self.decided) / self.records if self.records else math.nan,
        }

    def _share(self, count: int) -> float:
        return count / self.labelled if self.labelled else math.nan

    def _binomial_se(self, share: float) -> float:
        return math.sqrt(share * (1 - share) / self.labelled) if self.labelled else math.nan


def undecided(row: dict[str, Any]) -> bool:
    """The decision could flip at this budget: the margin is within UNDECIDED_SE of its SE."""
    return row["margin"] <= UNDECIDED_SE * row["margin_se"]
