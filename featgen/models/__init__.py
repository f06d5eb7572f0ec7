"""Model sources and the LoadedModel they yield."""

from .base import LayerInfo, LoadedModel, Normalization
from .registry import BUILTIN_MODELS, load_model, parse_spec

__all__ = ["LayerInfo", "LoadedModel", "Normalization", "BUILTIN_MODELS", "load_model", "parse_spec"]
