"""Weights loaded strictly: every tensor of the checkpoint is used, and every parameter comes from it.

transformers initialises missing or mis-shaped tensors at random and drops unexpected ones, with
at most a log line, so a damaged checkpoint or a config.json that disagrees with it would score
with random weights. Here each of them is an error naming the tensors, in the checkpoint's own
names where a family renames them on load.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from itdd_cli.errors import ModelError
from itdd_cli.models.loading import LoadOptions

LISTED = 4  # tensor names shown per kind of problem; the rest are counted
Renamer = Callable[[str], str]  # a model's tensor name → the checkpoint's own name for it
Shape = tuple[int, ...]
Mismatch = tuple[str, Shape, Shape]  # (name, shape in the file, shape config.json implies)


def load_pretrained(model_class: Any, options: LoadOptions, what: str, rename: Renamer | None = None,
                    **kwargs: Any) -> Any:  # fmt: skip
    """`model_class.from_pretrained(options.model)` on the chosen device, every tensor accounted for
    (`rename` maps the model's names back to the checkpoint's own in the error)."""
    try:
        model, report = model_class.from_pretrained(
            options.model,
            dtype=options.torch_dtype,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported below with names and shapes, not "see the above report"
            **options.weights_kwargs(),
            **options.hub_kwargs(),
            **options.placement_kwargs(),
            **kwargs,
        )
    except Exception as error:  # transformers raises many types; all mean "cannot load"
        if odd := odd_experts(Path(options.model)):  # transformers' own message points at a log line
            raise ModelError(f"{options.model}: the weights do not match — mis-shaped: {_listed(odd)}") from error
        raise ModelError(f"cannot load {options.model} as {what}: {error}") from error
    mismatched = [(name, tuple(stored), tuple(expected)) for name, stored, expected in report["mismatched_keys"]]
    refuse_weight_mismatch(options.model, report["missing_keys"], report["unexpected_keys"], mismatched, rename)
    return options.place(model)


def refuse_weight_mismatch(model: str, missing: Iterable[str], unexpected: Iterable[str],
                           mismatched: Iterable[Mismatch], rename: Renamer | None = None) -> None:  # fmt: skip
    """ModelError naming the tensors the checkpoint lacks, has in excess, or holds in another shape."""
    name = rename or (lambda key: key)
    problems = []
    for kind, keys in (("missing from the checkpoint", missing), ("in the checkpoint, not the model", unexpected)):
        if names := sorted(name(key) for key in keys):
            problems.append(f"{kind}: {_listed(names)}")
    if shapes := sorted(mismatched):
        described = [f"{name(key)} is {_shape(stored)} in the checkpoint, {_shape(wanted)} by config.json"
                     for key, stored, wanted in shapes]  # fmt: skip
        problems.append(f"mis-shaped: {_listed(described)}")
    if problems:
        raise ModelError(f"{model}: the weights do not match config.json — {'; '.join(problems)}")


# A per-expert tensor of an MoE checkpoint: transformers stacks experts.0 … experts.N-1 into one.
_EXPERT = re.compile(r"^(.*\.experts\.)(\d+)(\..+)$")


def odd_experts(directory: Path) -> list[str]:
    """Per-expert tensors whose shape differs from their sibling experts' (read from the
    safetensors headers only), which transformers cannot stack and reports without a name."""
    if not directory.is_dir():
        return []
    from safetensors import safe_open

    groups: dict[tuple[str, str], dict[str, Shape]] = {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():
                if match := _EXPERT.match(key):
                    groups.setdefault((match[1], match[3]), {})[key] = tuple(handle.get_slice(key).get_shape())
    odd = []
    for shapes in groups.values():
        common = Counter(shapes.values()).most_common(1)[0][0]
        odd += [f"{key} is {_shape(shape)}, the other experts' {_shape(common)}"
                for key, shape in sorted(shapes.items()) if shape != common]  # fmt: skip
    return odd


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def _shape(shape: Shape) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"
