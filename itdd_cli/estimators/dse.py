"""The time-integral score-entropy estimator (I-MDSE) of SEDD models: pure tensor maths, no I/O.

    −log p(x) ≤ E_{t ~ U(ε, 1)} [ σ'(t) · Σ_i DSE_i(s(x_t, σ(t)), x_t, x) ] + prior

x_t is x corrupted by the graph's forward process at total noise σ(t) (absorbing: a position
becomes the mask with chance 1 − e^{−σ}; uniform: it is replaced by a uniform token with that
chance), s the model's log-scores, DSE the denoising score entropy as SEDD's training loss
computes it (docs/formats.md, "SEDD"). One draw's value is exactly that loss for one t, so
the mean over draws is (1/(1 − ε)) ∫_ε^1; the piece [0, ε) is not estimated (ε = 1e-3, as
published). The prior term at t = 1 is a KL between the forward chain's end and the
generative model's start, computed exactly (`uniform_prior`, `absorbing_prior`).

Shape letters: N draws, T positions of a row, P scored positions, V score columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SAMPLING_EPS = 1e-3  # t ~ U(ε, 1), SEDD's `sampling_eps`
LOGLINEAR_EPS = 1e-3  # σ(1) = −log ε: SEDD builds its log-linear schedule with this default, whatever config says


@dataclass(frozen=True)
class Schedule:
    """SEDD's noise schedules: total noise σ(t) and its rate σ'(t)."""

    kind: str  # "loglinear" | "geometric"
    sigma_min: float = 1e-4  # geometric only
    sigma_max: float = 20.0  # geometric only
    eps: float = LOGLINEAR_EPS  # loglinear only

    def total(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "loglinear":
            return -torch.log1p(-(1 - self.eps) * t)
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "loglinear":
            return (1 - self.eps) / (1 - (1 - self.eps) * t)
        return self.sigma_min ** (1 - t) * self.sigma_max**t * (math.log(self.sigma_max) - math.log(self.sigma_min))

    @property
    def top(self) -> float:
        """σ(1), where the forward chain ends."""
        return float(self.total(torch.tensor(1.0, dtype=torch.float64)))


def times(u: torch.Tensor) -> torch.Tensor:
    """t from uniforms u in (0, 1), as SEDD's loss draws it: ε + (1 − ε)u."""
    return SAMPLING_EPS + (1 - SAMPLING_EPS) * u


def expm1_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """e^σ − 1, computed as SEDD computes it (expm1 below 0.5)."""
    return torch.where(sigma < 0.5, torch.expm1(sigma), torch.exp(sigma) - 1)


def perturb(
    ids: torch.Tensor,  # (T,) the clean row
    where: torch.Tensor,  # (T,) bool: the positions the forward process may change (the scored ones)
    sigma: torch.Tensor,  # (N,)
    uniforms: torch.Tensor,  # (N, T) in [0, 1): a position moves when its uniform is below 1 − e^{−σ}
    replacement: torch.Tensor | int,  # absorbing: the mask id; uniform: (N, T) uniform token ids
) -> torch.Tensor:
    """(N, T) rows corrupted by the graph's forward process at σ."""
    move = (uniforms < (1 - torch.exp(-sigma))[:, None].to(uniforms.dtype)) & where[None]
    new = torch.as_tensor(replacement, device=ids.device).expand(move.shape)
    return torch.where(move, new, ids[None].expand(move.shape))


def absorbing_entropy(score: torch.Tensor, sigma: torch.Tensor, x: torch.Tensor, x0: torch.Tensor,
                      mask_id: int) -> torch.Tensor:  # fmt: skip
    """DSE per position (P,) of the absorbing graph: log-scores (P, V) with the mask last, σ (P,),
    current tokens x and clean tokens x0 (P,). Only masked positions carry entropy."""
    masked = x == mask_id
    ratio = 1 / expm1_sigma(sigma)
    positive = score[:, :mask_id].exp().sum(dim=-1) + score[:, mask_id + 1 :].exp().sum(dim=-1)
    negative = ratio * score.gather(-1, x0[:, None]).squeeze(-1)
    constant = ratio * (ratio.log() - 1)
    return torch.where(masked, positive - negative + constant, torch.zeros_like(positive))


def uniform_entropy(score: torch.Tensor, sigma: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """DSE per position (P,) of the uniform graph (every token jumps to every other at rate 1/V)."""
    dim = score.shape[-1]
    em1 = expm1_sigma(sigma)
    ratio = 1 - dim / (em1 + dim)
    stayed = x == x0
    at_x = score.gather(-1, x[:, None]).squeeze(-1)
    negative = score.mean(dim=-1) - at_x / dim
    negative = torch.where(stayed, ratio * negative, score.gather(-1, x0[:, None]).squeeze(-1) / em1 + negative)
    constant = torch.where(
        stayed, (dim - 1) / dim * ratio * (ratio.log() - 1), ((-ratio.log() - 1) / ratio - (dim - 2)) / dim
    )
    exp = score.exp()
    positive = exp.mean(dim=-1) - exp.gather(-1, x[:, None]).squeeze(-1) / dim
    return positive - negative + constant


def uniform_prior(sigma_top: float, vocab: int, positions: int) -> float:
    """KL(forward chain at σ(1) from x ‖ uniform tokens), summed over `positions`: exact, no draws."""
    moved = -math.expm1(-sigma_top)  # chance a position was resampled
    other = moved / vocab  # each other token's chance
    stay = 1 - (vocab - 1) * other
    per_position = stay * math.log(stay * vocab) + (vocab - 1) * other * math.log(other * vocab) if other > 0 else 0.0
    return positions * per_position


def absorbing_prior(sigma_top: float, logprobs: torch.Tensor) -> float:
    """KL(forward chain at σ(1) from x ‖ the model's start), summed over the scored positions.

    The forward chain leaves each position unmasked with chance δ = e^{−σ(1)}, so its end puts no
    mass on the all-mask state alone and the KL to SEDD's all-mask start is infinite. The start
    taken instead masks each position with chance 1 − δ and otherwise draws its token from the
    model's own conditional π_i given every scored position masked at σ(1); the KL is then
    Σ_i −δ · log π_i(x_i) exactly. `logprobs` (P,) are those log π_i(x_i)."""
    return -math.exp(-sigma_top) * float(logprobs.double().sum())


def sigma_of_mask_rate(rate: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The σ whose masking chance 1 − e^{−σ} equals `rate`, at most σ(1): the time input under
    which the absorbing score implies the time-free estimators' conditional."""
    return torch.clamp(-torch.log1p(-rate.clamp(max=1.0)), max=schedule.top)
