"""Plain masked diffusion on Qwen3-MoE layouts: LLaDA-MoE and RND1 (bidirectional, no blocks).

* LLaDA-MoE (`LLaDAMoEModelLM`; its config.json says `model_type: "llada"`, so it is told apart
  from dense LLaDA by its architecture): own config keys (`expert_intermediate_size`,
  `moe_layer_freq`, …) mapped onto Qwen3-MoE; softmax routing over all experts, top-k, weights
  never renormalised; no shift. Its mask id (156895) is not in config.json. Checkpoints with a
  routing expert bias, a shared expert or partial RoPE are refused: Qwen3-MoE would score them
  differently (the released 7B-A1B uses none of them).
* RND1: Qwen3-MoE keys and names as they are, normalised top-k, and the one-position shift.

Per-expert weights (`mlp.experts.{j}.*_proj`) are merged by transformers when it loads a
Qwen3-MoE checkpoint; the LM head still runs only at scored positions.
"""

from __future__ import annotations

from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.decoder import BidirectionalDecoderAdapter, bidirectional, require
from itdd_cli.models.qwen import QWEN_FIELDS, QWEN_MOE_FIELDS, copied, mask_id_from

LLADA_MOE_MASK = 156895
RND1_MASK = 151669


def _unsupported_llada_moe(config: dict[str, Any]) -> list[str]:
    refused = []
    if config.get("moe_router_enable_expert_bias"):
        refused.append("moe_router_enable_expert_bias")
    if config.get("shared_expert_intermediate_size") not in (None, 0, -1):
        refused.append("shared_expert_intermediate_size")
    if config.get("partial_rotary_factor") not in (None, 1, 1.0, -1):
        refused.append("partial_rotary_factor")
    if config.get("moe_router_score_function") not in (None, "softmax"):
        refused.append("moe_router_score_function")
    if config.get("routed_scaling_factor") not in (None, 1, 1.0):
        refused.append("routed_scaling_factor")
    if config.get("qk_layernorm") is False:
        refused.append("qk_layernorm")
    if config.get("clip_qkv") is not None:
        refused.append("clip_qkv")
    return refused


class LLaDAMoEAdapter(BidirectionalDecoderAdapter):
    family = "llada-moe"

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

        refused = _unsupported_llada_moe(config)
        if refused:
            raise ModelError(f"LLaDA-MoE options not supported natively: {', '.join(refused)}")
        layers = require(config, "num_hidden_layers", self.family)
        frequency = config.get("moe_layer_freq") or [1] * layers
        if len(frequency) != layers:
            raise ModelError(f"config.json: moe_layer_freq has {len(frequency)} entries for {layers} layers")
        fields = copied(config, QWEN_FIELDS, self.family)
        fields["rms_norm_eps"] = config.get("rms_norm_eps", 1e-5)  # LLaDA-MoE's class default, not Qwen's 1e-6
        return bidirectional(
            Qwen3MoeConfig,
            Qwen3MoeForCausalLM,
            **fields,
            moe_intermediate_size=require(config, "expert_intermediate_size", self.family),
            num_experts=require(config, "num_experts", self.family),
            num_experts_per_tok=require(config, "num_experts_per_tok", self.family),
            norm_topk_prob=False,  # hard-coded off in LLaDA-MoE, whatever config.json says
            decoder_sparse_step=1,
            mlp_only_layers=[i for i, moe in enumerate(frequency) if not moe],
            intermediate_size=config.get("dense_intermediate_size") or config.get("intermediate_size") or 1,
            use_sliding_window=False,
        )

    def find_mask_id(self, config: dict[str, Any]) -> int:
        return mask_id_from(config, self.tokenizer, ("<|mask|>",), LLADA_MOE_MASK)


class RND1Adapter(BidirectionalDecoderAdapter):
    family = "rnd1"
    shifted_logits = True
    eos_as_bos = True  # Qwen3 tokenizers have no BOS: <|endoftext|> fills position 0, never scored

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

        return bidirectional(Qwen3MoeConfig, Qwen3MoeForCausalLM, **copied(config, QWEN_MOE_FIELDS, self.family),
                             use_sliding_window=False)  # fmt: skip

    def find_mask_id(self, config: dict[str, Any]) -> int:
        return mask_id_from(config, self.tokenizer, ("<|mask|>",), RND1_MASK)
