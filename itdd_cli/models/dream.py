"""Dream (Dream-v0 7B, Dream-Coder, DiffuCoder) as a bidirectional Qwen2.

Weight names already are Qwen2's; the config is copied field by field (config.json carries
`model_type: "Dream"`, `auto_map` and `mask_token_id`, which Qwen2Config must not see). Logits
are shifted: the state at i−1 predicts token i, so a BOS is always prepended (never scored) and
an EOS closes the sequence, as in Dream's own evaluation.
"""

from __future__ import annotations

from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.decoder import BidirectionalDecoderAdapter, require

COPIED_FIELDS = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "tie_word_embeddings",
    "attention_dropout",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
]


class DreamAdapter(BidirectionalDecoderAdapter):
    family = "dream"
    shifted_logits = True
    append_eos = True

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
            require(config, key, self.family)
        if config.get("rope_scaling") or config.get("use_sliding_window"):
            raise ModelError("Dream checkpoints with rope_scaling or sliding windows are not supported natively")
        fields = {key: config[key] for key in COPIED_FIELDS if key in config}
        rope_theta = float(config.get("rope_theta", 10000.0))
        qwen = Qwen2Config(
            **fields,
            rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
            use_sliding_window=False,
            use_cache=False,
        )
        qwen.is_causal = False
        return Qwen2ForCausalLM, qwen

    def find_mask_id(self, config: dict[str, Any]) -> int:
        mask_id = config.get("mask_token_id", self.tokenizer.mask_token_id)
        if mask_id is None:
            raise ModelError("neither config.json nor the tokenizer names Dream's mask token")
        return int(mask_id)
