"""``featgen.cam``: class activation maps for one image or a batch, in either backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FeatgenError, suggest
from ..images import ImageLike, load_batch
from ..models import LoadedModel
from . import gradients as GR
from . import methods as M
from . import scores as S
from .gradients import class_score_fn


@dataclass(frozen=True)
class LayerInputs:
    """What a layer method may use: one layer's activations ``A`` and gradients ``G`` of each image's
    target score (NumPy, ``(N, h, w, C)``), and the model, batch and targets they came from."""

    model: LoadedModel
    x: np.ndarray
    layer: str
    A: np.ndarray
    G: np.ndarray
    classes: list[int]
    logits: np.ndarray
    width: int


def _gradient_method(fn):
    return lambda t: fn(t.A, t.G)


def _scorecam(t: LayerInputs) -> np.ndarray:
    return S.scorecam(t.model, t.model.norm.apply(t.x), t.A, t.classes, t.width)


def _ablationcam(t: LayerInputs) -> np.ndarray:
    return S.ablationcam(t.model, t.x, t.layer, t.A, t.classes, _target_scores(t.model, t.logits, t.classes, t.width),
                         t.width)  # fmt: skip


# The one extension point: a layer method maps LayerInputs to channel weights (N, C), per-position
# weights (N, h, w, C) or a map (N, h, w). Eigen-smoothing, averaging over layers and aug_smooth
# are applied once, for every method, in `cam`.
LAYER_METHODS: dict[str, Callable[[LayerInputs], np.ndarray]] = {
    **{name: _gradient_method(fn) for name, fn in M.GRADIENT_METHODS.items()},
    "scorecam": _scorecam,
    "ablationcam": _ablationcam,
}
# these work at input resolution (fullgrad with every bias in the model): they take no eigen_smooth
INPUT_METHODS = ("fullgrad", "guidedgradcam")
METHODS = tuple(LAYER_METHODS) + INPUT_METHODS


def check_method(method: str) -> str:
    """The canonical name of a CAM method; one line listing the choices if there is none."""
    key = str(method).strip().lower()
    if key not in METHODS:
        raise FeatgenError(f"unknown CAM method {method!r}: choose from {', '.join(METHODS)}.{suggest(key, METHODS)}")
    return key


def default_layer(model: LoadedModel) -> str:
    """The last layer with a spatial output larger than 1×1 (its enclosing module if same shape)."""
    rows = [r for r in model.layer_table if r.spatial and r.shape[0] > 1 and r.shape[1] > 1]
    if not rows:
        raise FeatgenError(f"{model.name} has no spatial layer to compute a CAM on.")
    name = rows[-1].name
    shapes = {r.name: r.shape for r in model.layer_table}
    while "." in name and shapes.get(name.rsplit(".", 1)[0]) == shapes[name]:
        name = name.rsplit(".", 1)[0]
    return name


def _width(model: LoadedModel, logits: np.ndarray) -> int:
    """Classes, or output channels where the model ends in feature maps (then ``logits`` is native layout)."""
    if logits.ndim == 2:
        return logits.shape[1]
    return int(model.layer_table[-1].channels or logits.shape[1])


def _targets(model: LoadedModel, target: Any, n: int, logits: np.ndarray) -> list[int]:
    width = _width(model, logits)
    if target is None:
        if logits.ndim != 2:
            shape = "x".join(map(str, model.layer_table[-1].shape))
            raise FeatgenError(
                f"{model.name} has no classifier (its output is a {shape} feature map), so there is no top class: "
                f"pass a target, the output channel to explain (--target 0..{width - 1}, target=... in Python)."
            )
        return [int(i) for i in logits.argmax(axis=1)]
    items = list(target) if isinstance(target, (list, tuple)) else [target] * n
    if len(items) != n:
        raise FeatgenError(f"got {len(items)} targets for {n} images.")
    classes = [model.class_index(t) for t in items]
    bad = [c for c in classes if not 0 <= c < width]
    if bad:
        what = "classes" if logits.ndim == 2 else "output channels"
        raise FeatgenError(f"target {bad[0]} is out of range: {model.name} has {width} {what} (0..{width - 1}).")
    return classes


def _target_scores(model: LoadedModel, logits: np.ndarray, classes: list[int], width: int) -> np.ndarray:
    """Each image's score of its target, ``(N,)``, as :func:`class_score_fn` computes it."""
    be = model.backend
    return be.to_numpy(class_score_fn(model, classes, width)(be.asarray(logits)))


def resolve_targets(model: LoadedModel, x: np.ndarray, target: Any = None) -> tuple[list[int], bool]:
    """Each image's target index for the batch ``x``, and whether they are classes (``False``: the
    model ends in feature maps and the targets are output channels)."""
    logits = _logits(model, x)
    return _targets(model, target, len(x), logits), logits.ndim == 2


