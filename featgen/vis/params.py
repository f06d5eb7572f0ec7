"""Image parameterizations: pixel, Fourier (Lucid), and MACO's phase-only Fourier.

A parameterization is a single tensor whose first axis is the batch, plus ``image_fn`` mapping it
to NHWC RGB in [0, 1]. Initial values are drawn from NumPy generators (one per image), so both
backends start from the same numbers and an image's start does not depend on its batch. Every
constant (colour matrix, spectrum scale, magnitude) is a device tensor built once per parameterization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# Lucid's color_correlation_svd_sqrt, normalized by its largest column norm.
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
COLOR_MATRIX = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


@dataclass
class Param:
    """A trainable tensor (batch first) and the function that turns it into images."""

    tensor: Any
    image_fn: Callable[[Any], Any]
    kind: str


def _draw(rngs: Sequence[np.random.Generator], shape: tuple[int, ...], sd: float) -> np.ndarray:
    return np.stack([r.normal(0.0, sd, size=shape) for r in rngs]).astype(np.float32)


def to_valid_rgb(be, x, decorrelate: bool, matrix: Any = None):
    """NHWC unconstrained values → RGB in [0, 1]: optional color decorrelation, then a sigmoid.
    ``matrix``: COLOR_MATRIX as a device tensor, when the caller holds one (hot loops do)."""
    if decorrelate:
        x = be.einsum("nhwc,dc->nhwd", x, be.asarray(COLOR_MATRIX) if matrix is None else matrix)
    return be.sigmoid(x)


def image(be, start: np.ndarray) -> Param:
    """The image itself (naive ascent): the tensor is RGB, ``image_fn`` the identity."""
    return Param(be.asarray(start), lambda t: t, "image")


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """Lucid's 1/f scaling of an ``(h, w // 2 + 1)`` rfft spectrum, times sqrt(w h)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power
    return (scale * np.sqrt(w * h)).astype(np.float32)


def pixel(be, rngs, size: int, sd: float = 0.01, decorrelate: bool = True) -> Param:
    """Plain pixels behind a sigmoid (and optional color decorrelation)."""
    init = _draw(rngs, (size, size, 3), sd)
    matrix = be.asarray(COLOR_MATRIX)

    def image_fn(t):
        return to_valid_rgb(be, t, decorrelate, matrix)

    return Param(be.asarray(init), image_fn, "pixel")


def fourier(be, rngs, size: int, sd: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True) -> Param:
    """Lucid's Fourier parameterization: a 1/f-scaled spectrum (re, im) per channel."""
    wf = size // 2 + 1
    init = _draw(rngs, (2, 3, size, wf), sd)
    scale = be.asarray(spectrum_scale(size, size, decay_power))
    matrix = be.asarray(COLOR_MATRIX)

    def image_fn(t):
        re, im = t[:, 0] * scale, t[:, 1] * scale
        img = be.irfft2(re, im, (size, size)) / 4.0  # Lucid divides by 4 to keep the start near grey
        return to_valid_rgb(be, be.transpose(img, (0, 2, 3, 1)), decorrelate, matrix)

    return Param(be.asarray(init), image_fn, "fourier")


@lru_cache(maxsize=8)
def natural_magnitude(size: int) -> np.ndarray:
    """Mean Fourier magnitude ``(3, size, size // 2 + 1)`` of the bundled sample photos (MACO's prior)."""
    from ..images import SAMPLE_IMAGES, resize, sample_image

    mags = []
    for name in SAMPLE_IMAGES:
        try:
            img = resize(sample_image(name), size, crop=True)
        except Exception:  # a missing optional sample source just drops out of the average
            continue
        chw = np.transpose(img - img.mean(axis=(0, 1)), (2, 0, 1))
        mags.append(np.abs(np.fft.rfft2(chw)))
    if not mags:
        return spectrum_scale(size, size)[None].repeat(3, 0) / np.sqrt(size * size)
    return np.mean(mags, axis=0).astype(np.float32)


def maco(be, rngs, size: int, decorrelate: bool = False) -> Param:
    """MACO (Fel et al. 2023): optimize only the phase; the magnitude is a natural-image spectrum."""
    wf = size // 2 + 1
    init = np.stack([r.uniform(-np.pi, np.pi, size=(3, size, wf)) for r in rngs]).astype(np.float32)
    mag = be.asarray(natural_magnitude(size))
    matrix = be.asarray(COLOR_MATRIX)

    def image_fn(phase):
        img = be.irfft2(mag * be.cos(phase), mag * be.sin(phase), (size, size))
        mean = be.mean(img, axis=(1, 2, 3), keepdims=True)
        std = be.sqrt(be.mean((img - mean) ** 2, axis=(1, 2, 3), keepdims=True)) + 1e-6
        img = be.transpose((img - mean) / std, (0, 2, 3, 1))
        return to_valid_rgb(be, img, decorrelate, matrix)

    return Param(be.asarray(init), image_fn, "maco")

