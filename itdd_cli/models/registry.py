"""The family registry: one `Family` per checkpoint format, detection derived from it, and `load_model`.

Adding a family is one `Family(...)` entry below plus its adapter module (docs/adding-a-family.md):

    Family(
        name="llada",                               # what --family takes and ModelInfo.family says
        adapter="itdd_cli.models.llada:LLaDAAdapter",  # "module:Class", imported only when used;
                                                    # built as Class(options, config) -> ScoringModel
        description="…", examples=("org/name", …),  # what `itdd models` lists
        model_types=("llada", "mmada"),             # config.json "model_type" values it reads
        architectures=("LLaDAModelLM",),            # config.json "architectures" entries
        auto_map_modules=("modeling_llada",),       # module names in config.json "auto_map"
    )

Claims are compared case-insensitively, and a value may be claimed by one family only (checked
at import). Detection tries the most specific evidence first: an architecture name, then the
model type, then the modules of `auto_map`, then the config's shape (`sections`: SEDD's hydra
config names no model type); a config that no family claims goes to `generic`.
This module imports no adapter (each one is imported when its family is loaded) and no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itdd_cli.bundled import bundled_path
from itdd_cli.errors import ModelError, UsageError

if TYPE_CHECKING:  # imported when a model loads, so that listing the families needs no torch
    from itdd_cli.models.base import ScoringModel
    from itdd_cli.models.loading import LoadOptions

FALLBACK = "generic"


@dataclass(frozen=True)
class Family:
    name: str
    adapter: str  # "module:Class", imported only when used
    description: str
    examples: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    auto_map_modules: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()  # a config.json with no model type whose top level holds all these objects

    def build(self, options: LoadOptions, config: dict[str, Any]) -> ScoringModel:
        module_name, class_name = self.adapter.split(":")
        adapter = getattr(importlib.import_module(module_name), class_name)
        model: ScoringModel = adapter(options, config)
        return model


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        Family(
            "llada",
            "itdd_cli.models.llada:LLaDAAdapter",
            "LLaDA, LLaDA-1.5, iLLaDA and MMaDA's text model, as a bidirectional Llama (no remote code)",
            ("GSAI-ML/LLaDA-8B-Base", "GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-1.5"),
            model_types=("llada", "mmada"),
            architectures=("LLaDAModelLM", "MMadaModelLM"),
            auto_map_modules=("configuration_llada", "modeling_llada"),
        ),
        Family(
            "dream",
            "itdd_cli.models.dream:DreamAdapter",
            "Dream, Dream-Coder and DiffuCoder, as a bidirectional Qwen2 with shifted logits (no remote code)",
            ("Dream-org/Dream-v0-Base-7B", "Dream-org/Dream-v0-Instruct-7B"),
            model_types=("dream",),
            architectures=("DreamModel",),
            auto_map_modules=("configuration_dream", "modeling_dream", "tokenization_dream"),
        ),
        Family(
            "mdlm",
            "itdd_cli.models.mdlm:MDLMAdapter",
            "MDLM's DiT, time input 0, mask logit suppressed; the checkpoint's tokenizer, else GPT-2's "
            "(no remote code)",
            ("kuleshov-group/mdlm-owt", "kuleshov-group/mdlm-no_flashattn-fp32-owt"),
            model_types=("mdlm",),
            architectures=("MDLM",),
            auto_map_modules=("configuration_mdlm", "modeling_mdlm", "modeling_mdlm_2"),
        ),
        Family(
            "sdar",
            "itdd_cli.models.sdar:SDARAdapter",
            "SDAR and TraDo block diffusion, as a Qwen3 with a block-causal mask; block size from config.json",
            ("JetLM/SDAR-1.7B-Chat", "JetLM/SDAR-8B-Chat", "Gen-Verse/TraDo-8B-Instruct"),
            model_types=("sdar",),
            architectures=("SDARForCausalLM",),
            auto_map_modules=("configuration_sdar", "modeling_sdar"),
        ),
        Family(
            "llada2",
            "itdd_cli.models.llada2:LLaDA2Adapter",
            "LLaDA 2.0/2.1 block diffusion (block 32) on a Ling MoE, as GLM-4 MoE with Ling's weight names",
            ("inclusionAI/LLaDA2.0-mini", "inclusionAI/LLaDA2.0-flash", "inclusionAI/LLaDA2.1-mini"),
            model_types=("llada2_moe",),
            architectures=("LLaDA2MoeModelLM",),
            auto_map_modules=("configuration_llada2_moe", "modeling_llada2_moe"),
        ),
        Family(
            "fast-dllm-v2",
            "itdd_cli.models.sdar:FastDLLMv2Adapter",
            "Fast-dLLM v2 block diffusion (block 32), as a Qwen2.5 with shifted logits",
            ("Efficient-Large-Model/Fast_dLLM_v2_7B", "Efficient-Large-Model/Fast_dLLM_v2_1.5B"),
            model_types=("fast_dllm_qwen",),
            architectures=("Fast_dLLM_QwenForCausalLM",),
        ),
        Family(
            "bd3lm",
            "itdd_cli.models.bd3lm:BD3LMAdapter",
            "BD3-LM block diffusion: MDLM's DiT with a block-causal mask; GPT-2 tokenizer by default",
            ("kuleshov-group/bd3lm-owt-block_size4", "kuleshov-group/bd3lm-owt-block_size16"),
            model_types=("bd3lm",),
            architectures=("BD3LM",),
            auto_map_modules=("configuration_bd3lm", "modeling_bd3lm"),
        ),
        Family(
            "llada-moe",
            "itdd_cli.models.moe:LLaDAMoEAdapter",
            "LLaDA-MoE, as a bidirectional Qwen3-MoE (softmax top-k routing, no renormalisation); "
            "its model_type is 'llada', so its architecture decides",
            ("inclusionAI/LLaDA-MoE-7B-A1B-Base", "inclusionAI/LLaDA-MoE-7B-A1B-Instruct"),
            architectures=("LLaDAMoEModelLM",),
            auto_map_modules=("configuration_lladamoe", "modeling_lladamoe"),
        ),
        Family(
            "rnd1",
            "itdd_cli.models.moe:RND1Adapter",
            "RND1, as a bidirectional Qwen3-MoE with shifted logits",
            ("radicalnumerics/RND1-Base-0910",),
            model_types=("rnd1",),
            architectures=("RND1LM",),
            auto_map_modules=("configuration_rnd", "modeling_rnd"),
        ),
        Family(
            "sedd",
            "itdd_cli.models.sedd:SEDDAdapter",
            "SEDD score-entropy models (absorbing or uniform graph), MDLM's DiT on σ; config.json is the hydra "
            "config; GPT-2 tokenizer by default; --estimator dse (no remote code)",
            ("louaaron/sedd-small", "louaaron/sedd-medium"),
            sections=("graph", "noise", "model"),
        ),
        Family(
            FALLBACK,
            "itdd_cli.models.generic:MaskedLMAdapter",
            "any AutoModelForMaskedLM checkpoint (BERT-style diffusion LMs; custom classes "
            "through auto_map with --trust-remote-code)",
            ("answerdotai/ModernBERT-base", "dllm-collection/ModernBERT-large-chat-v0.1"),
        ),
    ]
}


def _claims(attribute: str) -> dict[str, str]:
    """value (lower-cased) → the family that claims it, for one kind of claim; a value claimed twice is a bug."""
    owners: dict[str, str] = {}
    for family in FAMILIES.values():
        for value in getattr(family, attribute):
            key = value.lower()
            if key in owners:
                raise AssertionError(f"{attribute} {value!r} is claimed by both {owners[key]} and {family.name}")
            owners[key] = family.name
    return owners


CLAIMS = {attribute: _claims(attribute) for attribute in ("architectures", "model_types", "auto_map_modules")}


def _auto_map_modules(config: dict[str, Any]) -> Iterable[str]:
    """The module names in `auto_map`: `modeling_llada` from "modeling_llada.LLaDAModelLM",
    "org/repo--modeling_llada.LLaDAModelLM" or a [slow, fast] tokenizer pair."""
    for target in (config.get("auto_map") or {}).values():
        for entry in target if isinstance(target, list) else [target]:
            if isinstance(entry, str):
                yield entry.rpartition("--")[2].split(".")[0]


def detect_family(config: dict[str, Any]) -> str:
    """The family whose format `config` matches; the generic adapter when none claims it."""
    evidence = {
        "architectures": [str(name) for name in config.get("architectures") or []],
        "model_types": [str(config.get("model_type", ""))],
        "auto_map_modules": list(_auto_map_modules(config)),
    }
    for attribute, values in evidence.items():
        for value in values:
            family = CLAIMS[attribute].get(value.lower())
            if family is not None:
                return family
    for family in FAMILIES.values():  # no claim by name: a config shaped like the family's (SEDD's hydra config)
        if family.sections and all(isinstance(config.get(key), dict) for key in family.sections):
            return family.name
    return FALLBACK


def resolve_bundled(options: LoadOptions) -> LoadOptions:
    """A bundled model's name (`demo`, `dna8`) as --model or --tokenizer means its directory."""
    model = bundled_path(options.model)
    tokenizer = bundled_path(options.tokenizer) if options.tokenizer else None
    return replace(
        options,
        model=str(model) if model else options.model,
        tokenizer=str(tokenizer) if tokenizer else options.tokenizer,
    )


