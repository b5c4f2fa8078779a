"""LLaDA (8B Base/Instruct, 1.5, iLLaDA, MMaDA's text model) as a bidirectional Llama.

The original safetensors load into `LlamaForCausalLM` with their weights renamed at load time
(docs/formats.md, "LLaDA"). The mask id comes from config.json (126336 for LLaDA, 5 for iLLaDA), never
the tokenizer, which does not register it. Logits span all `embedding_size` columns, as in
LLaDA's own likelihood code, except MMaDA's image codes (past `llm_vocab_size`), which are
left out of the softmax. In bfloat16 transformers rotates q/k in bf16 where LLaDA uses fp32
(|Δlogit| ≈ 1e-2); float32 is exact.
"""

from __future__ import annotations

import re
from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.decoder import BidirectionalDecoderAdapter, require

# LLaDA's tensor names → Llama's ({i}: the layer). transformers merges all key_mapping patterns
# into one alternation, so each pattern has a single group: a second back-reference would come
# out literally and leave tensors unloaded (docs/formats.md, "LLaDA").
RENAMES = [
    ("model.transformer.wte.", "model.embed_tokens."),
    ("model.transformer.blocks.{i}.attn_norm.", "model.layers.{i}.input_layernorm."),
    ("model.transformer.blocks.{i}.q_proj.", "model.layers.{i}.self_attn.q_proj."),
    ("model.transformer.blocks.{i}.k_proj.", "model.layers.{i}.self_attn.k_proj."),
    ("model.transformer.blocks.{i}.v_proj.", "model.layers.{i}.self_attn.v_proj."),
    ("model.transformer.blocks.{i}.attn_out.", "model.layers.{i}.self_attn.o_proj."),
    ("model.transformer.blocks.{i}.ff_norm.", "model.layers.{i}.post_attention_layernorm."),
    ("model.transformer.blocks.{i}.ff_proj.", "model.layers.{i}.mlp.gate_proj."),
    ("model.transformer.blocks.{i}.up_proj.", "model.layers.{i}.mlp.up_proj."),
    ("model.transformer.blocks.{i}.ff_out.", "model.layers.{i}.mlp.down_proj."),
    ("model.transformer.ln_f.", "model.norm."),
    ("model.transformer.ff_out.", "lm_head."),
]


def _pattern(template: str) -> str:
    return re.escape(template).replace(re.escape("{i}"), r"(\d+)")


KEY_MAPPING = {"^" + _pattern(llada): llama.replace("{i}", r"\1") for llada, llama in RENAMES}


def llada_name(llama_name: str) -> str:
    """The checkpoint's name of a Llama tensor (the inverse of KEY_MAPPING), for error messages."""
    for llada, llama in RENAMES:
        match = re.match(_pattern(llama), llama_name)
        if match:
            return llada.replace("{i}", match.group(1) if match.groups() else "") + llama_name[match.end() :]
    return llama_name


# (config key, value that Llama cannot represent) — refused rather than silently mis-scored.
UNSUPPORTED = {
    "block_type": lambda v: v not in (None, "llama"),
    "layer_norm_type": lambda v: v not in (None, "rms"),
    "activation_type": lambda v: v not in (None, "silu"),
    "alibi": bool,
    "attention_layer_norm": bool,
    "input_emb_norm": bool,
    "scale_logits": bool,
    "include_bias": bool,
    "include_qkv_bias": bool,
}


class LLaDAAdapter(BidirectionalDecoderAdapter):
    family = "llada"
    max_length_key = "max_sequence_length"

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import LlamaConfig, LlamaForCausalLM

        refused = [key for key, bad in UNSUPPORTED.items() if bad(config.get(key))]
        if refused:
            raise ModelError(f"LLaDA options a Llama cannot represent, so not supported natively: {', '.join(refused)}")
        heads = require(config, "n_heads", self.family)
        kv_heads = 1 if config.get("multi_query_attention") else config.get("n_kv_heads") or heads
        d_model = require(config, "d_model", self.family)
        hidden = config.get("mlp_hidden_size") or config.get("mlp_ratio", 4) * d_model
        llama = LlamaConfig(
            vocab_size=config.get("embedding_size") or require(config, "vocab_size", self.family),
            hidden_size=d_model,
            intermediate_size=hidden,
            num_hidden_layers=require(config, "n_layers", self.family),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            hidden_act="silu",
            rms_norm_eps=config.get("rms_norm_eps", 1e-5),
            rope_parameters={"rope_type": "default", "rope_theta": float(config.get("rope_theta", 10000.0))},
            max_position_embeddings=config.get("max_sequence_length", 4096),
            attention_bias=False,
            mlp_bias=False,
            tie_word_embeddings=bool(config.get("weight_tying", False)),
            pad_token_id=config.get("pad_token_id"),
            bos_token_id=None,
            eos_token_id=config.get("eos_token_id"),
            use_cache=False,
        )
        llama.is_causal = False
        return LlamaForCausalLM, llama

    def key_mapping(self) -> dict[str, str]:
        return KEY_MAPPING

    def checkpoint_name(self, name: str) -> str:
        return llada_name(name)

    def text_columns(self, config: dict[str, Any]) -> int | None:
        """MMaDA appends image (VQ) codes after the text vocabulary: score text among text."""
        value = config.get("llm_vocab_size")
        return int(value) if value else None

    def find_mask_id(self, config: dict[str, Any]) -> int:
        if "mask_token_id" in config:
            return int(config["mask_token_id"])
        mask_id = self.tokenizer.convert_tokens_to_ids("<|mdm_mask|>")
        if mask_id is None or mask_id == self.tokenizer.unk_token_id:
            raise ModelError("config.json has no mask_token_id and the tokenizer has no <|mdm_mask|> token")
        return int(mask_id)
