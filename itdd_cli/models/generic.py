"""Any `AutoModelForMaskedLM` checkpoint: BERT-style models, and custom classes via `auto_map`.

The mask id comes from the tokenizer (or the config); the tokenizer's own special tokens
(CLS/SEP/BOS) frame the sequence as unmasked, unscored context. Padding is on the right with
an attention mask. The MLM head is whatever the checkpoint has, so full logits are computed
and only the scored rows are normalised, in float32.
"""

from __future__ import annotations

from typing import Any

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.base import ScoringModel, target_log_softmax
from itdd_cli.models.loading import LoadOptions, load_tokenizer, sane_max_length
from itdd_cli.models.weights import load_pretrained

PROBE_TEXT = "a"


def _refuse_unrequested_code(options: LoadOptions, config: dict[str, Any]) -> None:
    """transformers would fail obscurely (or prompt) on a custom class; say what to do instead."""
    if options.trust_remote_code or "auto_map" not in config:
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if config.get("model_type") not in CONFIG_MAPPING:
        raise ModelError(
            f"{options.model} ships its own model code (auto_map in config.json); "
            "itdd runs it only with --trust-remote-code"
        )


class MaskedLMAdapter(ScoringModel):
    family = "generic"

    def __init__(self, options: LoadOptions, config: dict[str, Any]) -> None:
        from transformers import AutoModelForMaskedLM

        _refuse_unrequested_code(options, config)
        self.tokenizer = load_tokenizer(options)
        self.model = load_pretrained(
            AutoModelForMaskedLM, options, "a masked LM", trust_remote_code=options.trust_remote_code
        )
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            mask_id = config.get("mask_token_id")
        if mask_id is None:
            raise ModelError(f"{options.model}: neither the tokenizer nor config.json names a mask token")
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = mask_id  # pads are hidden by the attention mask; any valid id will do
        self.prefix_ids, self.suffix_ids = self._framing_tokens()
        head = self.model.get_output_embeddings()
        self.info = self.model_info(
            options,
            self.model,
            mask_id=mask_id,
            pad_id=pad_id,
            max_length=sane_max_length(config, self.tokenizer),
            vocab_size=head.weight.shape[0] if head is not None else config.get("vocab_size", 0),
        )

    def _framing_tokens(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer wraps around a single sequence."""
        encoded = self.tokenizer(PROBE_TEXT, add_special_tokens=True, return_special_tokens_mask=True)
        special = encoded["special_tokens_mask"]
        if 0 not in special:
            return [], []
        first = special.index(0)
        last = len(special) - special[::-1].index(0)
        return list(encoded["input_ids"][:first]), list(encoded["input_ids"][last:])

    @torch.inference_mode()
    def target_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, score_mask: torch.Tensor,
                              targets: torch.Tensor,
                        guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        device = self.model.device
        output = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
        logits = output.logits if hasattr(output, "logits") else output[0]  # (B, T, V)
        device = logits.device  # the head's device under --device-map
        return target_log_softmax(logits[score_mask.to(device)], targets[score_mask], guidance)  # (P,)
