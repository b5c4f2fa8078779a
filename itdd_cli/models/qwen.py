"""Shared pieces for the families stored in Qwen layouts (Dream, SDAR, Fast-dLLM v2, LLaDA-MoE, RND1).

Their config.json carries foreign keys (`model_type`, `auto_map`, `mask_token_id`, `block_size`)
that transformers' configs must not see, so fields are copied one by one. Mask ids are looked
up in config.json, then the tokenizer, then the family's published default.
"""

from __future__ import annotations

from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.decoder import require

QWEN_FIELDS = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "tie_word_embeddings",
    "attention_bias",
    "attention_dropout",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
]
QWEN2_FIELDS = [key for key in QWEN_FIELDS if key not in ("head_dim", "attention_bias")]  # Qwen2: q/k/v biased
QWEN_MOE_FIELDS = [*QWEN_FIELDS, "moe_intermediate_size", "num_experts", "num_experts_per_tok", "norm_topk_prob",
                   "decoder_sparse_step", "mlp_only_layers"]  # fmt: skip


def copied(config: dict[str, Any], fields: list[str], family: str) -> dict[str, Any]:
    """The transformers keyword arguments that config.json states, with RoPE in transformers 5's form."""
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        require(config, key, family)
    if config.get("rope_scaling"):
        raise ModelError(f"{family} checkpoints with rope_scaling are not supported natively")
    kwargs = {key: config[key] for key in fields if config.get(key) is not None}
    theta = float(config.get("rope_theta", 10000.0))
    return kwargs | {"rope_parameters": {"rope_type": "default", "rope_theta": theta}, "use_cache": False}


def mask_id_from(config: dict[str, Any], tokenizer: Any, texts: tuple[str, ...], default: int | None) -> int:
    """config.json's mask_token_id, else the tokenizer's mask token (by role or by text), else `default`."""
    if config.get("mask_token_id") is not None:
        return int(config["mask_token_id"])
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    for text in texts:
        found = tokenizer.convert_tokens_to_ids(text)
        if found is not None and found != tokenizer.unk_token_id:
            return int(found)
    if default is None:
        raise ModelError("neither config.json nor the tokenizer names the mask token")
    return default
