"""A record's draws under `--estimator dse`: t, the corrupted rows, the model's scores, the values.

The score-entropy estimator reads a SEDD model's full score vectors on rows corrupted by the
graph (uniform tokens, not only masks), so it does not go through the engine, whose rows are
masked copies scored by `target_logprobs`. Draws are seeded by (seed, the side's token ids)
as the other estimators' are, and t is stratified the same way (`draw_noise`: strata of two
uniforms), so the SE is the stratified one. The maths is estimators/dse.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import torch

from itdd_cli.core.settings import Settings
from itdd_cli.core.windows import Long
from itdd_cli.errors import UsageError
from itdd_cli.estimators import Estimate, Estimator, draw_noise, record_generator, summarise, variance_groups
from itdd_cli.estimators.dse import (
    Schedule,
    absorbing_entropy,
    absorbing_prior,
    perturb,
    times,
    uniform_entropy,
    uniform_prior,
)
from itdd_cli.models.base import Framed

Item = TypeVar("Item")

SCORE_BUDGET = 2**25  # score entries (P × V, float32) a batch of rows may hold: 128 MiB
REPLACEMENT_STREAM = [-3]  # the uniform graph's replacement tokens: a stream apart from t and the move keys


class ScoreModel(Protocol):
    absorbing: bool
    schedule: Schedule
    vocab: int
    mask_id: int

    def scores_at(self, ids: torch.Tensor, sigma: torch.Tensor, where: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Corrupted:
    """One side's draws: the clean row, where it may change, and each draw's t, σ, σ' and corrupted row."""

    ids: torch.Tensor  # (T,) long
    where: torch.Tensor  # (T,) bool, the scored positions
    t: torch.Tensor  # (N,) float64
    sigma: torch.Tensor  # (N,) float64
    rate: torch.Tensor  # (N,) float64, σ'(t)
    rows: torch.Tensor  # (N, T) long
    strata: torch.Tensor  # (N,) int64


def corrupt(model: ScoreModel, framed: Framed, samples: int, seed: int) -> Corrupted:
    """`samples` stratified times and the graph's forward process at each, seeded by the side's ids."""
    ids = torch.tensor(framed.ids, dtype=torch.long)
    width = len(framed.ids)
    where = torch.zeros(width, dtype=torch.bool)
    where[framed.start : framed.start + framed.length] = True
    noise = draw_noise(samples, width, record_generator(seed, framed.ids, [framed.start]))
    t = times(noise.u)
    sigma = model.schedule.total(t)
    if model.absorbing:
        replacement: torch.Tensor | int = model.mask_id
    else:
        generator = record_generator(seed, framed.ids, [framed.start], REPLACEMENT_STREAM)
        replacement = torch.randint(model.vocab, (samples, width), generator=generator)
    rows = perturb(ids, where, sigma, noise.keys, replacement)
    return Corrupted(ids, where, t, sigma, model.schedule.rate(t), rows, noise.strata)


def dse_values(model: ScoreModel, ids: torch.Tensor, where: torch.Tensor, rows: torch.Tensor, sigma: torch.Tensor,
               rate: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """σ'(t) · Σ_scored DSE for each corrupted row (N, T) of the clean row `ids` (T,): (N,) float64."""
    per_batch = max(1, SCORE_BUDGET // max(1, int(where.sum()) * model.vocab))
    values = []
    for first in range(0, rows.shape[0], per_batch):
        part, part_sigma = rows[first : first + per_batch], sigma[first : first + per_batch]
        at = where[None].expand(part.shape)
        score = model.scores_at(part, part_sigma, at).double()  # (P, V) on the model's device; terms cancel: float64
        device = score.device
        per_position = part_sigma.double().repeat_interleave(int(where.sum())).to(device)
        x, x0 = part[at].to(device), ids[None].expand(part.shape)[at].to(device)
        if model.absorbing:
            entropy = absorbing_entropy(score, per_position, x, x0, model.mask_id)
        else:
            entropy = uniform_entropy(score, per_position, x, x0)
        values.append(rate[first : first + per_batch] * entropy.view(part.shape[0], -1).sum(dim=1).cpu())
    return torch.cat(values)


def prior_term(model: ScoreModel, framed: Framed) -> float:
    """The KL at t = 1 (estimators/dse.py): exact for the uniform graph; for the absorbing one, from
    one forward pass with every scored position masked."""
    top = model.schedule.top
    if not model.absorbing:
        return uniform_prior(top, model.vocab, framed.length)
    ids = torch.tensor(framed.ids, dtype=torch.long)
    where = torch.zeros(len(ids), dtype=torch.bool)
    where[framed.start : framed.start + framed.length] = True
    masked = torch.where(where, model.mask_id, ids)[None]
    score = model.scores_at(masked, torch.tensor([top], dtype=torch.float64), where[None]).cpu().double()
    tokens = torch.cat([score[:, : model.mask_id], score[:, model.mask_id + 1 :]], dim=1)  # the mask is no token
    logprobs = torch.log_softmax(tokens, dim=-1).gather(1, ids[where][:, None]).squeeze(1)
    return absorbing_prior(top, logprobs)


@dataclass
class ScoreEntropyDraws:
    """The sides of one record under `--estimator dse`, with the `RecordDraws` members the runner reads."""

    context: list[int]
    framed: list[Framed]
    settings: Settings
    results: list[Estimate] = field(default_factory=list)

    @property
    def passes(self) -> int:
        return self.settings.samples

    @property
    def forward_rows(self) -> int:
        return self.settings.samples * len(self.framed)

    def jobs(self) -> list:  # nothing for the engine
        return []

    def run(self, model: ScoreModel) -> None:
        self.results = []
        for framed in self.framed:
            draws = corrupt(model, framed, self.settings.samples, self.settings.seed)
            values = dse_values(model, draws.ids, draws.where, draws.rows, draws.sigma, draws.rate)
            estimate = summarise(values, variance_groups(draws.strata, Estimator.dse.strata_per_group))
            self.results.append(Estimate(estimate.value + prior_term(model, framed), estimate.se))

    def estimates(self) -> list[Estimate]:
        return self.results


def refuse_with_scores(command: str, settings: Settings) -> None:
    """What `--estimator dse` does not do yet, refused in one line before any record is read."""
    if command not in ("nll", "cond-nll"):
        raise UsageError(f"--estimator dse scores nll and cond-nll; {command} needs paired draws it does not make yet")
    refused = [("--target-se / --until-decided", settings.adaptive, "use a fixed -n"),
               ("--per-token", settings.per_token, "drop --per-token or use another estimator"),
               ("--long rolling", settings.long is Long.rolling, "score texts that fit its window")]  # fmt: skip
    for option, given, fix in refused:
        if given:
            raise UsageError(f"--estimator dse does not combine with {option}; {fix}")


def run_score_entropy(model: ScoreModel, items: Iterable[Item], draws_of: Callable[[Item], object]) -> Iterator[Item]:
    """Each prepared record with its draws scored, in input order."""
    for item in items:
        draws = draws_of(item)
        if isinstance(draws, ScoreEntropyDraws):
            draws.run(model)
        yield item
