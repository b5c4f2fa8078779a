"""Block diffusion: attention is bidirectional inside a block and causal across blocks.

Blocks tile the whole framed sequence from position 0 (BOS and prompt included), as in the
families' own training and sampling code, so the prompt boundary need not be a block boundary.

The runner scores block models in the [noisy ‖ clean] layout the families train with: a row
holds a noisy copy of the scored blocks, each masked by its own draw, then a clean copy of the
blocks before them, every token at its own position id (positions repeat). Noisy block b sees
itself and the clean blocks before b; the clean copy is block-causal and never sees the noisy
one. So one row gives every block what a row of its own would (the clean blocks before it,
later blocks absent), and one pass serves a draw of every block. The engine says where the
halves lie (`Concatenated`); the adapter builds the 4-D mask.

A plain row is read per block (`Layout.per_block`): the clean blocks before b, then block b,
under the block-causal mask. The runner no longer sends such rows; bench/block_layout.py uses
them as its baseline, and `Layout.concatenated` lets a caller hand an adapter equal halves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch

from itdd_cli.errors import ModelError, UsageError


class Layout(StrEnum):
    """How `target_logprobs` reads the rows of a block model (the runner's rows say it themselves)."""

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


@dataclass(frozen=True)
class Concatenated:
    """Where the halves of right-padded [noisy ‖ clean] rows lie: the noisy copy fills the first
    `noisy_length` columns, the clean copy the rest; `positions` gives each column's position id,
    so both copies of a token share one (B, W) long and (B,) long."""

    positions: torch.Tensor
    noisy_length: torch.Tensor


def equal_halves(attention_mask: torch.Tensor) -> Concatenated:
    """Rows of 2T real tokens, each half at positions 0..T−1 (the families' own training layout)."""
    half = attention_mask.sum(dim=1) // 2  # (B,)
    columns = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None]  # (1, W)
    clean = columns >= half[:, None]
    return Concatenated(torch.where(clean, columns - half[:, None], columns), half)


def concatenated_mask(
    attention_mask: torch.Tensor, rows: Concatenated, block_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """(B, 1, W, W) additive mask of right-padded [noisy ‖ clean] rows: a noisy block sees itself
    and the clean blocks before it, the clean copy is block-causal and never sees the noisy one."""
    width = attention_mask.shape[1]
    columns = torch.arange(width, device=attention_mask.device)[None]  # (1, W)
    clean = columns >= rows.noisy_length.to(attention_mask.device)[:, None]  # (B, W)
    blocks = rows.positions.to(attention_mask.device) // block_size  # (B, W)
    query_block, key_block = blocks[:, :, None], blocks[:, None, :]
    query_clean, key_clean = clean[:, :, None], clean[:, None, :]
    noisy_sees = ~query_clean & ((~key_clean & (key_block == query_block)) | (key_clean & (key_block < query_block)))
    clean_sees = query_clean & key_clean & (key_block <= query_block)
    allowed = (noisy_sees | clean_sees) & attention_mask.bool()[:, None, :]
    allowed |= torch.eye(width, dtype=torch.bool, device=allowed.device)  # a padding query sees itself, never ∅
    return additive(allowed[:, None], dtype)


def attention_inputs(
    attention_mask: torch.Tensor, block_size: int | None, rows: Concatenated | None, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(attention mask, position ids or None) for a batch: the 2-D padding mask of a bidirectional
    model, the 4-D block-causal mask of per-block rows (`rows` None), or the [noisy ‖ clean] mask
    and the rows' position ids (transformers passes a 4-D mask through unchanged)."""
    if block_size is None:
        return attention_mask, None
    if rows is None:
        return block_causal_mask(attention_mask, block_size, dtype), None
    return concatenated_mask(attention_mask, rows, block_size, dtype), rows.positions.to(attention_mask.device)


def predicting_columns(
    rows: torch.Tensor, columns: torch.Tensor, block_size: int | None, concatenated: Concatenated | None
) -> torch.Tensor:
    """Where the state predicting each scored token sits in a shifted model: one to the left, except
    that the first token of a noisy block in the [noisy ‖ clean] layout is predicted from the clean
    copy of the token before it — the state a per-block row uses (the earlier block is clean there)."""
    previous = columns - 1
    if block_size is None or concatenated is None:
        return previous
    positions = concatenated.positions[rows, columns]
    starts_block = (positions % block_size == 0) & (positions > 0)
    clean_copy = concatenated.noisy_length[rows] + positions - 1  # the clean copy starts at position 0
    return torch.where(starts_block, clean_copy, previous)


class BlockRows:
    """The two ways a block adapter is handed rows, both read by its own `_logprobs(input_ids,
    attention_mask, rows, score_mask, targets)`: plain rows (per block, or equal halves when
    `layout` says concatenated) and the runner's [noisy ‖ clean] rows. Mixed in before the base."""

    layout: Layout
    block_size: int | None

    def target_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, score_mask: torch.Tensor,
                        targets: torch.Tensor, guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        rows = equal_halves(attention_mask) if self.layout is Layout.concatenated else None
        return self._logprobs(input_ids, attention_mask, rows, score_mask, targets,  # type: ignore[attr-defined]
                              guidance=guidance)

    def concatenated_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: Concatenated,
                              score_mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # fmt: skip
        if self.block_size is None:  # a plain model: the base refuses such rows
            return super().concatenated_logprobs(  # type: ignore[misc]
                input_ids, attention_mask, rows, score_mask, targets
            )
        return self._logprobs(input_ids, attention_mask, rows, score_mask, targets)  # type: ignore[attr-defined]

