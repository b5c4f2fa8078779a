"""The one sampler: stratified uniforms `u` and per-position keys `κ`, seeded per record.

Draws are grouped in strata of width 2/n holding two independent uniforms each (the last
stratum holds three when n is odd). That keeps almost all of the variance reduction of the
systematic grid u_j = (u₀ + j)/n, while the spread inside each stratum gives an unbiased
standard error; a single shared u₀ would leave the error bar with nothing to stand on.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Tags appended to a record's token ids to derive independent streams from one seed: the
# control variate's pilot must not share randomness with the main draws it corrects, and
# round r of --target-se has its own noise whatever the round another record stopped at.
PILOT_STREAM: tuple[list[int], ...] = ([-1],)


def round_stream(round_index: int) -> tuple[list[int], ...]:
    """Extra sequences for `record_generator`; none in round 0, whose draws a plain run makes."""
    return () if round_index == 0 else ([-2, round_index],)


def record_generator(seed: int, *token_sequences: Sequence[int]) -> torch.Generator:
    """A CPU generator that depends only on `seed` and the token ids, so a record's draws are
    the same whatever the batch size, input order, device or resume point."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(int(seed).to_bytes(16, "little", signed=True))
    for tokens in token_sequences:
        digest.update(len(tokens).to_bytes(8, "little"))
        digest.update(array("q", tokens).tobytes())
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
    return generator


@dataclass(frozen=True)
class Noise:
    """Everything random about n draws. `strata[j]` names the stratum of draw j."""

    u: torch.Tensor  # (N,) float64 in (0, 1)
    keys: torch.Tensor  # (N, K) float64
    strata: torch.Tensor  # (N,) int64


def stratum_bounds(samples: int) -> torch.Tensor:
    """Index of the first draw of each stratum, plus `samples` at the end: (H + 1,)."""
    if samples < 2:
        raise ValueError("at least 2 draws are needed for a standard error")
    starts = list(range(0, samples - 1, 2))  # with n odd, the last stratum holds three draws
    return torch.tensor([*starts, samples], dtype=torch.int64)


def draw_noise(samples: int, key_count: int, generator: torch.Generator) -> Noise:
    bounds = stratum_bounds(samples)
    sizes = bounds[1:] - bounds[:-1]
    strata = torch.repeat_interleave(torch.arange(len(sizes)), sizes)  # (N,)
    jitter = torch.rand(samples, generator=generator, dtype=torch.float64)
    start = bounds[strata].to(torch.float64) / samples
    width = sizes[strata].to(torch.float64) / samples
    u = (start + width * jitter).clamp_min(torch.finfo(torch.float64).tiny)  # (N,)
    keys = torch.rand(samples, key_count, generator=generator, dtype=torch.float64)  # (N, K)
    return Noise(u=u, keys=keys, strata=strata)


def pilot_keys(levels: int, key_count: int, generator: torch.Generator) -> torch.Tensor:
    """One fresh permutation (as keys; coupled sides take columns through `coupling`) per pilot rate: (R, K)."""
    return torch.rand(levels, key_count, generator=generator, dtype=torch.float64)
