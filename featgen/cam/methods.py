"""CAM weightings, each a small NumPy function of activations ``A`` and gradients ``G``.

``A`` and ``G`` are channels-last ``(N, h, w, C)``. Each function returns channel weights
``(N, C)``, per-position weights ``(N, h, w, C)`` or a finished map ``(N, h, w)``; :func:`combine`
turns any of them into raw maps (applying eigen_smooth), and :func:`finalize` applies the shared
ReLU, per-image min-max normalization and upsampling.
Formulas follow the papers, as collected in pytorch-grad-cam 1.5.7 where it matches them.
"""

from __future__ import annotations

import numpy as np

from ..images import upsample


def gradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Grad-CAM: channel weights are the spatial mean of the gradients."""
    return G.mean(axis=(1, 2))


def hirescam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """HiResCAM: the gradients themselves weigh each activation, position by position."""
    return G


def gradcampp(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Grad-CAM++: alpha = g² / (2g² + ΣA·g³), channel weights = Σ alpha·ReLU(g)."""
    g2 = G * G
    g3 = g2 * G
    sum_a = A.sum(axis=(1, 2), keepdims=True)
    alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    alpha = np.where(G != 0, alpha, 0.0)
    return (np.maximum(G, 0) * alpha).sum(axis=(1, 2))


def xgradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """XGrad-CAM: channel weights = Σ g·A / ΣA."""
    sum_a = A.sum(axis=(1, 2), keepdims=True)
    return (G * A / (sum_a + 1e-7)).sum(axis=(1, 2))


def layercam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """LayerCAM: ReLU(g) weighs each activation, position by position."""
    return np.maximum(G, 0)


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


def eigencam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """EigenCAM: the first principal component of the activations (class-agnostic), a map."""
    return projection(A)


def eigengradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """EigenGradCAM: the first principal component of gradient × activation, a map, signed to agree
    with the class evidence Σ g·A (the activation mean would follow the most active object instead)."""
    return projection(A * G, reference=(A * G).sum(axis=-1))


def combine(A: np.ndarray, out: np.ndarray, eigen_smooth: bool = False) -> np.ndarray:
    """A method's output → raw maps ``(N, h, w)``, the one place where weights meet activations.

    ``out`` is channel weights ``(N, C)``, per-position weights ``(N, h, w, C)`` or a map ``(N, h, w)``.
    Weights multiply ``A``; the weighted activations are summed over channels, or, with
    ``eigen_smooth``, replaced by their first principal component (pytorch-grad-cam's rule), signed to
    agree with the sum. A map is returned as it is: its method decided how to reduce the channels.
    """
    if out.ndim == 3:
        return out
    weighted = A * (out[:, None, None, :] if out.ndim == 2 else out)
    total = weighted.sum(axis=-1)
    return projection(weighted, reference=total) if eigen_smooth else total


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
