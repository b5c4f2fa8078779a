"""Dream (Dream-v0 7B, Dream-Coder, DiffuCoder) as a bidirectional Qwen2.

Weight names already are Qwen2's; the config is copied field by field (config.json carries
`model_type: "Dream"`, `auto_map` and `mask_token_id`, which Qwen2Config must not see). Logits
are shifted: the state at i−1 predicts token i, so a BOS is always prepended (never scored) and
an EOS closes the sequence, as in Dream's own evaluation.
"""

from __future__ import annotations

from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.decoder import BidirectionalDecoderAdapter, bidirectional
from itdd_cli.models.qwen import QWEN2_FIELDS, copied


class DreamAdapter(BidirectionalDecoderAdapter):
    family = "dream"
    shifted_logits = True
    append_eos = True

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        if config.get("use_sliding_window"):
            raise ModelError("Dream checkpoints with sliding windows are not supported natively")
        return bidirectional(Qwen2Config, Qwen2ForCausalLM, **copied(config, QWEN2_FIELDS, self.family),
                             use_sliding_window=False)  # fmt: skip

    def find_mask_id(self, config: dict[str, Any]) -> int:
        mask_id = config.get("mask_token_id", self.tokenizer.mask_token_id)
        if mask_id is None:
            raise ModelError("neither config.json nor the tokenizer names Dream's mask token")
        return int(mask_id)
