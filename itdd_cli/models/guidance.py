"""Classifier-free guidance inside the likelihood (LLaDA's benchmark protocol, `--cfg S`).

A guided batch holds each conditional row and, after all of them, its unconditional twin (the
same draw's masks, every position before the scored text masked too): [conditional; unconditional].
Scored positions are taken row-major, so the first half of the scored logits are the conditional
ones and the second half their twins in the same order. The logits become
uncond + (S + 1)·(cond − uncond) before the log-softmax. The result is a guided score, not a
log-probability: it need not normalise over texts.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def combined(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + (S + 1)(cond − uncond) in float32; where both agree (a column both set to −inf,
    such as MDLM's mask column) the value itself, never inf − inf."""
    cond, uncond = cond.float(), uncond.float()
    return torch.where(cond == uncond, cond, uncond + (scale + 1) * (cond - uncond))


def guided_log_softmax(logits: torch.Tensor, targets: torch.Tensor, scale: float, chunk: int) -> torch.Tensor:
    """log softmax(guided logits)[target] for the conditional half of `logits` (2P, V): (P,) float32.

    `targets` (2P,) holds each target twice (the halves score the same positions). Normalised
    over column chunks of width `chunk`, so no (P, V) float32 matrix exists at once.
    """
    half = logits.shape[0] // 2
    if logits.shape[0] != 2 * half or not torch.equal(targets[:half].cpu(), targets[half:].cpu()):
        raise AssertionError("a guided batch holds [conditional; unconditional] rows scoring the same positions")
    cond, uncond = logits[:half], logits[half:]
    wanted = targets[:half].to(logits.device, non_blocking=True)[:, None]  # (P, 1)

    def parts() -> Iterator[torch.Tensor]:
        return (combined(c, u, scale) for c, u in zip(cond.split(chunk, -1), uncond.split(chunk, -1), strict=True))

    top = torch.stack([part.amax(dim=-1) for part in parts()], dim=-1).amax(dim=-1, keepdim=True)  # (P, 1)
    total = sum(torch.exp(part - top).sum(dim=-1) for part in parts())  # (P,)
    target = combined(cond.gather(1, wanted), uncond.gather(1, wanted), scale)  # (P, 1)
    return (target - top).squeeze(1) - torch.log(total)  # type: ignore[arg-type]
