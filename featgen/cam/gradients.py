"""Input-resolution methods on the backend primitives: FullGrad and guided backpropagation.

Unlike the layer CAMs in :mod:`featgen.cam.methods`, these need the model's full gradient (w.r.t.
the input and every bias), so they take the model and a prepared batch rather than ``A`` and ``G``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import FeatgenError
from ..images import upsample
from ..models import LoadedModel


def _require(model: LoadedModel, method: str, *primitives: str) -> None:
    """A clear error where a backend does not implement these primitives yet."""
    missing = [p for p in primitives if not hasattr(model.backend, p)]
    if missing:
        raise FeatgenError(f"{method} needs {', '.join(missing)}, which the {model.backend.name} backend does not "
                           "implement yet; use backend='torch'.")  # fmt: skip


def class_score_fn(model: LoadedModel, classes: Sequence[int], width: int):
    """``z -> z[i, classes[i]]``: each image's logit of its target class, as a backend function.

    Where the model ends in feature maps rather than class scores, ``classes`` are output channels
    and the score is the channel's spatial mean. One class for several images is broadcast.
    """
    be = model.backend
    onehot = np.zeros((len(classes), width), np.float32)
    onehot[np.arange(len(classes)), list(classes)] = 1.0
    flat = be.asarray(onehot)
    spatial = be.native_input(onehot[:, None, None, :])  # in the layout the model's outputs have

    def score(z):
        shape = be.shape(z)
        if len(shape) == 2:
            return be.sum(z * flat, axis=1)
        positions = float(np.prod(shape[1:])) / width
        return be.sum(z * spatial, axis=tuple(range(1, len(shape)))) / positions

    return score


def _minmax(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    a = a - a.min(axis=axes, keepdims=True)
    return a / (a.max(axis=axes, keepdims=True) + 1e-7)


def fullgrad(model: LoadedModel, x: np.ndarray, classes: Sequence[int], width: int,
             per_channel: bool = True) -> np.ndarray:  # fmt: skip
    """FullGrad (Srinivas & Fleuret 2019) raw maps ``(N, H, W)`` at the input size, before finalize.

    Terms: ``|x ⊙ ∇x S|`` on the normalized input (the network's real input, so its mean
    subtraction is not counted twice), and ``|b ⊙ ∂S/∂z|`` for every bias ``b`` added to a spatial
    output ``z`` (``Backend.bias_sites``). Each term is min-max normalized per image, summed over
    channels and upsampled to the input size, and the terms are summed.

    ``per_channel=True`` normalizes each channel of each term on its own, as pytorch-grad-cam 1.5.7
    does; the authors' code (idiap/fullgrad-saliency) normalizes each term over all its channels at
    once (``per_channel=False``), which weighs strong channels more. The two maps correlate ~0.9.

    Completeness (the signed terms sum to the score) holds on ReLU networks. A ReLU6 clipped at 6
    adds a constant, i.e. one more bias that the authors' definition does not count: on
    EfficientNet-Lite0 the terms miss ~10 % of the logit, and ``6 * dS/dy`` at the saturated units
    closes the gap (measured). FullGrad is only weakly class-discriminative: the absolute values
    keep evidence against the class, so the map follows where the network is active.
    """
    _require(model, "fullgrad", "bias_sites", "input_and_layer_gradients")
    be = model.backend
    xn = model.norm.apply(x)
    sites = be.bias_sites(model)
    gx, gsites, _ = be.input_and_layer_gradients(
        model, be.asarray(xn), [name for name, _ in sites], class_score_fn(model, classes, width), normalized=True
    )
    axes = (1, 2) if per_channel else (1, 2, 3)
    size = x.shape[1:3]
    # upsampling is linear, so summing channels first and upsampling once per term is the same
    total = _minmax(np.abs(xn * be.to_numpy(gx)), axes).sum(axis=-1)
    for name, bias in sites:
        term = np.abs(be.to_numpy(gsites[name]) * bias.reshape(1, 1, 1, -1))
        total = total + upsample(_minmax(term, axes).sum(axis=-1), size)
    return total.astype(np.float32)


def guided_gradients(model: LoadedModel, x: np.ndarray, classes: Sequence[int], width: int) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015): ``∂S/∂x`` on the normalized input
    ``(N, H, W, 3)``, with every ReLU passing only positive gradients of active units."""
    _require(model, "guided backpropagation", "guided_relu", "input_and_layer_gradients")
    be = model.backend
    with be.guided_relu(model):
        gx, _, _ = be.input_and_layer_gradients(
            model, be.asarray(model.norm.apply(x)), [], class_score_fn(model, classes, width), normalized=True
        )
    g = be.to_numpy(gx).astype(np.float32)
    return g[..., ::-1].copy() if model.norm.bgr else g  # back to RGB order for display


def for_display(g: np.ndarray) -> np.ndarray:
    """Standardize each image's gradients to mean 0.5, std 0.1, clipped to [0, 1] (Keras Grad-CAM's
    ``deprocess_image``, as pytorch-grad-cam shows them)."""
    g = np.asarray(g, np.float32)
    mean = g.mean(axis=(1, 2, 3), keepdims=True)
    std = g.std(axis=(1, 2, 3), keepdims=True)
    return np.clip((g - mean) / (std + 1e-5) * 0.1 + 0.5, 0.0, 1.0).astype(np.float32)
