"""-m ADAPTER_DIR: a peft LoRA adapter applied to its base, loaded through the base's own family.

The adapter's tensors are named after the model it was trained on — a family's published modeling
code (LLaDA: model.transformer.blocks.N.q_proj), not itdd's native classes — so each name goes
through the family's weight-name mapping, as the base checkpoint's own tensors do. Every tensor must
land on a native linear layer of the right shape: an adapter that would be applied only in part (or
not at all) is refused, naming the tensors, since its scores would silently be the base's.

Merging (W' = W + s·B·A, in float32) is the default; --no-merge leaves the base weights alone and adds
s·B(A x) to each adapted layer's output instead (a forward hook). This module knows no family.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.lora_config import AdapterInfo, base_of, read_adapter_config, scale
from itdd_cli.models.weights import _listed, _shape

if TYPE_CHECKING:
    from itdd_cli.models.base import ScoringModel
    from itdd_cli.models.loading import LoadOptions

PREFIX = "base_model.model."  # peft's prefix on every saved key
_LORA = re.compile(r"^(.+)\.lora_([AB])\.weight$")


@dataclass
class Pair:
    """One adapted layer: its path in the adapter's naming and its two matrices."""

    path: str
    a: torch.Tensor | None = None  # (r, in)
    b: torch.Tensor | None = None  # (out, r)


def load_adapter(options: LoadOptions) -> ScoringModel:
    """The base (--base, else adapter_config.json's) loaded natively, the adapter applied to it."""
    from itdd_cli.models.loading import hub_adapter
    from itdd_cli.models.registry import load_model

    directory = hub_adapter(options) or options.model  # a hub id: its files in the cache
    config = read_adapter_config(directory)
    base = base_of(config, directory, options.base)
    pairs, saved = split(adapter_tensors(replace(options, model=directory)), config, directory)
    model = load_model(replace(options, model=base, base=None))
    module, mapping = _native(model, base)
    layers = _resolve(module, mapping, pairs, directory, base)
    replacements = _replacements(module, mapping, saved, directory, base)
    with torch.no_grad():
        for name, tensor in replacements.items():
            module.get_parameter(name).copy_(tensor)
        for linear, pair in layers:
            _apply(linear, pair, scale(config, pair.a.shape[0]), options.merge)  # type: ignore[union-attr]
    info = AdapterInfo(
        base=base,
        ranks=tuple(sorted({pair.a.shape[0] for _, pair in layers})),  # type: ignore[union-attr]
        alpha=float(config["lora_alpha"]),
        rslora=bool(config.get("use_rslora")),
        targets=tuple(sorted({pair.path.rsplit(".", 1)[-1] for _, pair in layers})),
        layers=len(layers),
        saved=tuple(config.get("modules_to_save") or ()),
        merged=options.merge,
    )
    model.info = replace(model.info, name=options.model, adapter=info)
    return model


def adapter_tensors(options: LoadOptions) -> dict[str, torch.Tensor]:
    """adapter_model.safetensors; the pickle adapter_model.bin only with --allow-pickle (tensors only)."""
    directory = Path(options.model)
    safe, pickled = directory / "adapter_model.safetensors", directory / "adapter_model.bin"
    try:
        if safe.is_file():
            from safetensors.torch import load_file

            return load_file(str(safe))
        if pickled.is_file():
            if not options.allow_pickle:
                raise ModelError(f"{directory} has only a pickle adapter (adapter_model.bin), which can run code "
                                 "when loaded — convert it to safetensors, or pass --allow-pickle if you trust "
                                 "the source")  # fmt: skip
            return dict(torch.load(pickled, map_location="cpu", weights_only=True))
    except ModelError:
        raise
    except Exception as error:  # a damaged file: one message
        raise ModelError(f"cannot read the adapter weights of {directory}: {error}") from error
    raise ModelError(f"{directory}: no adapter_model.safetensors next to its adapter_config.json")


def split(tensors: dict[str, torch.Tensor], config: dict[str, Any],
          directory: str) -> tuple[list[Pair], dict[str, torch.Tensor]]:  # fmt: skip
    """The LoRA pairs, and the full tensors of modules_to_save (keys without peft's prefix)."""
    pairs: dict[str, Pair] = {}
    saved: dict[str, torch.Tensor] = {}
    foreign = []
    kept = config.get("modules_to_save") or []
    for key, tensor in tensors.items():
        name = key.removeprefix(PREFIX)
        if match := _LORA.match(name):
            pair = pairs.setdefault(match[1], Pair(match[1]))
            setattr(pair, match[2].lower(), tensor)
        elif any(re.search(rf"(^|\.){re.escape(module)}\.[^.]+$", name) for module in kept):
            saved[name] = tensor
        else:
            foreign.append(key)
    if foreign:
        raise ModelError(f"{directory}: adapter tensors that are neither LoRA A/B matrices of linear layers "
                         f"nor modules_to_save: {_listed(sorted(foreign))} (LoRA on embeddings is not "
                         "supported)")  # fmt: skip
    lone = sorted(pair.path for pair in pairs.values() if pair.a is None or pair.b is None)
    if lone:
        raise ModelError(f"{directory}: LoRA layers with only one of lora_A / lora_B: {_listed(lone)}")
    for pair in pairs.values():
        a, b = pair.a, pair.b
        assert a is not None and b is not None
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise ModelError(f"{directory}: {pair.path}.lora_A is {_shape(tuple(a.shape))} and lora_B "
                             f"{_shape(tuple(b.shape))}, which do not multiply")  # fmt: skip
        if not config.get("rank_pattern") and a.shape[0] != config["r"]:
            raise ModelError(f"{directory}: {pair.path}.lora_A has rank {a.shape[0]}, adapter_config.json says "
                             f"r={config['r']}")  # fmt: skip
    if not pairs and not saved:
        raise ModelError(f"{directory}: the adapter holds no tensors")
    return list(pairs.values()), saved


