"""The contract every family adapter fulfils; the engine and runner see nothing else.

This module knows no family: quirks (mask ids, logit shifts, time inputs, framing) belong in
each family's own module and are fixed when the adapter is built.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from itdd_cli.errors import ModelError, UsageError
from itdd_cli.estimators.kinds import Estimator
from itdd_cli.models.block import Concatenated
from itdd_cli.models.guidance import guided_log_softmax
from itdd_cli.models.loading import LoadOptions, parameter_count
from itdd_cli.models.lora_config import AdapterInfo
from itdd_cli.models.text import encode_chat_prompt, encode_text, lost_text, token_pieces, unknown_ids


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
    block_size: int | None = None  # block diffusion: blocks of this size from position 0, each block its own draws
    attention: str = ""  # the attention kernel the engine runs ("cpu default", or what it chose on CUDA)
    adapter: AdapterInfo | None = None  # -m ADAPTER_DIR: the LoRA adapter applied to the base (models/lora.py)


@dataclass(frozen=True)
class Framed:
    """A tokenized sequence: `ids[start:start + length]` are the scored tokens."""

    ids: list[int]
    start: int
    length: int


VOCAB_CHUNK = 8192  # logit columns converted to float32 at a time


def target_log_softmax(logits: torch.Tensor, targets: torch.Tensor, guidance: float | None = None) -> torch.Tensor:
    """log p(target) per row of `logits` (P, V), the softmax in float32: (P,) float32, on the
    logits' device (the engine brings a window's values back at once).

    A vocabulary wider than VOCAB_CHUNK is normalised over chunks of it (max, then Σ exp), so no
    (P, V) float32 matrix exists (≈ 8 GB for 16k positions at LLaDA's 126,464 tokens); narrower
    ones take the one-pass log_softmax, unchanged to the bit. With `guidance` S the rows are a
    guided batch's [conditional; unconditional] halves, combined before the softmax (`guidance`).
    """
    if guidance is not None:
        return guided_log_softmax(logits, targets, guidance, VOCAB_CHUNK)
    targets = targets.to(logits.device, non_blocking=True)[:, None]  # (P, 1)
    if logits.shape[-1] <= VOCAB_CHUNK:
        return torch.log_softmax(logits.float(), dim=-1).gather(1, targets).squeeze(1)
    parts = logits.split(VOCAB_CHUNK, dim=-1)
    top = torch.stack([part.amax(dim=-1) for part in parts], dim=-1).amax(dim=-1).float()[:, None]  # (P, 1)
    total = sum(torch.exp(part.float() - top).sum(dim=-1) for part in parts)  # (P,) as log_softmax: x − max first
    return (logits.gather(1, targets).float() - top).squeeze(1) - torch.log(total)  # type: ignore[arg-type]


class ScoringModel(ABC):
    """Tokenizes, frames and scores. Implementations are built once per run.

    Adapters set `tokenizer`, `info` (with `model_info`) and the never-masked framing
    `prefix_ids` / `suffix_ids` (BOS, CLS/SEP, EOS, …) at construction; the shared methods
    below do the rest.
    """

    family: str
    info: ModelInfo
    tokenizer: Any
    prefix_ids: list[int]
    suffix_ids: list[int]
    guides = True  # target_logprobs takes --cfg's guidance (the unconditional twin's logits); SEDD's does not

    def model_info(self, options: LoadOptions, module: torch.nn.Module, *, mask_id: int, pad_id: int,
                   max_length: int | None, vocab_size: int, shifted_logits: bool = False, time_input: bool = False,
                   framing_note: str = "", pads: bool = True, block_size: int | None = None) -> ModelInfo:  # fmt: skip
        """The ModelInfo of a loaded adapter: what every family reports the same way is filled in here."""
        return ModelInfo(
            name=options.model,
            family=self.family,
            parameters=parameter_count(module),
            dtype=str(options.torch_dtype).removeprefix("torch."),
            device=str(options.torch_device),
            mask_id=int(mask_id),
            pad_id=int(pad_id),
            max_length=max_length,
            shifted_logits=shifted_logits,
            time_input=time_input,
            framing=self.describe_framing() + framing_note,
            vocab_size=int(vocab_size),
            pads=pads,
            block_size=block_size,
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` alone, without any special tokens; a special-token string in it
        ("<|mdm_mask|>") is text, never the token it names."""
        return encode_text(self.tokenizer, text)

    def encode_chat_prompt(self, prompt: str) -> list[int]:
        """`prompt` as a user turn of the tokenizer's chat template, ready for the response."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise UsageError(f"the tokenizer of {self.info.name} has no chat template; drop --chat-template")
        ids = encode_chat_prompt(self.tokenizer, prompt)
        if ids is None:
            raise UsageError(
                f"the chat template of {self.info.name} rewrites a prompt that contains a special-token string, "
                "which then cannot be kept as plain text — drop --chat-template or remove the string"
            )
        return ids

    def token_strings(self, text: str, ids: list[int]) -> list[str]:
        """The piece of `text` each of its scored token ids stands for; the pieces concatenate to
        `text` when the tokenizer reports offsets (see `text.token_pieces`)."""
        return token_pieces(self.tokenizer, text, ids)

    def lost_text(self, text: str) -> str | None:
        """What of `text` this tokenizer drops or maps to an unknown token; None when nothing is lost.

        A model without a tokenizer (one that overrides `encode`, like the test fakes) reports nothing."""
        if getattr(self, "tokenizer", None) is None:
            return None
        return lost_text(self.tokenizer, text, self._unknown_ids)

    @functools.cached_property
    def _unknown_ids(self) -> set[int]:
        return unknown_ids(self.tokenizer, (self.info.mask_id,))

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

    def check_estimator(self, estimator: Estimator) -> None:
        """Refuse an estimator this model cannot serve, in one line, before any record is read."""
        if estimator.needs_scores:
            raise UsageError(f"--estimator {estimator.value} reads the scores of a score-entropy (SEDD) model; "
                             f"{self.info.name} is a {self.family} model — use another estimator")  # fmt: skip

    @abstractmethod
    def target_logprobs(
        self,
        input_ids: torch.Tensor,  # (B, T) long, right-padded, masks already applied
        attention_mask: torch.Tensor,  # (B, T) long, 1 on real tokens
        score_mask: torch.Tensor,  # (B, T) bool, the positions to score
        targets: torch.Tensor,  # (B, T) long, the true tokens
        guidance: float | None = None,  # S: a guided batch (models/guidance.py), passed to target_log_softmax
    ) -> torch.Tensor:
        """float32 log p(targets) at `score_mask`, flattened in row-major order: (P,), on any device.

        Must not depend on the other rows of the batch nor on padding, and must compute the
        softmax in float32. With `guidance` the batch's rows are [conditional; unconditional]
        and the result covers the conditional half only (P / 2 values).
        """

    def concatenated_logprobs(
        self,
        input_ids: torch.Tensor,  # (B, W) long, right-padded [noisy ‖ clean] rows, masks applied to the noisy copy
        attention_mask: torch.Tensor,  # (B, W) long, 1 on real tokens
        rows: Concatenated,  # where each row's halves lie and each column's position id
        score_mask: torch.Tensor,  # (B, W) bool, the positions to score (in the noisy copy)
        targets: torch.Tensor,  # (B, W) long, the true tokens
    ) -> torch.Tensor:
        """`target_logprobs` of block-diffusion rows in the [noisy ‖ clean] layout (models/block.py)."""
        raise ModelError(f"{self.info.name} is not a block-diffusion model; it reads no [noisy ‖ clean] rows")


def check_vocabulary(model: ScoringModel, options: LoadOptions) -> None:
    """Refuse a tokenizer (or a mask/framing id) whose ids reach past the model's embedding rows,
    which would fail mid-run or index another token's embedding."""
    vocab = model.info.vocab_size
    if vocab <= 0:  # a custom class with no output embeddings and no vocab_size: nothing to compare
        return
    highest = max(model.tokenizer.get_vocab().values(), default=-1)
    if highest >= vocab:
        source = options.tokenizer or options.model
        message = (
            f"the tokenizer of {source} has ids up to {highest}, but the model {options.model} has a vocabulary "
            f"of {vocab} ids"
        )
        if options.tokenizer:
            raise UsageError(f"--tokenizer {options.tokenizer}: {message}; use a tokenizer made for this model")
        raise ModelError(f"{message}; pass --tokenizer with one made for this model")
    if options.tokenizer:  # another tokenizer may spell a plain character with the model's mask id
        special = {int(i) for i in getattr(model.tokenizer, "all_special_ids", []) or []}
        clash = [piece for piece, token_id in model.tokenizer.get_vocab().items()
                 if token_id == model.info.mask_id and token_id not in special]  # fmt: skip
        if clash:
            raise UsageError(f"--tokenizer {options.tokenizer}: its token {clash[0]!r} has id {model.info.mask_id}, "
                             "the model's mask token, so text holding it would be scored as masked; use a "
                             "tokenizer made for this model")  # fmt: skip
    lone = getattr(model, "lone_prefix_ids", [])  # a shifted decoder's token before a text with no prompt
    framing = [("framing", token_id) for token_id in model.prefix_ids + model.suffix_ids + lone]
    for role, token_id in [("mask", model.info.mask_id), *framing]:
        if not 0 <= token_id < vocab:
            raise ModelError(f"{options.model}: the {role} id {token_id} is outside the vocabulary of {vocab} ids")
