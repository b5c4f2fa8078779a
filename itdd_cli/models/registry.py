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
            "generic",
            "itdd_cli.models.generic:MaskedLMAdapter",
            "any AutoModelForMaskedLM checkpoint (BERT-style diffusion LMs; custom classes "
            "through auto_map with --trust-remote-code)",
            ("answerdotai/ModernBERT-base", "dllm-collection/ModernBERT-large-chat-v0.1"),
        ),
    ]
}


# What config.json says, lower-cased, mapped to the family that reads that format.
MODEL_TYPES = {"llada": "llada", "mmada": "llada", "dream": "dream", "mdlm": "mdlm"}
ARCHITECTURES = {"lladamodellm": "llada", "mmadamodellm": "llada", "dreammodel": "dream", "mdlm": "mdlm"}


def detect_family(config: dict[str, Any]) -> str:
    """The family whose format `config` matches; the generic adapter when none claims it."""
    model_type = str(config.get("model_type", "")).lower()
    if model_type in MODEL_TYPES:
        return MODEL_TYPES[model_type]
    for architecture in config.get("architectures") or []:
        if str(architecture).lower() in ARCHITECTURES:
            return ARCHITECTURES[str(architecture).lower()]
    for target in (config.get("auto_map") or {}).values():
        module = str(target).split(".")[0].lower()  # e.g. "modeling_llada.LLaDAModelLM"
        for family in ("llada", "dream", "mdlm"):
            if module.endswith(family):
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
