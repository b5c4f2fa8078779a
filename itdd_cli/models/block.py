"""Block diffusion: attention is bidirectional inside a block and causal across blocks.

Blocks tile the whole framed sequence from position 0 (BOS and prompt included), as in the
families' own training and sampling code, so the prompt boundary need not be a block boundary.
The runner sends one row per block: the clean earlier blocks followed by the block being
scored (later blocks absent). The adapter builds the block-causal 4-D mask itself, so the
engine only ever hands over 2-D padding masks.

`concatenated_layout` builds the other layout the families train with, [noisy ‖ clean] with
shared position ids, in which one row carries a draw for every block at once; bench/block_layout.py
compares the two.
"""

from __future__ import annotations

from typing import Any

import torch

from itdd_cli.errors import ModelError, UsageError


def block_ids(length: int, block_size: int, device: torch.device | None = None) -> torch.Tensor:
    """The block of each position 0..length−1: (T,)."""
    return torch.arange(length, device=device) // block_size


def additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean 'may attend' mask as the additive 0 / −inf form that every attention kernel reads."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


def block_causal_mask(attention_mask: torch.Tensor, block_size: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, T) additive mask: query i sees real key j iff block(j) ≤ block(i)."""
    width = attention_mask.shape[1]
    blocks = block_ids(width, block_size, attention_mask.device)
    allowed = blocks[None, :] <= blocks[:, None]  # (T, T)
    allowed = allowed[None] & attention_mask.bool()[:, None, :]  # keys that are padding are never seen
    return additive(allowed[:, None], dtype)


def concatenated_layout(length: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask (2T, 2T) bool and position ids (2T,) of the [noisy ‖ clean] layout.

    Noisy block b sees itself and the clean blocks before b; the clean half is block-causal;
    both halves take positions 0..T−1.
    """
    blocks = block_ids(length, block_size)
    same = blocks[:, None] == blocks[None, :]
    earlier = blocks[None, :] < blocks[:, None]
    causal = blocks[None, :] <= blocks[:, None]
    top = torch.cat([same, earlier], dim=1)  # noisy queries
    bottom = torch.cat([torch.zeros_like(same), causal], dim=1)  # clean queries never see the noisy half
    positions = torch.arange(length).repeat(2)
    return torch.cat([top, bottom], dim=0), positions


def resolve_block_size(config: dict[str, Any], override: int | None, default: int | None, family: str) -> int:
    """--block-size, else config.json's `block_size`, else the family's published default."""
    if override is not None:
        if override < 1:
            raise UsageError(f"--block-size {override}: expected a positive integer")
        return override
    value = config.get("block_size", default)
    if not isinstance(value, int) or value < 1:
        raise ModelError(f"config.json gives no usable block_size for this {family} checkpoint; pass --block-size")
    return value
