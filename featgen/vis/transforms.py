"""Random transforms for transformation robustness, fused into ONE affine warp per image per step.

A stack (pad, jitter, scale, rotate, jitter, optional crop) is sampled per image from its own
NumPy generator and composed into a 2×3 matrix (output → input pixel coordinates, the backend
convention), so a step costs one bilinear warp instead of five tensor ops. A render draws the
matrices of all its steps up front (:meth:`TransformStack.sample_steps`, vectorized over steps)
and uploads them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import FeatgenError, suggest


@dataclass(frozen=True)
class TransformStack:
    """Parameters of the stack. ``pad_mode="constant"`` pads with grey 0.5 (Lucid); or ``"reflect"``."""

    pad: int = 12
    jitter1: int = 8
    scales: tuple[float, ...] = tuple(1 + (i - 5) / 50.0 for i in range(11))
    angles: tuple[float, ...] = tuple(range(-10, 11)) + (0,) * 5
    jitter2: int = 4
    crop: bool = False
    pad_mode: str = "constant"
    name: str = field(default="custom", compare=False)

    def out_size(self, size: int) -> int:
        """Side of the transformed image (what the model sees)."""
        if self.crop:
            return size
        return size + 2 * self.pad - max(self.jitter1 - 1, 0) - max(self.jitter2 - 1, 0)

    def min_size(self) -> int:
        return max(2 * self.jitter1 + 2 * self.jitter2, 8)

    def sample(self, rngs: Sequence[np.random.Generator], size: int) -> np.ndarray:
        """One ``(N, 2, 3)`` matrix per generator, mapping output to input pixel coordinates."""
        return self.sample_steps(rngs, size, 1)[0]

    def sample_steps(self, rngs: Sequence[np.random.Generator], size: int, steps: int) -> np.ndarray:
        """``(steps, N, 2, 3)`` matrices: each generator draws its image's parameters for all steps."""
        per_image = [self._draw(rng, size, steps) for rng in rngs]
        return np.stack(per_image, axis=1) if per_image else np.zeros((steps, 0, 2, 3))

    def _draw(self, rng: np.random.Generator, size: int, steps: int) -> np.ndarray:
        p = self.pad
        c1 = size + 2 * p - max(self.jitter1 - 1, 0)  # canvas after the first jitter crop
        c2 = c1 - max(self.jitter2 - 1, 0)
        shift = (c2 - size) / 2.0 if self.crop else 0.0
        o1 = rng.integers(0, max(self.jitter1, 1), size=(steps, 2))
        s = np.asarray(self.scales)[rng.integers(len(self.scales), size=steps)] if self.scales else np.ones(steps)
        a = np.deg2rad(np.asarray(self.angles, np.float64)[rng.integers(len(self.angles), size=steps)]) \
            if self.angles else np.zeros(steps)  # fmt: skip
        o2 = rng.integers(0, max(self.jitter2, 1), size=(steps, 2))
        cos, sin = np.cos(a) / s, np.sin(a) / s
        lin = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # rotate back, unscale
        centre = c1 / 2.0
        offset = np.einsum("sij,sj->si", lin, shift + o2 - centre) + centre + o1 - p
        return np.concatenate([lin, offset[..., None]], axis=-1)


PRESETS: dict[str, TransformStack] = {
    "none": TransformStack(pad=0, jitter1=0, scales=(), angles=(), jitter2=0, crop=True, name="none"),
    # lucid.optvis.transform.standard_transforms
    "lucid": TransformStack(name="lucid"),
    # Distill "Feature Visualization" (2017): pad 16, jitter 16, scale, rotate ±5°, jitter 8, crop.
    "distill2017": TransformStack(
        pad=16, jitter1=16, scales=(1.0, 0.975, 1.025, 0.95, 1.05), angles=tuple(range(-5, 6)),
        jitter2=8, crop=True, pad_mode="reflect", name="distill2017",
    ),  # fmt: skip
}


def get_transforms(spec: str | TransformStack | None) -> TransformStack:
    """A preset by name (``"lucid"``, ``"distill2017"``, ``"none"``) or a TransformStack."""
    if spec is None:
        return PRESETS["none"]
    if isinstance(spec, TransformStack):
        return spec
    if spec not in PRESETS:
        raise FeatgenError(f"unknown transforms {spec!r}: choose {', '.join(PRESETS)}.{suggest(spec, PRESETS)}")
    return PRESETS[spec]


def apply(be, images, mats, stack: TransformStack, size: int):
    """Warp NHWC ``images`` with ``mats`` (NumPy or a device tensor ``(N, 2, 3)``); constant padding
    is grey (warp ``x - 0.5`` with zeros)."""
    out = stack.out_size(size)
    if stack.pad_mode == "constant":
        return be.warp(images - 0.5, mats, (out, out), mode="zeros") + 0.5
    return be.warp(images, mats, (out, out), mode="reflect")
