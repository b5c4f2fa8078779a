"""A LoRA adapter directory's adapter_config.json (peft's format): read, and refused where itdd would
score something other than what peft runs.

Only plain LoRA is applied (W' = W + s·B·A with s = alpha/r, or alpha/√r for rsLoRA). Every other
setting that changes the forward pass or the base weights (DoRA, trained biases, weights that PiSSA-style
initialisations subtract from the base, …) is refused, naming the setting; a setting this module does not
know is refused too unless it is unset, so a newer peft option is never silently ignored. No torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itdd_cli.errors import ModelError

CONFIG_FILE = "adapter_config.json"

# Settings that do not change the trained adapter's forward pass at inference (dropout, bookkeeping,
# which modules were targeted: the saved tensors say that), whatever their value.
IGNORED = {
    "peft_type", "base_model_name_or_path", "revision", "task_type", "inference_mode", "auto_mapping",
    "peft_version", "r", "lora_alpha", "lora_dropout", "use_rslora", "target_modules", "exclude_modules",
    "layers_to_transform", "layers_pattern", "rank_pattern", "modules_to_save", "megatron_core",
    "qalora_group_size", "init_lora_weights", "eva_config", "ensure_weight_tying",
}  # fmt: skip
# init_lora_weights values that leave the base weights as they were (others subtract from them).
PLAIN_INITS = (True, False, "gaussian", "eva", "orthogonal")


@dataclass(frozen=True)
class AdapterInfo:
    """What `itdd inspect` shows of an adapter."""

    base: str
    ranks: tuple[int, ...]  # the distinct ranks of the adapted layers (one unless rank_pattern)
    alpha: float
    rslora: bool
    targets: tuple[str, ...]  # the adapted modules' own names (q_proj, …), in the adapter's naming
    layers: int  # adapted linear layers
    saved: tuple[str, ...]  # modules_to_save whose full weights replace the base's
    merged: bool

    def describe_rank(self) -> str:
        return "/".join(str(rank) for rank in self.ranks)


def is_adapter(model: str) -> bool:
    return Path(model, CONFIG_FILE).is_file()


def read_adapter_config(directory: str) -> dict[str, Any]:
    """adapter_config.json as a dict, checked: a plain LoRA with settings itdd applies, else ModelError."""
    path = Path(directory, CONFIG_FILE)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"{directory}: cannot read {CONFIG_FILE}: {error}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{directory}: {CONFIG_FILE} is not a JSON object")
    check_adapter_config(config, directory)
    return config


def check_adapter_config(config: dict[str, Any], directory: str) -> None:
    where = f"{directory}: {CONFIG_FILE}"
    kind = config.get("peft_type")
    if kind != "LORA":
        raise ModelError(f"{where} has peft_type {kind!r}; itdd applies LoRA adapters only (peft_type 'LORA')")
    for key in ("r", "lora_alpha"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ModelError(f"{where}: {key} must be a positive number, got {value!r}")
    refused = {
        "use_dora": "DoRA rescales each weight's columns, which plain LoRA does not",
        "bias": "trained biases of the base layers",
        "lora_bias": "a bias on the LoRA B matrix",
        "fan_in_fan_out": "transposed (Conv1D) weights",
        "alpha_pattern": "per-module alphas",
    }
    for key, why in refused.items():
        value = config.get(key)
        if value not in (None, False, "none", {}):
            raise ModelError(f"{where} sets {key}={json.dumps(value)} ({why}): not supported; only plain LoRA "
                             "adapters are applied")  # fmt: skip
    init = config.get("init_lora_weights", True)
    if init not in PLAIN_INITS:
        raise ModelError(f"{where} sets init_lora_weights={json.dumps(init)}, which changes the base weights the "
                         "adapter applies to: not supported (convert it to a plain LoRA with peft first)")  # fmt: skip
    for key, value in config.items():
        if key not in IGNORED and key not in refused and value not in (None, False, {}, [], ""):
            raise ModelError(f"{where} sets {key}={json.dumps(value)}: a peft option itdd does not apply, so the "
                             "adapter is refused rather than scored without it")  # fmt: skip
    saved = config.get("modules_to_save") or []
    if not isinstance(saved, list) or not all(isinstance(name, str) for name in saved):
        raise ModelError(f"{where}: modules_to_save must be a list of module names")


def base_of(config: dict[str, Any], directory: str, override: str | None) -> str:
    """--base if given, else the base named in adapter_config.json."""
    base = override or config.get("base_model_name_or_path")
    if not base or not isinstance(base, str):
        raise ModelError(f"{directory}: {CONFIG_FILE} names no base_model_name_or_path; pass --base MODEL")
    if is_adapter(base):
        raise ModelError(f"{directory}: its base {base} is itself an adapter directory; pass --base with the "
                         "full checkpoint it was trained on")  # fmt: skip
    from itdd_cli.models.loading import looks_local  # torch; this module stays free of it

    if override is None and looks_local(base) and not Path(base).expanduser().is_dir():
        raise ModelError(f"{directory}: the base its {CONFIG_FILE} names, {base}, is not a directory here (a relative "
                         "path is read from the current directory, as peft does); pass --base MODEL")  # fmt: skip
    return base


def scale(config: dict[str, Any], rank: int) -> float:
    """peft's LoRA scaling: alpha/r, or alpha/√r with rsLoRA; r is the layer's own rank."""
    alpha = float(config["lora_alpha"])
    return alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
