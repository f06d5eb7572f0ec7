"""Framework backends, loaded lazily by name so that importing featgen imports no framework."""

from __future__ import annotations

import importlib
from functools import cache

from ..errors import FeatgenError, suggest
from ..limits import short
from .base import Backend, ForwardResult

BACKENDS = {"torch": "featgen.backends.torch", "tensorflow": "featgen.backends.tensorflow"}
ALIASES = {"pytorch": "torch", "tf": "tensorflow", "keras": "tensorflow"}

__all__ = ["Backend", "ForwardResult", "get_backend", "resolve_device", "BACKENDS", "PRECISIONS"]


def canonical_name(name: str) -> str:
    """``"tf"`` → ``"tensorflow"`` etc.; raises a FeatgenError for unknown names."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BACKENDS:
        raise FeatgenError(f"unknown backend {short(name)}: choose one of {', '.join(BACKENDS)}.{suggest(name, BACKENDS)}")
    return key


PRECISIONS = ("float32", "float64", "bfloat16")


def resolve_device(name: str, device: str | None) -> str:
    """The device a backend named ``name`` runs on for ``device``: ``"auto"`` (or None) becomes its
    GPU if it sees one, else ``"cpu"``; any other name is returned as it is. Imports the framework."""
    if device not in (None, "auto"):
        return device
    key = canonical_name(name)
    try:
        module = importlib.import_module(BACKENDS[key])
    except ImportError:
        return "cpu"  # the render itself will say what to install
    return module.default_device()


@cache
def get_backend(name: str = "torch", device: str | None = None, precision: str = "float32") -> Backend:
    """Return the backend instance for ``name`` (``"torch"`` or ``"tensorflow"``) on ``device``,
    computing in ``precision``: ``"float32"``, ``"float64"``, or ``"bfloat16"`` (torch: the network
    under bf16 autocast, meant for CUDA GPUs; parameters and optimizer state stay float32)."""
    key = canonical_name(name)
    if precision not in PRECISIONS:
        raise FeatgenError(f"unknown precision {precision!r}: choose float32 (default), float64 or bfloat16."
                           f"{suggest(str(precision), PRECISIONS)}")  # fmt: skip
    if precision == "bfloat16" and key != "torch":
        raise FeatgenError("precision bfloat16 is a torch option (autocast on a CUDA GPU); use float32 with tensorflow.")
    try:
        module = importlib.import_module(BACKENDS[key])
    except ImportError as exc:
        if exc.name == BACKENDS[key]:
            raise FeatgenError(f"the {key} backend is not part of this featgen version yet; use backend='torch'.") from None
        extra = "torch" if key == "torch" else "tensorflow"
        raise FeatgenError(
            f"the {key} backend needs {exc.name or key}, which is not installed: pip install 'featgen[{extra}]'"
        ) from exc
    return module.make_backend(device, precision)
