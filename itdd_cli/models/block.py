"""Block diffusion: attention is bidirectional inside a block and causal across blocks.

Blocks tile the whole framed sequence from position 0 (BOS and prompt included), as in the
families' own training and sampling code, so the prompt boundary need not be a block boundary.
The runner sends one row per block: the clean earlier blocks followed by the block being
scored (later blocks absent). The adapter builds the block-causal 4-D mask itself, so the
engine only ever hands over 2-D padding masks.

`Layout.concatenated` is the other layout the families train with, [noisy ‖ clean] with shared
position ids: one row carries a draw for every block at once. Noisy block b sees itself and the
clean blocks before b; the clean half is block-causal. bench/block_layout.py compares the two.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import torch

from itdd_cli.errors import ModelError, UsageError


class Layout(StrEnum):
    per_block = "per-block"  # a row: clean blocks < b, then block b with its masks
    concatenated = "concatenated"  # a row: [noisy copy, every block masked ‖ clean copy], 2T tokens


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


def _halves(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per position of [noisy ‖ clean] rows: the position id, whether it is in the clean half, and
    the row's half length T (rows are right-padded, 2T real tokens each)."""
    half = attention_mask.sum(dim=1, keepdim=True) // 2  # (B, 1)
    columns = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None]  # (1, W)
    clean = columns >= half
    return torch.where(clean, columns - half, columns), clean, half


def concatenated_mask(attention_mask: torch.Tensor, block_size: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, W, W) additive mask of right-padded [noisy ‖ clean] rows (see `concatenated_layout`)."""
    positions, clean, _ = _halves(attention_mask)
    blocks = positions // block_size  # (B, W)
    query_block, key_block = blocks[:, :, None], blocks[:, None, :]
    query_clean, key_clean = clean[:, :, None], clean[:, None, :]
    noisy_sees = ~query_clean & ((~key_clean & (key_block == query_block)) | (key_clean & (key_block < query_block)))
    clean_sees = query_clean & key_clean & (key_block <= query_block)
    allowed = (noisy_sees | clean_sees) & attention_mask.bool()[:, None, :]
    return additive(allowed[:, None], dtype)


def attention_inputs(
    attention_mask: torch.Tensor, block_size: int | None, layout: Layout, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(attention mask, position ids or None) for a batch: the 2-D padding mask of a bidirectional
    model, or the 4-D block mask of the layout (transformers passes a 4-D mask through unchanged)."""
    if block_size is None:
        return attention_mask, None
    if layout is Layout.per_block:
        return block_causal_mask(attention_mask, block_size, dtype), None
    return concatenated_mask(attention_mask, block_size, dtype), _halves(attention_mask)[0]


def predicting_columns(
    rows: torch.Tensor, columns: torch.Tensor, attention_mask: torch.Tensor, block_size: int | None, layout: Layout
) -> torch.Tensor:
    """Where the state predicting each scored token sits in a shifted model: one to the left, except
    that the first token of a noisy block in the [noisy ‖ clean] layout is predicted from the clean
    copy of the token before it — the state a per-block row uses (the earlier block is clean there)."""
    previous = columns - 1
    if block_size is None or layout is Layout.per_block:
        return previous
    half = attention_mask.sum(dim=1)[rows] // 2
    starts_block = (columns % block_size == 0) & (columns > 0)
    return torch.where(starts_block, previous + half, previous)