def cam(
    model: LoadedModel | str,
    image: ImageLike | Sequence[ImageLike],
    method: str = "gradcam",
    layer: str | Sequence[str] | None = None,
    target: int | str | Sequence[int | str] | None = None,
    size: int | None = None,
    *,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
    backend: str = "torch",
) -> np.ndarray:
    """Class activation maps ``(N, H, W)`` in [0, 1] at the input size.

    Args:
        model: a LoadedModel or spec.
        image: one image (path, PIL, array) or a list/batch; resized to ``size`` (default: the
            model's input size).
        method: one of ``featgen.cam.METHODS``.
        layer: a spatial layer, or several (their maps are averaged); default: the last spatial one.
            Not for ``fullgrad``, which weighs every bias in the model at input resolution.
        target: a class index, an ImageNet label such as ``"espresso"``, one per image, or ``None``
            for each image's top class.
        eigen_smooth: replace each map by the first principal component of its weighted activations
            (layer methods only: not ``fullgrad`` or ``guidedgradcam``).
        aug_smooth: average over horizontal flips and two brightness changes (test-time augmentation).
    """
    from ..maps import as_model

    model = as_model(model, backend=backend)
    key = check_method(method)
    if key in INPUT_METHODS and eigen_smooth:
        raise FeatgenError(f"eigen_smooth needs a layer's activations, which {key} does not weigh; drop eigen_smooth.")
    if key == "fullgrad" and layer is not None:
        raise FeatgenError("fullgrad uses every bias in the model, not one layer; drop layer=... (or --layer).")
    x = load_batch(image, size=size or model.input_size)
    if aug_smooth:
        kw = {"size": x.shape[1:3], "eigen_smooth": eigen_smooth}  # keep the asked-for size
        flips = cam(model, x[:, :, ::-1].copy(), key, layer, target, **kw)[:, :, ::-1]
        bright = [cam(model, np.clip(x * f, 0, 1), key, layer, target, **kw) for f in (0.9, 1.1)]
        base = cam(model, x, key, layer, target, **kw)
        return np.clip(np.mean([base, flips, *bright], axis=0), 0, 1).astype(np.float32)
    logits = _logits(model, x)
    classes = _targets(model, target, len(x), logits)
    width = _width(model, logits)
    if key == "fullgrad":
        return M.finalize(GR.fullgrad(model, x, classes, width), x.shape[1:3]).astype(np.float32)
    if key == "guidedgradcam":
        return M.finalize(np.abs(_guided_gradcam_raw(model, x, classes, logits, layer)).sum(axis=-1), x.shape[1:3])
    return _layer_cam(model, x, key, layer, classes, logits, eigen_smooth)


def _layer_cam(model: LoadedModel, x: np.ndarray, key: str, layer, classes: list[int], logits: np.ndarray,
               eigen_smooth: bool) -> np.ndarray:  # fmt: skip
    """The layer methods' maps ``(N, H, W)`` for resolved ``classes`` (the mean over several layers)."""
    layers = [default_layer(model)] if layer is None else ([layer] if isinstance(layer, str) else list(layer))
    layers = [model.resolve_layer(name) for name in layers]
    for name in layers:
        info = model.layer_info(name)
        if not info.spatial:
            raise FeatgenError(f"layer {name!r} has no spatial dimensions (output {info.shape}); pick a conv layer.")
    be = model.backend
    width = _width(model, logits)
    acts_t, grads_t, _ = be.activations_and_gradients(model, be.asarray(x), layers, class_score_fn(model, classes, width))
    maps = []
    for name in layers:
        A = be.to_numpy(acts_t[name]).astype(np.float32)
        G = be.to_numpy(grads_t[name]).astype(np.float32)
        out = LAYER_METHODS[key](LayerInputs(model, x, name, A, G, classes, logits, width))
        maps.append(M.finalize(M.combine(A, out, eigen_smooth), x.shape[1:3]))
    return np.mean(maps, axis=0).astype(np.float32)


def _logits(model: LoadedModel, x: np.ndarray) -> np.ndarray:
    be = model.backend
    with be.no_grad():
        return be.to_numpy(be.forward(model, be.asarray(x)).logits)


def _prepared(model, image, target, size: int | None, backend: str) -> tuple[LoadedModel, np.ndarray, np.ndarray, list[int]]:
    """The model, the image batch at ``size``, its logits and each image's target class."""
    from ..maps import as_model

    model = as_model(model, backend=backend)
    x = load_batch(image, size=size or model.input_size)
    logits = _logits(model, x)
    return model, x, logits, _targets(model, target, len(x), logits)


def _guided_gradcam_raw(model: LoadedModel, x: np.ndarray, classes: list[int], logits: np.ndarray, layer) -> np.ndarray:
    """Guided backpropagation × the Grad-CAM map, ``(N, H, W, 3)`` (Selvaraju et al. 2017)."""
    g = GR.guided_gradients(model, x, classes, _width(model, logits))
    return g * _layer_cam(model, x, "gradcam", layer, classes, logits, eigen_smooth=False)[..., None]


def guided_backprop(
    model: LoadedModel | str,
    image: ImageLike | Sequence[ImageLike],
    target: int | str | Sequence[int | str] | None = None,
    size: int | None = None,
    *,
    raw: bool = False,
    backend: str = "torch",
) -> np.ndarray:
    """Guided backpropagation ``(N, H, W, 3)``: the input gradient of the target's logit with every
    ReLU passing only positive gradients of active units. Standardized for display (mean 0.5,
    std 0.1, clipped to [0, 1]) unless ``raw``, which returns the gradients w.r.t. the normalized input."""
    model, x, logits, classes = _prepared(model, image, target, size, backend)
    g = GR.guided_gradients(model, x, classes, _width(model, logits))
    return g if raw else GR.for_display(g)


def guided_gradcam(
    model: LoadedModel | str,
    image: ImageLike | Sequence[ImageLike],
    target: int | str | Sequence[int | str] | None = None,
    layer: str | Sequence[str] | None = None,
    size: int | None = None,
    *,
    raw: bool = False,
    backend: str = "torch",
) -> np.ndarray:
    """Guided Grad-CAM ``(N, H, W, 3)``: guided backpropagation × the Grad-CAM map of ``layer``,
    standardized for display like :func:`guided_backprop` unless ``raw``.
    ``cam(..., method="guidedgradcam")`` is the same, as a one-channel map (sum of absolute values)."""
    model, x, logits, classes = _prepared(model, image, target, size, backend)
    g = _guided_gradcam_raw(model, x, classes, logits, layer)
    return g if raw else GR.for_display(g)
