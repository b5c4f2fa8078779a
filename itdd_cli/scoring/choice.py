"""k-way multiple choice: log p(choice_i | prompt) for every choice of a record, and the decision.

All k choices of a record share their draws (one u per draw, keys through a token alignment with
the longest choice, as `ratio` does), so the margin between two choices is the mean of paired per-draw
differences and its standard error sees the coupling. This module turns a prepared record's
per-draw losses into the choice row's values (rows.py declares the row); it knows nothing about
files, the CLI or lm-eval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from itdd_cli.estimators import Estimate, summarise


@dataclass(frozen=True)
class ChoiceScores:
    """Estimates for the k choices of one record; `values[i]` are choice i's per-draw NLL values."""

    nll: list[Estimate]
    values: list[torch.Tensor]  # k × (N_i,), paired by draw index when coupled; empty when `paired` is set
    strata: list[torch.Tensor | None]  # k × (N_i,) the SE's groups (`Tally.all_groups`); None for `exact`
    contenders: list[bool] | None = None  # --until-decided: the choices no other beat (None: all)
    scale: bool = True  # `summarise`'s small-sample scaling (off for the chain rule's whole orders)
    paired: Callable[[int, int], Estimate] | None = None  # (a, b) → NLL_b − NLL_a; set: margins come from it

    @property
    def logliks(self) -> list[float]:
        return [-estimate.value for estimate in self.nll]

    def pred(self) -> int:
        """Index of the highest log-likelihood among the contenders (the first on a tie, as numpy's argmax).

        Under --until-decided a choice put out of contention stopped drawing; its estimate rests on
        fewer draws and it is never the pick."""
        return self._best(self.logliks)

    def pred_by(self, lengths: list[int]) -> int:
        """Index of the highest log-likelihood per unit of `lengths` (bytes: lm-eval's normalisation),
        among the contenders as `pred`."""
        return self._best([value / max(length, 1) for value, length in zip(self.logliks, lengths, strict=True)])

    def _best(self, values: list[float]) -> int:
        inside = [i for i in range(len(values)) if self.contenders is None or self.contenders[i]]
        return max(inside, key=lambda i: (values[i], -i))

    def margin(self) -> Estimate:
        """log-likelihood of the best choice minus that of the runner-up, from paired draws."""
        best = self.pred()
        second = max((i for i in range(len(self.nll)) if i != best), key=lambda i: self.logliks[i])
        if self.paired is not None:  # a block model's choices: Σ over blocks of paired differences
            return self.paired(best, second)
        shorter = min(best, second, key=lambda i: len(self.values[i]))
        strata = self.strata[shorter]
        if strata is None:
            return Estimate(self.nll[second].value - self.nll[best].value, 0.0)
        shared = len(strata)  # a choice put out of contention drew the first rounds only: pair those
        return summarise(self.values[second][:shared] - self.values[best][:shared], strata, scale=self.scale)


def choice_values(record_id: str | int, label: int | None, scores: ChoiceScores, texts: tuple[str, ...],
               tokens: list[int], samples: int) -> dict[str, Any]:  # fmt: skip
    """The values of an `itdd choice` row (`correct*` are None when the record has no label)."""
    byte_counts = [len(text.encode("utf-8")) for text in texts]
    pred, pred_norm = scores.pred(), scores.pred_by(byte_counts)
    margin = scores.margin()
    return {
        "id": record_id,
        "pred": pred,
        "pred_norm": pred_norm,
        "label": label,
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
