"""A transformers decoder (Llama, Qwen2) made bidirectional: the base of LLaDA and Dream.

Subclasses say how to build the transformers config from the checkpoint's own config.json,
how to rename weights, where the mask id lives and whether logits are shifted. Loading never
runs the checkpoint's remote code. The LM head runs only on the hidden states that predict a
scored token, and the softmax is taken in float32.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.base import Framed, ScoringModel, target_log_softmax
from itdd_cli.models.block import BlockRows, Concatenated, Layout, attention_inputs, predicting_columns
from itdd_cli.models.loading import LoadOptions, load_tokenizer
from itdd_cli.models.padding import padding_mask
from itdd_cli.models.weights import load_pretrained


class BidirectionalDecoderAdapter(BlockRows, ScoringModel):
    family: str
    shifted_logits: bool = False  # True: the hidden state at i−1 predicts token i (Dream)
    append_eos: bool = False  # True: EOS closes the sequence as unscored context (Dream)
    eos_as_bos: bool = False  # True: a tokenizer without BOS starts sequences with EOS (Qwen convention)
    text_first: bool = False  # True: nothing before the text, whatever BOS the tokenizer or config.json names
    block_size: int | None = None  # set by block-diffusion families: block-causal attention
    layout: Layout = Layout.per_block  # how `target_logprobs` reads a block model's plain rows (models/block.py)

    def __init__(self, options: LoadOptions, config: dict[str, Any]) -> None:
        self.tokenizer = load_tokenizer(options)
        self.block_size = self.resolve_block_size(config, options)
        model_class, hf_config = self.build_config(config)
        self.model = load_pretrained(
            model_class, options, self.family, rename=self.checkpoint_name, config=hf_config,
            key_mapping=self.key_mapping(),
        )  # fmt: skip
        self.vocab_limit = self.text_columns(config)
        mask_id = self.find_mask_id(config)
        eos = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else config.get("eos_token_id")
        bos = self.beginning(config, eos)
        self.prefix_ids = [int(bos)] if bos is not None else []
        self.suffix_ids = [int(eos)] if self.append_eos and eos is not None else []
        self.lone_prefix_ids = self.prefix_ids  # before a text with no context (prompt) in front of it
        if self.shifted_logits and not self.prefix_ids:  # the state before the first token predicts it
            if not self.text_first or eos is None:
                raise ModelError(f"{options.model}: no BOS token; a shifted model cannot score position 0")
            self.lone_prefix_ids = [int(eos)]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        self.info = self.model_info(
            options,
            self.model,
            mask_id=mask_id,
            pad_id=pad if pad is not None else mask_id,
            max_length=self.max_length(config),
            shifted_logits=self.shifted_logits,
            vocab_size=self.model.lm_head.weight.shape[0],
            block_size=self.block_size,
            framing_note=self.framing_note(),
        )

    @abstractmethod
    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        """(transformers model class, its config with is_causal=False) from config.json."""

    def beginning(self, config: dict[str, Any], eos: int | None) -> int | None:
        """The token before the text: the tokenizer's BOS, else config.json's, else EOS (`eos_as_bos`);
        none for a family whose own code feeds the text with nothing before it (`text_first`)."""
        if self.text_first:
            return None
        bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else config.get("bos_token_id")
        return eos if bos is None and self.eos_as_bos else bos

    def framing_note(self) -> str:
        """What the framing line adds to the tokens it names (`text_first`: where the text starts)."""
        if not self.text_first:
            return ""
        note = " (nothing before the text, as in the family's own code; the first text token is position 0)"
        if self.lone_prefix_ids != self.prefix_ids:
            lone = " ".join(self.tokenizer.convert_ids_to_tokens(self.lone_prefix_ids))
            note += f"; a text with no prompt gets {lone} in front, never scored: no state precedes its first token"
        return note

    def frame(self, context: list[int], scored: list[int]) -> Framed:
        if context or self.lone_prefix_ids == self.prefix_ids:
            return super().frame(context, scored)
        ids = [*self.lone_prefix_ids, *scored, *self.suffix_ids]
        return Framed(ids=ids, start=len(self.lone_prefix_ids), length=len(scored))

    def key_mapping(self) -> dict[str, str] | None:
        return None

    def resolve_block_size(self, config: dict[str, Any], options: LoadOptions) -> int | None:
        """Block-diffusion families return their block size; bidirectional ones None."""
        return None

    def checkpoint_name(self, name: str) -> str:
        """The checkpoint's own name for the transformers tensor `name` (for error messages)."""
        return name

    def text_columns(self, config: dict[str, Any]) -> int | None:
        """Normalise over the first N logit columns only (None: all of them)."""
        return None

    @abstractmethod
    def find_mask_id(self, config: dict[str, Any]) -> int: ...

    max_length_key = "max_position_embeddings"  # where config.json states the longest sequence

    def max_length(self, config: dict[str, Any]) -> int | None:
        value = config.get(self.max_length_key)
        return int(value) if value else None

    @torch.inference_mode()
    def _logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, concatenated: Concatenated | None,
                        score_mask: torch.Tensor, targets: torch.Tensor,
                  guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        device = self.model.device
        dtype = self.model.dtype
        if self.block_size is None:  # decided on the host: no sync, no mask where nothing is padding
            mask, positions = padding_mask(attention_mask, device, dtype), None
        else:
            mask, positions = attention_inputs(attention_mask.to(device), self.block_size, concatenated, dtype)
        extra = {} if positions is None else {"position_ids": positions}  # None: 0..T−1
        hidden = self.model.model(input_ids=input_ids.to(device), attention_mask=mask, **extra).last_hidden_state
        rows, columns = score_mask.nonzero(as_tuple=True)  # (P,) each, row-major like targets[score_mask]
        if self.shifted_logits:  # the state one position to the left predicts the token
            columns = predicting_columns(rows, columns, self.block_size, concatenated)
        device = hidden.device  # the last layer's device under --device-map
        logits = self.model.lm_head(hidden[rows.to(device), columns.to(device)])  # (P, V): the head only where scored
        if self.vocab_limit is not None:
            logits = logits[:, : self.vocab_limit]
        return target_log_softmax(logits, targets[score_mask], guidance)


def require(config: dict[str, Any], key: str, family: str) -> Any:
    if key not in config:
        raise ModelError(f"config.json has no '{key}', which a {family} checkpoint needs")
    return config[key]


def bidirectional(config_class: Any, model_class: Any, **fields: Any) -> tuple[Any, Any]:
    """A transformers decoder and its config with causal attention off: the mask the adapter passes
    (full, or block-causal) decides what each position sees."""
    config = config_class(**fields)
    config.is_causal = False
    return model_class, config
