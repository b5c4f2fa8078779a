"""The contract every family adapter fulfils; the engine and runner see nothing else.

This module knows no family: quirks (mask ids, logit shifts, time inputs, framing) belong in
each family's own module and are fixed when the adapter is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelInfo:
    """What `itdd inspect` prints and every summary records."""

    name: str
    family: str
    parameters: int
    dtype: str
    device: str
    mask_id: int
    pad_id: int
    max_length: int | None
    shifted_logits: bool
    time_input: bool
    framing: str
    vocab_size: int


@dataclass(frozen=True)
class Framed:
    """A tokenized sequence: `ids[start:start + length]` are the scored tokens."""

    ids: list[int]
    start: int
    length: int


class ScoringModel(ABC):
    """Tokenizes, frames and scores. Implementations are built once per run."""

    info: ModelInfo

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` alone, without any special tokens."""

    @abstractmethod
    def frame(self, context: list[int], scored: list[int]) -> Framed:
        """Add the family's never-masked framing (BOS, CLS/SEP, …) around context + scored."""

    @abstractmethod
    def target_logprobs(
        self,
        input_ids: torch.Tensor,  # (B, T) long, right-padded, masks already applied
        attention_mask: torch.Tensor,  # (B, T) long, 1 on real tokens
        score_mask: torch.Tensor,  # (B, T) bool, the positions to score
        targets: torch.Tensor,  # (B, T) long, the true tokens
    ) -> torch.Tensor:
        """float32 log p(targets) at `score_mask`, flattened in row-major order: (P,).

        Must not depend on the other rows of the batch nor on padding, and must compute the
        softmax in float32.
        """
