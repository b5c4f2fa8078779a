"""Families by name, resolved lazily ("module:Class"), and detection from config.json."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.models.base import ScoringModel
from itdd_cli.models.loading import LoadOptions, quiet_transformers, read_config, refuse_pickle_only


@dataclass(frozen=True)
class Family:
    name: str
    adapter: str  # "module:Class", imported only when used
    description: str
    examples: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        Family(
            "llada",
            "itdd_cli.models.llada:LLaDAAdapter",
            "LLaDA, LLaDA-1.5, iLLaDA and MMaDA's text model, as a bidirectional Llama (no remote code)",
            ("GSAI-ML/LLaDA-8B-Base", "GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-1.5"),
        ),
        Family(
            "dream",
            "itdd_cli.models.dream:DreamAdapter",
            "Dream, Dream-Coder and DiffuCoder, as a bidirectional Qwen2 with shifted logits (no remote code)",
            ("Dream-org/Dream-v0-Base-7B", "Dream-org/Dream-v0-Instruct-7B"),
        ),
        Family(
            "mdlm",
            "itdd_cli.models.mdlm:MDLMAdapter",
            "MDLM's DiT, time input 0, mask logit suppressed; GPT-2 tokenizer by default (no remote code)",
            ("kuleshov-group/mdlm-owt", "kuleshov-group/mdlm-no_flashattn-fp32-owt"),
        ),
        Family(
            "sdar",
            "itdd_cli.models.sdar:SDARAdapter",
            "SDAR and TraDo block diffusion, as a Qwen3 with a block-causal mask; block size from config.json",
            ("JetLM/SDAR-1.7B-Chat", "JetLM/SDAR-8B-Chat", "Gen-Verse/TraDo-8B-Instruct"),
        ),
        Family(
            "llada2",
            "itdd_cli.models.llada2:LLaDA2Adapter",
            "LLaDA 2.0/2.1 block diffusion (block 32) on a Ling MoE, as GLM-4 MoE with Ling's weight names",
            ("inclusionAI/LLaDA2.0-mini", "inclusionAI/LLaDA2.0-flash", "inclusionAI/LLaDA2.1-mini"),
        ),
        Family(
            "fast-dllm-v2",
            "itdd_cli.models.sdar:FastDLLMv2Adapter",
            "Fast-dLLM v2 block diffusion (block 32), as a Qwen2.5 with shifted logits",
            ("Efficient-Large-Model/Fast_dLLM_v2_7B", "Efficient-Large-Model/Fast_dLLM_v2_1.5B"),
        ),
        Family(
            "bd3lm",
            "itdd_cli.models.bd3lm:BD3LMAdapter",
            "BD3-LM block diffusion: MDLM's DiT with a block-causal mask; GPT-2 tokenizer by default",
            ("kuleshov-group/bd3lm-owt-block_size4", "kuleshov-group/bd3lm-owt-block_size16"),
        ),
        Family(
            "llada-moe",
            "itdd_cli.models.moe:LLaDAMoEAdapter",
            "LLaDA-MoE, as a bidirectional Qwen3-MoE (softmax top-k routing, no renormalisation)",
            ("inclusionAI/LLaDA-MoE-7B-A1B-Base", "inclusionAI/LLaDA-MoE-7B-A1B-Instruct"),
        ),
        Family(
            "rnd1",
            "itdd_cli.models.moe:RND1Adapter",
            "RND1, as a bidirectional Qwen3-MoE with shifted logits",
            ("radicalnumerics/RND1-Base-0910",),
        ),
        Family(
            "generic",
            "itdd_cli.models.generic:MaskedLMAdapter",
            "any AutoModelForMaskedLM checkpoint (BERT-style diffusion LMs; custom classes "
            "through auto_map with --trust-remote-code)",
            ("answerdotai/ModernBERT-base", "dllm-collection/ModernBERT-large-chat-v0.1"),
        ),
    ]
}


# What config.json says, lower-cased, mapped to the family that reads that format.
MODEL_TYPES = {
    "llada": "llada",
    "mmada": "llada",
    "dream": "dream",
    "mdlm": "mdlm",
    "sdar": "sdar",
    "llada2_moe": "llada2",
    "bd3lm": "bd3lm",
    "rnd1": "rnd1",
}
# Read before the model type: LLaDA-MoE's config.json says model_type "llada", like dense LLaDA.
ARCHITECTURES = {
    "lladamodellm": "llada",
    "mmadamodellm": "llada",
    "dreammodel": "dream",
    "mdlm": "mdlm",
    "lladamoemodellm": "llada-moe",
    "sdarforcausallm": "sdar",
    "llada2moemodellm": "llada2",
    "fast_dllm_qwenforcausallm": "fast-dllm-v2",
    "bd3lm": "bd3lm",
    "rnd1lm": "rnd1",
}
AUTO_MAP_MODULES = {"llada": "llada", "dream": "dream", "mdlm": "mdlm", "sdar": "sdar", "llada2_moe": "llada2",
                    "lladamoe": "llada-moe", "bd3lm": "bd3lm", "rnd": "rnd1"}  # fmt: skip


def detect_family(config: dict[str, Any]) -> str:
    """The family whose format `config` matches; the generic adapter when none claims it."""
    for architecture in config.get("architectures") or []:
        if str(architecture).lower() in ARCHITECTURES:
            return ARCHITECTURES[str(architecture).lower()]
    model_type = str(config.get("model_type", "")).lower()
    if model_type in MODEL_TYPES:
        return MODEL_TYPES[model_type]
    for target in (config.get("auto_map") or {}).values():
        module = str(target).split(".")[0].lower()  # e.g. "modeling_llada.LLaDAModelLM"
        for suffix, family in AUTO_MAP_MODULES.items():
            if module.endswith(suffix):
                return family
    return "generic"


def load_model(options: LoadOptions) -> ScoringModel:
    config = read_config(options)
    refuse_pickle_only(options)
    name = options.family or detect_family(config)
    if name not in FAMILIES:
        raise UsageError(f"--family {name!r}: unknown; choose one of {', '.join(FAMILIES)}")
    quiet_transformers()
    module_name, class_name = FAMILIES[name].adapter.split(":")
    adapter = getattr(importlib.import_module(module_name), class_name)
    model: ScoringModel = adapter(options, config)
    return model
