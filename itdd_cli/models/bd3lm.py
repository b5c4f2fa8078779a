"""BD3-LM (`kuleshov-group/bd3lm-owt-block_size{4,8,16}`): MDLM's DiT under a block-causal mask.

The checkpoint is MDLM's format (weights under `backbone.`, the same DiT names, GPT-2 tokens with
the mask appended as the last column, no tokenizer files) plus `block_size`, `cross_attn` and
`adaln` in config.json. The published model reads [noisy ‖ clean] (`cross_attn`) under the
three-part block mask, both copies at the same rotary positions; itdd runs the same layout
(models/block.py). The time input is zero (`time_conditioning` false); the mask logit is
suppressed before the softmax, as in MDLM. Unlike MDLM, rows may be padded: the 4-D mask hides
padding keys.

The published class also saves two buffers with the weights, `sampling_eps_min` and
`sampling_eps_max` (the clipped noise interval its sampler and training use, one number each);
they change no forward pass, so they are set aside, and any other unknown tensor is still refused.
Framing is MDLM's: <|endoftext|> before and after the text, as BD3-LM's OpenWebText chunks start
with BOS and end documents with EOS; the BOS sits at position 0, in block 0, never masked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.base import target_log_softmax
from itdd_cli.models.block import BlockRows, Concatenated, Layout, attention_inputs, resolve_block_size
from itdd_cli.models.loading import LoadOptions
from itdd_cli.models.mdlm import MDLMAdapter


class BD3LMAdapter(BlockRows, MDLMAdapter):
    family = "bd3lm"
    layout: Layout = Layout.per_block  # how `target_logprobs` reads plain rows (models/block.py)
    # Buffers of the published class (saved at the top level, beside `backbone.`), not weights; the
    # `backbone.` spelling is accepted too, as no hub file's own listing was read.
    settings_tensors = tuple(prefix + name for prefix in ("", "backbone.")
                             for name in ("sampling_eps_min", "sampling_eps_max"))  # fmt: skip

    def __init__(self, options: LoadOptions, config: dict[str, Any]) -> None:
        refused = [key for key, bad in (("adaln", False), ("causal", True), ("time_conditioning", True))
                   if config.get(key, not bad) == bad]  # fmt: skip
        if refused:
            raise ModelError(f"BD3-LM options not supported natively: {', '.join(refused)}")
        self.block_size = resolve_block_size(config, options.block_size, None, self.family)
        super().__init__(options, config)
        self.info = dataclasses.replace(
            self.info,
            family=self.family,
            pads=True,
            block_size=self.block_size,
            max_length=int(config.get("model_length", 1024)),
        )

    @torch.inference_mode()
    def _logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, concatenated: Concatenated | None,
                        score_mask: torch.Tensor, targets: torch.Tensor,
                  guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        device = self.model.vocab_embed.embedding.device
        ids = input_ids.to(device)
        dtype = self.model.vocab_embed.embedding.dtype
        mask, positions = attention_inputs(attention_mask.to(device), self.block_size, concatenated, dtype)
        hidden, c = self.model.hidden(ids, torch.zeros(ids.shape[0], device=device), mask, positions)  # (B, T, D)
        where = score_mask.to(device)
        logits = self.model.output_layer(hidden[where], c[where.nonzero()[:, 0]]).float()  # (P, V)
        logits[:, self.mask_id] = float("-inf")  # SUBS: the mask is never a prediction
        return target_log_softmax(logits, targets[score_mask], guidance)
