"""``featgen.cam``: class activation maps for one image or a batch, in either backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import FeatgenError, suggest
from ..images import ImageLike, load_batch
from ..models import LoadedModel
from . import gradients as GR
from . import methods as M

# fullgrad works at input resolution with every bias in the model: it takes no layer
INPUT_METHODS = ("fullgrad", "guidedgradcam")
METHODS = tuple(M.GRADIENT_METHODS) + ("scorecam", "ablationcam") + INPUT_METHODS


def _batch(model: LoadedModel) -> int:
    """Masked or ablated copies per forward pass: on a CPU, 16 beats larger batches (cache)."""
    return 128 if str(getattr(model.backend, "device", "cpu")).startswith("cuda") else 16


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


def _targets(model: LoadedModel, target: Any, n: int, logits: np.ndarray) -> list[int]:
    if target is None:
        return [int(i) for i in logits.argmax(axis=1)]
    items = list(target) if isinstance(target, (list, tuple)) else [target] * n
    if len(items) != n:
        raise FeatgenError(f"got {len(items)} targets for {n} images.")
    return [model.class_index(t) for t in items]


def _upsample_align_corners(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling with align_corners=True (as torch's UpsamplingBilinear2d), channels-last."""

    def matrix(n_out: int, n_in: int) -> np.ndarray:
        pos = np.linspace(0, n_in - 1, n_out) if n_in > 1 else np.zeros(n_out)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = pos - lo
        w = np.zeros((n_out, n_in), np.float32)
        w[np.arange(n_out), lo] += 1 - frac
        w[np.arange(n_out), hi] += frac
        return w

    wy, wx = matrix(size[0], maps.shape[1]), matrix(size[1], maps.shape[2])
    return np.einsum("yh,nhwc,xw->nyxc", wy, maps, wx, optimize=True)


def _scorecam_weights(model, x_norm, acts, classes) -> np.ndarray:
    """Softmax over channels of the target logit for input × normalized, upsampled channel."""
    be = model.backend
    n, h, w, _ = x_norm.shape
    weights = []
    step = _batch(model)
    for i in range(n):
        up = _upsample_align_corners(acts[i : i + 1], (h, w))[0]  # (H, W, C)
        lo = up.min(axis=(0, 1))
        hi = up.max(axis=(0, 1))
        masks = np.moveaxis((up - lo) / (hi - lo + 1e-8), -1, 0)[..., None]  # (C, H, W, 1)
        # A constant channel's mask is all zeros: every such copy of the input is the same black
        # image, so one forward pass scores them all (post-ReLU layers often have hundreds).
        constant = hi - lo <= 0
        live = np.flatnonzero(~constant)
        order = np.concatenate([live, np.flatnonzero(constant)[:1]])
        sc_live = []
        for s in range(0, len(order), step):
            batch = be.asarray((x_norm[i][None] * masks[order[s : s + step]]).astype(np.float32))
            with be.no_grad():
                z = be.to_numpy(be.forward(model, batch, normalized=True).logits)
            sc_live.append(z[:, classes[i]])
        flat = np.concatenate(sc_live).astype(np.float64)
        sc = np.empty(len(masks), np.float64)
        sc[live] = flat[: len(live)]
        if constant.any():
            sc[constant] = flat[len(live)]
        e = np.exp(sc - sc.max())
        weights.append(e / e.sum())
    return np.stack(weights).astype(np.float32)


def _ablation_weights(model, x, layer, acts, classes, base_scores) -> np.ndarray:
    """(y − y_k) / y with channel k set to zero, batched; only the model's tail when possible."""
    be = model.backend
    tail = getattr(be, "tail", lambda *_: None)(model, layer)
    n, _, _, c = acts.shape
    weights = np.empty((n, c), np.float32)
    step = _batch(model)
    for i in range(n):
        scores = []
        for s in range(0, c, step):
            idx = np.arange(s, min(s + step, c))
            ablated = np.repeat(acts[i : i + 1], len(idx), axis=0)
            ablated[np.arange(len(idx)), :, :, idx] = 0.0
            with be.no_grad():
                if tail is not None:
                    z = tail(be.asarray(ablated))
                else:
                    xi = be.asarray(np.repeat(x[i : i + 1], len(idx), axis=0))
                    z = be.forward(model, xi, replace={layer: be.asarray(ablated)}).logits
            scores.append(be.to_numpy(z)[:, classes[i]])
        y_k = np.concatenate(scores)
        weights[i] = (base_scores[i] - y_k) / base_scores[i]
    return weights


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
    key = method.lower()
    if key not in METHODS:
        raise FeatgenError(f"unknown CAM method {method!r}: choose {', '.join(METHODS)}.{suggest(key, METHODS)}")
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
    if key == "fullgrad":
        return M.finalize(GR.fullgrad(model, x, classes, logits.shape[1]), x.shape[1:3]).astype(np.float32)
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
    score_fn = GR.class_score_fn(model, classes, logits.shape[1])
    acts_t, grads_t, _ = be.activations_and_gradients(model, be.asarray(x), layers, score_fn)
    maps = []
    for name in layers:
        A = be.to_numpy(acts_t[name]).astype(np.float32)
        G = be.to_numpy(grads_t[name]).astype(np.float32)
        if key in M.GRADIENT_METHODS:
            raw = M.GRADIENT_METHODS[key](A, G)
            weighted_acts = A * G.mean(axis=(1, 2), keepdims=True) if key == "gradcam" else A * G
        else:
            if key == "scorecam":
                w = _scorecam_weights(model, model.norm.apply(x), A, classes)
            else:
                base = logits[np.arange(len(x)), classes]
                w = _ablation_weights(model, x, name, A, classes, base)
            raw = M.scores_to_map(A, w)
            weighted_acts = A * w[:, None, None, :]
        if eigen_smooth:
            raw = M.projection(weighted_acts, reference=raw)
        maps.append(M.finalize(raw, x.shape[1:3]))
    out = np.mean(maps, axis=0) if len(maps) > 1 else maps[0]
    return out.astype(np.float32)


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
    g = GR.guided_gradients(model, x, classes, logits.shape[1])
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
    g = GR.guided_gradients(model, x, classes, logits.shape[1])
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
