"""Model adapters: the only package that imports transformers or knows a family's quirks."""

from itdd_cli.models.base import Framed, ModelInfo, ScoringModel
from itdd_cli.models.loading import LoadOptions
from itdd_cli.models.registry import FAMILIES, detect_family, load_model

__all__ = ["FAMILIES", "Framed", "LoadOptions", "ModelInfo", "ScoringModel", "detect_family", "load_model"]