def _native(model: ScoringModel, base: str) -> tuple[torch.nn.Module, dict[str, str]]:
    """The family's torch module and its checkpoint → native weight-name mapping."""
    module = getattr(model, "model", None)
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{base}: LoRA adapters are not supported for the {model.family} family")
    mapping = model.key_mapping() if hasattr(model, "key_mapping") else None
    return module, mapping or {}


def native_name(name: str, mapping: dict[str, str]) -> str:
    """A checkpoint tensor name in the native model's naming (the first pattern that matches)."""
    for pattern, replacement in mapping.items():
        renamed, count = re.subn(pattern, replacement, name)
        if count:
            return renamed
    return name


def _shared(module: torch.nn.Module) -> set[str]:
    """Names of parameters tied to another name (LLaDA's tied LM head): changing one changes both."""
    named = list(module.named_parameters(remove_duplicate=False))
    counts = Counter(id(parameter) for _, parameter in named)
    return {name for name, parameter in named if counts[id(parameter)] > 1}


def _resolve(module: torch.nn.Module, mapping: dict[str, str], pairs: list[Pair], directory: str,
             base: str) -> list[tuple[torch.nn.Linear, Pair]]:  # fmt: skip
    """Each pair's native linear layer; unmatched, mis-shaped or tied targets refused by name."""
    layers, unmatched, misshaped = [], [], []
    tied = _shared(module)
    for pair in sorted(pairs, key=lambda p: p.path):
        name = native_name(pair.path + ".weight", mapping)
        owner = name.removesuffix(".weight")
        try:
            linear = module.get_submodule(owner)
        except AttributeError:
            linear = None
        if not isinstance(linear, torch.nn.Linear) or name in tied:
            unmatched.append(pair.path)
            continue
        a, b = pair.a, pair.b
        assert a is not None and b is not None
        if a.shape[1] != linear.in_features or b.shape[0] != linear.out_features:
            wanted = (linear.out_features, linear.in_features)
            misshaped.append(f"{pair.path} is {_shape((b.shape[0], a.shape[1]))} in the adapter, "
                             f"{_shape(wanted)} in the base")  # fmt: skip
        layers.append((linear, pair))
    if unmatched:
        how = "not at all" if len(unmatched) == len(pairs) else "in part"
        raise ModelError(f"{directory}: {len(unmatched)} of its {len(pairs)} LoRA layers match no linear layer of "
                         f"the base {base}, so it would be applied {how}: {_listed(unmatched)}")  # fmt: skip
    if misshaped:
        raise ModelError(f"{directory} was not trained on the base {base} (other shapes or vocabulary): "
                         f"{_listed(misshaped)}; pass --base with the checkpoint it was trained on")  # fmt: skip
    return layers


def _replacements(module: torch.nn.Module, mapping: dict[str, str], saved: dict[str, torch.Tensor],
                  directory: str, base: str) -> dict[str, torch.Tensor]:  # fmt: skip
    """modules_to_save: native parameter name → the adapter's full tensor, each checked."""
    parameters = dict(module.named_parameters())
    tied = _shared(module)
    found, problems = {}, []
    for key, tensor in sorted(saved.items()):
        name = native_name(key, mapping)
        if name not in parameters or name in tied:
            problems.append(f"{key} matches no {'untied ' if name in tied else ''}weight of the base")
        elif tuple(tensor.shape) != tuple(parameters[name].shape):
            problems.append(f"{key} is {_shape(tuple(tensor.shape))} in the adapter, "
                            f"{_shape(tuple(parameters[name].shape))} in the base")  # fmt: skip
        else:
            found[name] = tensor
    if problems:
        raise ModelError(f"{directory}: its modules_to_save do not fit the base {base}: {_listed(problems)}")
    return found


def _apply(linear: torch.nn.Linear, pair: Pair, factor: float, merge: bool) -> None:
    weight = linear.weight
    if merge:  # in float64 (MPS has none) the merged weight is W + s·B·A rounded once
        wide = torch.float32 if weight.device.type == "mps" else torch.float64
        a, b = pair.a.to(weight.device, wide), pair.b.to(weight.device, wide)  # type: ignore[union-attr]
        weight.copy_((weight.to(wide) + factor * (b @ a)).to(weight.dtype))
        return
    a, b = pair.a.to(weight.device, weight.dtype), pair.b.to(weight.device, weight.dtype)  # type: ignore[union-attr]

    def added(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return output + factor * torch.nn.functional.linear(torch.nn.functional.linear(inputs[0], a), b)

    linear.register_forward_hook(added)
