"""ScoreCAM and AblationCAM: channel weights from the target score of changed inputs or activations.

The masked inputs and ablated activations are built on the backend's device, a chunk at a time,
from the layer's activations; only the scores come back to the host, once per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models import LoadedModel
from .gradients import class_score_fn


def chunk_size(model: LoadedModel) -> int:
    """Masked or ablated copies per forward pass: on a CPU, 16 beats larger batches (cache)."""
    return 16 if model.backend.device == "cpu" else 128


def _align_corners_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Bilinear interpolation weights ``(n_out, n_in)`` with align_corners=True (torch's UpsamplingBilinear2d)."""
    pos = np.linspace(0, n_in - 1, n_out) if n_in > 1 else np.zeros(n_out)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    w = np.zeros((n_out, n_in), np.float32)
    w[np.arange(n_out), lo] += 1 - frac
    w[np.arange(n_out), hi] += frac
    return w


def scorecam(model: LoadedModel, x_norm: np.ndarray, A: np.ndarray, classes: Sequence[int], width: int) -> np.ndarray:
    """Channel weights ``(N, C)``: softmax over channels of the target score of the normalized input
    times each channel, upsampled (bilinear, align_corners) and min-max normalized to [0, 1]."""
    be = model.backend
    n, h, w, c = A.shape
    wy = be.asarray(_align_corners_matrix(x_norm.shape[1], h))
    wx = be.asarray(_align_corners_matrix(x_norm.shape[2], w))
    step = chunk_size(model)
    weights = []
    for i in range(n):
        # A constant channel's mask is all zeros: every such copy of the input is the same black
        # image, so one forward pass scores them all (post-ReLU layers often have hundreds).
        constant = A[i].max(axis=(0, 1)) - A[i].min(axis=(0, 1)) <= 0
        live = np.flatnonzero(~constant)
        order = np.concatenate([live, np.flatnonzero(constant)[:1]])
        xi = be.asarray(x_norm[i : i + 1])
        score = class_score_fn(model, [classes[i]], width)
        scores = []
        for s in range(0, len(order), step):
            idx = order[s : s + step]
            up = be.einsum("yh,nhwc,xw->nyxc", wy, be.asarray(A[i : i + 1][..., idx]), wx)  # (1, H, W, k)
            lo = be.min(up, axis=(1, 2), keepdims=True)
            hi = be.max(up, axis=(1, 2), keepdims=True)
            masks = be.transpose((up - lo) / (hi - lo + 1e-8), (3, 1, 2, 0))  # (k, H, W, 1)
            with be.no_grad():
                scores.append(score(be.forward(model, xi * masks, normalized=True).logits))
        flat = be.to_numpy(be.concat(scores)).astype(np.float64)
        sc = np.empty(c, np.float64)
        sc[live] = flat[: len(live)]
        sc[constant] = flat[len(live)] if constant.any() else 0.0
        e = np.exp(sc - sc.max())
        weights.append(e / e.sum())
    return np.stack(weights).astype(np.float32)


def ablationcam(model: LoadedModel, x: np.ndarray, layer: str, A: np.ndarray, classes: Sequence[int],
                base_scores: np.ndarray, width: int) -> np.ndarray:  # fmt: skip
    """Channel weights ``(N, C)``: ``(y − y_k) / y`` with channel ``k`` of ``layer`` set to zero.

    The ablated copies are the activations times a 0/1 channel mask made on the device. Where the
    backend can run just the part of the model after ``layer`` (``tail``), only that part runs.
    """
    be = model.backend
    tail = be.tail(model, layer) if hasattr(be, "tail") else None  # optional: a speed-up, same numbers
    n, _, _, c = A.shape
    channel = be.reshape(be.asarray(np.arange(c, dtype=np.float32)), (1, 1, 1, c))
    step = chunk_size(model)
    weights = np.empty((n, c), np.float32)
    for i in range(n):
        acts = be.asarray(A[i : i + 1])
        score = class_score_fn(model, [classes[i]], width)
        scores = []
        for s in range(0, c, step):
            k = min(step, c - s)
            ablated_idx = be.reshape(be.asarray(np.arange(s, s + k, dtype=np.float32)), (k, 1, 1, 1))
            keep = be.clip(be.abs(channel - ablated_idx), 0.0, 1.0)  # (k, 1, 1, C): 0 at the ablated channel
            ablated = acts * keep
            with be.no_grad():
                if tail is not None:
                    z = tail(ablated)
                else:
                    xi = be.asarray(np.repeat(x[i : i + 1], k, axis=0))
                    z = be.forward(model, xi, replace={layer: ablated}).logits
                scores.append(score(z))
        y_k = be.to_numpy(be.concat(scores))
        weights[i] = (base_scores[i] - y_k) / base_scores[i]
    return weights
