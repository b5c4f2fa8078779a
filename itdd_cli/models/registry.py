"""Families by name, resolved lazily ("module:Class"), and detection from config.json."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.models.base import ScoringModel
from itdd_cli.models.loading import LoadOptions, quiet_transformers, read_config


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
            "generic",
            "itdd_cli.models.generic:MaskedLMAdapter",
            "any AutoModelForMaskedLM checkpoint (BERT-style diffusion LMs; custom classes "
            "through auto_map with --trust-remote-code)",
            ("answerdotai/ModernBERT-base", "dllm-collection/ModernBERT-large-chat-v0.1"),
        ),
    ]
}


def detect_family(config: dict[str, Any]) -> str:
    """The family whose format `config` matches; the generic adapter when none claims it."""
    return "generic"


def load_model(options: LoadOptions) -> ScoringModel:
    config = read_config(options)
    name = options.family or detect_family(config)
    if name not in FAMILIES:
        raise UsageError(f"--family {name!r}: unknown; choose one of {', '.join(FAMILIES)}")
    quiet_transformers()
    module_name, class_name = FAMILIES[name].adapter.split(":")
    adapter = getattr(importlib.import_module(module_name), class_name)
    model: ScoringModel = adapter(options, config)
    return model
