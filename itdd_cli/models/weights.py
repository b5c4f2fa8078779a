"""Weights loaded strictly: every tensor of the checkpoint is used, and every parameter comes from it.

transformers initialises missing or mis-shaped tensors at random and drops unexpected ones, with
at most a log line, so a damaged checkpoint or a config.json that disagrees with it would score
with random weights. Here each of them is an error naming the tensors, in the checkpoint's own
names where a family renames them on load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
        raise ModelError(f"cannot load {options.model} as {what}: {error}") from error
    mismatched = [(name, tuple(stored), tuple(expected)) for name, stored, expected in report["mismatched_keys"]]
    refuse_weight_mismatch(options.model, report["missing_keys"], report["unexpected_keys"], mismatched, rename)
    return options.place(model)


def refuse_weight_mismatch(model: str, missing: Iterable[str], unexpected: Iterable[str],
                           mismatched: Iterable[Mismatch], rename: Renamer | None = None) -> None:  # fmt: skip
    """ModelError naming the tensors the checkpoint lacks, has in excess, or holds in another shape."""
    name = rename or (lambda key: key)

    def listed(items: list[str]) -> str:
        more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
        return ", ".join(items[:LISTED]) + more

    problems = []
    for kind, keys in (("missing from the checkpoint", missing), ("in the checkpoint, not the model", unexpected)):
        if names := sorted(name(key) for key in keys):
            problems.append(f"{kind}: {listed(names)}")
    if shapes := sorted(mismatched):
        described = [f"{name(key)} is {_shape(stored)} in the checkpoint, {_shape(wanted)} by config.json"
                     for key, stored, wanted in shapes]  # fmt: skip
        problems.append(f"mis-shaped: {listed(described)}")
    if problems:
        raise ModelError(f"{model}: the weights do not match config.json — {'; '.join(problems)}")


def _shape(shape: Shape) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"
