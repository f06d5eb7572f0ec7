"""Random transforms for transformation robustness, fused into ONE affine warp per image per step.

A stack (pad, jitter, scale, rotate, jitter, optional crop) is sampled per image from its own
NumPy generator and composed into a 2×3 matrix (output → input pixel coordinates, the backend
convention), so a step costs one bilinear warp instead of five tensor ops.
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
        p = self.pad
        c1 = size + 2 * p - max(self.jitter1 - 1, 0)  # canvas after the first jitter crop
        c2 = c1 - max(self.jitter2 - 1, 0)
        shift = (c2 - size) / 2.0 if self.crop else 0.0
        mats = np.empty((len(rngs), 2, 3), np.float64)
        for i, rng in enumerate(rngs):
            o1 = rng.integers(0, max(self.jitter1, 1), size=2)
            s = self.scales[rng.integers(len(self.scales))] if self.scales else 1.0
            a = np.deg2rad(self.angles[rng.integers(len(self.angles))]) if self.angles else 0.0
            o2 = rng.integers(0, max(self.jitter2, 1), size=2)
            rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
            lin = rot_inv / s
            centre = np.array([c1 / 2.0, c1 / 2.0])
            offset = lin @ (shift + o2 - centre) + centre + o1 - p
            mats[i, :, :2] = lin
            mats[i, :, 2] = offset
        return mats


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


def apply(be, images, mats: np.ndarray, stack: TransformStack, size: int):
    """Warp NHWC ``images`` with ``mats``; constant padding is grey (warp ``x - 0.5`` with zeros)."""
    out = stack.out_size(size)
    if stack.pad_mode == "constant":
        return be.warp(images - 0.5, mats, (out, out), mode="zeros") + 0.5
    return be.warp(images, mats, (out, out), mode="reflect")
