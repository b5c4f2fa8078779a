"""LLaDA 2.0 / 2.1 (mini 16B, flash 103B): block diffusion on a Ling MoE, as transformers' GLM-4 MoE.

The Ling weights load through the renames transformers already ships for `sarvam_moe` (the
fused `attention.query_key_value` split into q/k/v by row counts [q | k | v], `attention.dense`
→ `o_proj`, `query_layernorm`/`key_layernorm` → q/k norm, `mlp.gate.expert_bias` → the
selection bias, per-expert weights merged), registered for one subclass so that no other
model is touched. GLM-4 MoE's router is LLaDA 2's: sigmoid scores in float32, the expert bias
used only to choose (groups ranked by the sum of their two best, 8 groups keep 4, top-8), the
unbiased scores of the chosen experts always normalised and scaled by `routed_scaling_factor`.
RoPE turns the first half of each head (`partial_rotary_factor` 0.5). Layers before
`first_k_dense_replace` are dense; every MoE layer adds one shared expert.

Its own generation and fine-tuning feed the (chat-templated) text with no special token added in
front, so nothing precedes the text here either and blocks are counted from its first token.

config.json omits several keys whose class defaults matter (`use_qk_norm` True, `use_bias` True,
`rms_norm_eps` 1e-5, `block_size`: generation uses 32), so those defaults are read here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.block import resolve_block_size
from itdd_cli.models.decoder import BidirectionalDecoderAdapter, require
from itdd_cli.models.loading import LoadOptions
from itdd_cli.models.qwen import mask_id_from

LLADA2_MASK = 156895
LLADA2_BLOCK = 32


@cache
def scoring_class() -> Any:
    """Glm4MoeForCausalLM under its own name, which carries the Ling weight conversion."""
    from transformers import Glm4MoeForCausalLM
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )

    class LLaDA2ForScoring(Glm4MoeForCausalLM):
        pass

    register_checkpoint_conversion_mapping(
        LLaDA2ForScoring.__name__, get_checkpoint_conversion_mapping("sarvam_moe"), overwrite=True
    )
    return LLaDA2ForScoring


def _refused(config: dict[str, Any]) -> list[str]:
    refused = []
    if config.get("use_bias", True):
        refused.append("use_bias (a bias on attention.dense)")
    if config.get("norm_head"):
        refused.append("norm_head")
    if config.get("score_function", "sigmoid") != "sigmoid":
        refused.append("score_function")
    if config.get("rope_scaling"):
        refused.append("rope_scaling")
    if not config.get("use_qk_norm", True):
        refused.append("use_qk_norm false")
    return refused


class LLaDA2Adapter(BidirectionalDecoderAdapter):
    family = "llada2"
    text_first = True  # whatever BOS the tokenizer names: a token in front would move every block boundary

    def resolve_block_size(self, config: dict[str, Any], options: LoadOptions) -> int | None:
        return resolve_block_size(config, options.block_size, LLADA2_BLOCK, self.family)

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Glm4MoeConfig

        refused = _refused(config)
        if refused:
            raise ModelError(f"LLaDA 2 options not supported natively: {', '.join(refused)}")
        hidden = require(config, "hidden_size", self.family)
        heads = require(config, "num_attention_heads", self.family)
        rope = {
            "rope_type": "default",
            "rope_theta": float(config.get("rope_theta", 10000.0)),
            "partial_rotary_factor": float(config.get("partial_rotary_factor", 0.5)),
        }
        glm = Glm4MoeConfig(
            vocab_size=require(config, "vocab_size", self.family),
            hidden_size=hidden,
            intermediate_size=require(config, "intermediate_size", self.family),
            num_hidden_layers=require(config, "num_hidden_layers", self.family),
            num_attention_heads=heads,
            num_key_value_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or hidden // heads,
            hidden_act=config.get("hidden_act", "silu"),
            max_position_embeddings=config.get("max_position_embeddings", 16384),
            rms_norm_eps=config.get("rms_norm_eps", 1e-5),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            rope_parameters=rope,
            attention_bias=bool(config.get("use_qkv_bias", False)),
            moe_intermediate_size=require(config, "moe_intermediate_size", self.family),
            num_experts_per_tok=require(config, "num_experts_per_tok", self.family),
            n_routed_experts=require(config, "num_experts", self.family),
            n_shared_experts=config.get("num_shared_experts", 0),
            routed_scaling_factor=config.get("routed_scaling_factor", 2.5),
            n_group=config.get("n_group", 8),
            topk_group=config.get("topk_group", 4),
            first_k_dense_replace=config.get("first_k_dense_replace", 0),
            norm_topk_prob=True,  # LLaDA 2 always normalises; its config's norm_topk_prob is never read
            use_qk_norm=True,
            pad_token_id=config.get("pad_token_id"),
            eos_token_id=config.get("eos_token_id"),
            use_cache=False,
        )
        glm.is_causal = False
        return scoring_class(), glm

    def find_mask_id(self, config: dict[str, Any]) -> int:
        return mask_id_from(config, self.tokenizer, ("<|mask|>",), LLADA2_MASK)
