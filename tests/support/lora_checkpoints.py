"""LoRA adapters saved by peft for the tiny published-layout checkpoints of tests/family_checkpoints.py,
and the full-weight checkpoint that merging them by hand gives (the answer itdd must reproduce).

peft needs a torch module carrying the published names, so `mirror` builds one from the checkpoint's
own tensors: a linear layer for every 2-D `.weight` outside the embeddings. It computes nothing; peft
only wraps and saves it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

EMBEDDINGS = ("wte.weight", "embed_tokens.weight")


def mirror(checkpoint: Path, extra: tuple[str, ...] = ()) -> torch.nn.Module:
    """Modules named as the checkpoint's tensors; `extra` adds linear layers the base lacks (their paths)."""
    shapes = {key: tuple(t.shape) for key, t in load_file(str(checkpoint / "model.safetensors")).items()}
    shapes |= {f"{path}.weight": (8, 8) for path in extra}
    root = torch.nn.Module()
    for key, shape in shapes.items():
        *path, leaf = key.split(".")
        linear = leaf == "weight" and len(shape) == 2 and not key.endswith(EMBEDDINGS)
        if leaf == "bias":  # Dream's q/k/v biases: the mirror's layers need none
            continue
        parent = root
        for part in path[:-1] if linear else path:
            if not hasattr(parent, part):
                parent.add_module(part, torch.nn.Module())
            parent = getattr(parent, part)
        if linear:
            parent.add_module(path[-1], torch.nn.Linear(shape[1], shape[0], bias=False))
        else:
            parent.register_parameter(leaf, torch.nn.Parameter(torch.zeros(shape)))
    return root


def write_adapter(checkpoint: Path, directory: Path, targets: list[str], *, r: int = 4, alpha: float = 8,
                  seed: int = 0, extra: tuple[str, ...] = (), base: str | None = None, safe_serialization: bool = True,
                  **settings) -> Path:  # fmt: skip
    """A LoRA on `targets` saved by peft, every A and B random (B nonzero, else the adapter is a no-op)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, init_lora_weights=False, **settings)
    module = mirror(checkpoint, extra)
    module.name_or_path = base or str(checkpoint)  # what peft writes as base_model_name_or_path
    model = get_peft_model(module, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.save_pretrained(str(directory), safe_serialization=safe_serialization)
    return directory


def write_merged(checkpoint: Path, adapter: Path, directory: Path) -> Path:
    """The checkpoint with W + (alpha/r)·B·A written into its published tensors (modules_to_save copied)."""
    config = json.loads((adapter / "adapter_config.json").read_text())

    def factor(path: str) -> float:  # a rank_pattern key names the module by its last parts (peft's rule)
        patterns = config.get("rank_pattern") or {}
        r = next((v for k, v in patterns.items() if re.search(rf"(^|\.){k}$", path)), config["r"])
        return config["lora_alpha"] / (r**0.5 if config.get("use_rslora") else r)

    weights = load_file(str(checkpoint / "model.safetensors"))
    lora = {key.removeprefix("base_model.model."): t for key, t in
            load_file(str(adapter / "adapter_model.safetensors")).items()}  # fmt: skip
    for key, tensor in lora.items():
        if key.endswith(".lora_A.weight"):
            path = key.removesuffix(".lora_A.weight")
            b = lora[f"{path}.lora_B.weight"].double()
            update = factor(path) * b @ tensor.double()
            weights[f"{path}.weight"] = (weights[f"{path}.weight"].double() + update).float()
        elif ".lora_" not in key:
            weights[key] = tensor.clone()
    shutil.copytree(checkpoint, directory)
    save_file(weights, str(directory / "model.safetensors"))
    return directory
