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
from itdd_cli.models.base import ModelInfo, ScoringModel, target_log_softmax
from itdd_cli.models.loading import LoadOptions, load_tokenizer, parameter_count, sane_max_length

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
        try:
            self.model = AutoModelForMaskedLM.from_pretrained(
                options.model,
                trust_remote_code=options.trust_remote_code,
                dtype=options.torch_dtype,
                **options.weights_kwargs(),
                **options.hub_kwargs(),
                **options.placement_kwargs(),
            )
        except Exception as error:  # transformers raises many types; all mean "cannot load"
            raise ModelError(f"cannot load {options.model} as a masked LM: {error}") from error
        options.place(self.model)
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            mask_id = config.get("mask_token_id")
        if mask_id is None:
            raise ModelError(f"{options.model}: neither the tokenizer nor config.json names a mask token")
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = mask_id  # pads are hidden by the attention mask; any valid id will do
        self.prefix_ids, self.suffix_ids = self._framing_tokens()
        self.info = ModelInfo(
            name=options.model,
            family=self.family,
            parameters=parameter_count(self.model),
            dtype=str(options.torch_dtype).removeprefix("torch."),
            device=str(options.torch_device),
            mask_id=int(mask_id),
            pad_id=int(pad_id),
            max_length=sane_max_length(config, self.tokenizer),
            shifted_logits=False,
            time_input=False,
            framing=self.describe_framing(),
            vocab_size=int(self.model.get_output_embeddings().weight.shape[0])
            if self.model.get_output_embeddings() is not None
            else int(config.get("vocab_size", 0)),
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
    def target_logprobs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        score_mask: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        device = self.model.device
        output = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
        logits = output.logits if hasattr(output, "logits") else output[0]  # (B, T, V)
        device = logits.device  # the head's device under --device-map
        return target_log_softmax(logits[score_mask.to(device)], targets[score_mask])  # (P,)
