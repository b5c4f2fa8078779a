"""The contract every family adapter fulfils; the engine and runner see nothing else.

This module knows no family: quirks (mask ids, logit shifts, time inputs, framing) belong in
each family's own module and are fixed when the adapter is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from itdd_cli.errors import UsageError


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
    pads: bool = True  # False: no attention mask, so rows of different lengths never share a batch
    block_size: int | None = None  # block diffusion: blocks of this size from position 0, scored block by block


@dataclass(frozen=True)
class Framed:
    """A tokenized sequence: `ids[start:start + length]` are the scored tokens."""

    ids: list[int]
    start: int
    length: int


def target_log_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per row of `logits` (P, V), the softmax in float32; returned on the CPU: (P,)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return logprobs.gather(1, targets.to(logits.device)[:, None]).squeeze(1).cpu()


class ScoringModel(ABC):
    """Tokenizes, frames and scores. Implementations are built once per run.

    Adapters set `tokenizer`, `info` and the never-masked framing `prefix_ids` / `suffix_ids`
    (BOS, CLS/SEP, EOS, …) at construction; the shared methods below do the rest.
    """

    info: ModelInfo
    tokenizer: Any
    prefix_ids: list[int] = []
    suffix_ids: list[int] = []

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` alone, without any special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_chat_prompt(self, prompt: str) -> list[int]:
        """`prompt` as a user turn of the tokenizer's chat template, ready for the response."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise UsageError(f"the tokenizer of {self.info.name} has no chat template; drop --chat-template")
        messages = [{"role": "user", "content": prompt}]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.encode(text)

    def frame(self, context: list[int], scored: list[int]) -> Framed:
        """Framing around context + scored; a prefix the context already starts with (a chat
        template's own BOS) is not added twice."""
        prefix = self.prefix_ids
        if prefix and context[: len(prefix)] == prefix:
            prefix = []
        ids = [*prefix, *context, *scored, *self.suffix_ids]
        return Framed(ids=ids, start=len(prefix) + len(context), length=len(scored))

    def describe_framing(self) -> str:
        names = self.tokenizer.convert_ids_to_tokens
        if not self.prefix_ids and not self.suffix_ids:
            return "none"
        prefix = " ".join(names(self.prefix_ids)) or "∅"
        suffix = " ".join(names(self.suffix_ids)) or "∅"
        return f"{prefix} … {suffix} (never masked)"

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
