"""Model adapters: the only package that imports transformers or knows a family's quirks.

Names are imported on first use (PEP 562), so that `itdd models` can read the registry
without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from itdd_cli.models.base import Framed, ModelInfo, ScoringModel
    from itdd_cli.models.loading import LoadOptions
    from itdd_cli.models.registry import FAMILIES, detect_family, load_model

_HOMES = {
    "Framed": "base",
    "ModelInfo": "base",
    "ScoringModel": "base",
    "LoadOptions": "loading",
    "FAMILIES": "registry",
    "detect_family": "registry",
    "load_model": "registry",
}
__all__ = ["FAMILIES", "Framed", "LoadOptions", "ModelInfo", "ScoringModel", "detect_family", "load_model"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"itdd_cli.models.{_HOMES[name]}"), name)
