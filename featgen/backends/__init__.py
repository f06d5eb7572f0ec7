"""Framework backends, loaded lazily by name so that importing featgen imports no framework.

Devices and precisions are named once here. A name is checked without a framework
(:func:`device_error`), and ``"auto"`` is resolved once, by :func:`get_backend`, into the value the
backend owns (``backend.device``, ``backend.precision``): everything after reads it from there.
"""

from __future__ import annotations

import importlib
import re
from functools import cache

from ..errors import FeatgenError, suggest
from ..limits import short
from .base import Backend, ForwardResult

BACKENDS = {"torch": "featgen.backends.torch", "tensorflow": "featgen.backends.tensorflow"}
ALIASES = {"pytorch": "torch", "tf": "tensorflow", "keras": "tensorflow"}

__all__ = ["Backend", "ForwardResult", "get_backend", "resolve_device", "resolve_precision", "check_device",
           "device_error", "BACKENDS", "PRECISIONS", "DEVICE_NAMES"]  # fmt: skip


def canonical_name(name: str) -> str:
    """``"tf"`` → ``"tensorflow"`` etc.; raises a FeatgenError for unknown names."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BACKENDS:
        raise FeatgenError(f"unknown backend {short(name)}: choose one of {', '.join(BACKENDS)}.{suggest(name, BACKENDS)}")
    return key


# --- devices: one list of names for the engine, the CLI and galleries.yml ---------------------------------
DEVICE_NAMES = "auto, cpu, cuda, cuda:N (or gpu, gpu:N), mps or xpu"
_DEVICE = re.compile(r"auto|cpu(:\d+)?|(cuda|gpu)(:\d+)?|mps|xpu(:\d+)?")
_TORCH_ONLY = ("mps", "xpu")
_GPU_SPELLING = {"torch": "cuda", "tensorflow": "gpu"}  # "cuda" and "gpu" name the same device in both


def device_error(device: object, backend: str | None = None, what: str = "--device") -> str | None:
    """Why ``device`` is no device name (``backend``: one that backend takes), in one line that names
    the option ``what``; None if it is one."""
    if device is None:
        return None
    text = device.strip().lower() if isinstance(device, str) else ""
    if not _DEVICE.fullmatch(text):
        return f"unknown device {short(device)} ({what}): use {DEVICE_NAMES}."
    if backend is not None and canonical_name(backend) != "torch" and text.split(":")[0] in _TORCH_ONLY:
        return f"device {device!r} is a torch device ({what}): tensorflow takes auto, cpu, cuda, cuda:N (or gpu, gpu:N)."
    return None


def check_device(device: object, backend: str | None = None) -> None:
    """Raise :func:`device_error`'s line if ``device`` is no device name ``backend`` takes."""
    error = device_error(device, backend)
    if error:
        raise FeatgenError(error)


def resolve_device(name: str, device: str | None) -> str:
    """The one device value the backend named ``name`` runs on for ``device``: ``"auto"`` (or None)
    becomes its GPU if it sees one, else ``"cpu"``; ``gpu``/``cuda`` take the backend's spelling
    (``cuda:1`` in torch, ``gpu:1`` in TensorFlow); ``cpu:N`` is ``cpu``. Imports the framework for
    ``"auto"`` only."""
    key = canonical_name(name)
    check_device(device, key)
    text = (device or "auto").strip().lower()
    kind, sep, index = text.partition(":")
    if kind == "auto":
        try:
            module = importlib.import_module(BACKENDS[key])
        except ImportError:
            return "cpu"  # the render itself will say what to install
        return module.default_device()
    if kind == "cpu":
        return "cpu"
    if kind in ("cuda", "gpu"):
        kind = _GPU_SPELLING[key]
    return kind + sep + index


# --- precisions ------------------------------------------------------------------------------------------
PRECISIONS = ("auto", "float32", "float64", "bfloat16")


def resolve_precision(name: str, device: str | None, precision: str = "auto") -> str:
    """What ``precision`` computes in on ``device``: ``"auto"`` is ``"bfloat16"`` for torch on a CUDA GPU
    with bf16 tensor cores (the network under autocast; parameters and the optimizer in float32) and
    ``"float32"`` everywhere else. Imports the framework only to ask a GPU what it has."""
    key = canonical_name(name)
    if precision not in PRECISIONS:
        raise FeatgenError(f"unknown precision {short(precision)}: choose auto (default), float32, float64 or "
                           f"bfloat16.{suggest(str(precision), PRECISIONS)}")  # fmt: skip
    if precision != "auto":
        return precision
    device = resolve_device(key, device)
    if key != "torch" or device == "cpu":
        return "float32"
    return importlib.import_module(BACKENDS[key]).default_precision(device)


def get_backend(name: str = "torch", device: str | None = None, precision: str = "auto") -> Backend:
    """Return the backend instance for ``name`` (``"torch"`` or ``"tensorflow"``) on ``device``,
    computing in ``precision``: ``"auto"`` (:func:`resolve_precision`), ``"float32"``, ``"float64"``, or
    ``"bfloat16"`` (torch: the network under bf16 autocast, meant for CUDA GPUs; parameters and optimizer
    state stay float32). One instance per resolved (name, device, precision)."""
    key = canonical_name(name)
    if precision == "bfloat16" and key != "torch":
        raise FeatgenError("precision bfloat16 is a torch option (autocast on a CUDA GPU); use float32 with tensorflow.")
    try:
        device = resolve_device(key, device)
        precision = resolve_precision(key, device, precision)
    except ImportError:  # a framework that is missing: _backend says what to install
        pass
    return _backend(key, device, precision)


@cache
def _backend(key: str, device: str | None, precision: str) -> Backend:
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