def check_family(name: str) -> str:
    """A family name this registry knows (--family, or lm-eval's model arg), else a usage error."""
    if name not in FAMILIES:
        raise UsageError(f"--family {name!r}: unknown; choose one of {', '.join(FAMILIES)}")
    return name


def load_model(options: LoadOptions) -> ScoringModel:
    """Read config.json, pick the family (or --family), build its adapter, check the tokenizer fits;
    a LoRA adapter directory loads its base this way, then applies itself (models/lora.py)."""
    from itdd_cli.models.base import check_vocabulary
    from itdd_cli.models.loading import hub_adapter, quiet_transformers, read_config, refuse_pickle_only
    from itdd_cli.models.lora_config import is_adapter

    options = resolve_bundled(options)
    if is_adapter(options.model) or hub_adapter(options):
        from itdd_cli.models.lora import load_adapter

        return load_adapter(options)
    if options.base and not _same(options.base, options.model):  # a study may list the base beside its adapters
        raise UsageError(f"--base {options.base}: {options.model} is not a LoRA adapter directory (it has no "
                         "adapter_config.json), so it has no base to replace")  # fmt: skip
    config = read_config(options)
    refuse_pickle_only(options)
    name = check_family(options.family or detect_family(config))
    quiet_transformers()
    model = _built(FAMILIES[name], options, config)
    check_vocabulary(model, options)
    return model


def _same(first: str, second: str) -> bool:
    """The same checkpoint: equal names, or the same local directory however it is spelt."""
    return first == second or (Path(first).is_dir() and Path(first).resolve() == Path(second).resolve())


def _built(family: Family, options: LoadOptions, config: dict[str, Any]) -> ScoringModel:
    """The adapter; a damaged weights file or an ill-typed config.json value is the checkpoint's fault."""
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    try:
        return family.build(options, config)
    except SafetensorError as error:
        raise ModelError(f"cannot load {options.model}: a weights file is damaged or incomplete ({error}); "
                         "download or copy it again") from error  # fmt: skip
    except StrictDataclassError as error:
        cause = error.__cause__ or error
        raise ModelError(f"cannot load {options.model}: config.json has an invalid value: {cause}") from error
