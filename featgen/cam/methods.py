"""CAM weightings, each a small NumPy function of activations ``A`` and gradients ``G``.

``A`` and ``G`` are channels-last ``(N, h, w, C)``. Each function returns raw maps ``(N, h, w)``
before the shared ReLU, per-image min-max normalization and upsampling (:func:`finalize`).
Formulas follow the papers, as collected in pytorch-grad-cam 1.5.7 where it matches them.
"""

from __future__ import annotations

import numpy as np

from ..images import upsample


def weighted(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Sum over channels of ``w[n, c] * A[n, :, :, c]``."""
    return np.einsum("nhwc,nc->nhw", A, w)


def gradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Grad-CAM: channel weights are the spatial mean of the gradients."""
    return weighted(A, G.mean(axis=(1, 2)))


def hirescam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """HiResCAM: element-wise gradient × activation, summed over channels."""
    return (G * A).sum(axis=-1)


def gradcampp(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Grad-CAM++: alpha = g² / (2g² + ΣA·g³), weights = Σ alpha·ReLU(g)."""
    g2 = G * G
    g3 = g2 * G
    sum_a = A.sum(axis=(1, 2), keepdims=True)
    alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    alpha = np.where(G != 0, alpha, 0.0)
    return weighted(A, (np.maximum(G, 0) * alpha).sum(axis=(1, 2)))


def xgradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """XGrad-CAM: weights = Σ g·A / ΣA."""
    sum_a = A.sum(axis=(1, 2), keepdims=True)
    return weighted(A, (G * A / (sum_a + 1e-7)).sum(axis=(1, 2)))


def layercam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """LayerCAM: Σ over channels of ReLU(g)·A, per position."""
    return (np.maximum(G, 0) * A).sum(axis=-1)


def projection(X: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """First principal component of each image's ``(h·w, C)`` matrix, as an ``(h, w)`` map.

    The component's sign is arbitrary in an SVD; we fix it so the map correlates positively with
    ``reference`` (default: the channel mean of ``X``), so that EigenCAM highlights what is active.
    """
    X = np.nan_to_num(np.asarray(X, np.float64))
    ref = X.mean(axis=-1) if reference is None else reference
    out = np.empty(X.shape[:3], np.float64)
    for i, x in enumerate(X):
        flat = x.reshape(-1, x.shape[-1])
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        p = (flat @ vt[0]).reshape(x.shape[:2])
        r = ref[i] - ref[i].mean()
        if (p * r).sum() < 0:
            p = -p
        out[i] = p
    return out.astype(np.float32)


def eigencam(A: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """EigenCAM: the first principal component of the activations (class-agnostic)."""
    return projection(A)


def eigengradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """EigenGradCAM: the first principal component of gradient × activation, signed to agree with
    the class evidence Σ g·A (the activation mean would follow the most active object instead)."""
    return projection(A * G, reference=(A * G).sum(axis=-1))


def scores_to_map(A: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ScoreCAM / AblationCAM: channel weights (already computed from scores) times activations."""
    return weighted(A, weights)


def finalize(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """ReLU, min-max normalize each map to [0, 1], upsample to ``size`` (h, w); NaN-free."""
    cam = np.maximum(np.nan_to_num(np.asarray(raw, np.float32)), 0)
    lo = cam.min(axis=(1, 2), keepdims=True)
    hi = cam.max(axis=(1, 2), keepdims=True)
    cam = (cam - lo) / np.maximum(hi - lo, 1e-7)
    out = upsample(cam, size)
    return np.clip(out, 0.0, 1.0)


GRADIENT_METHODS = {
    "gradcam": gradcam,
    "hirescam": hirescam,
    "gradcam++": gradcampp,
    "xgradcam": xgradcam,
    "layercam": layercam,
    "eigencam": eigencam,
    "eigengradcam": eigengradcam,
}
