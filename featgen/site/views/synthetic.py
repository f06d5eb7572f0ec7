"""Stand-ins for rendered arrays, in the real entry format, that no model made: for benchmarks of
the page stage at the scale of a full gallery, and for tests. Entries made of them are marked
synthetic (:data:`SYNTHETIC`), and the page stage refuses them unless told they are expected.

Images are drawn with a 1/f amplitude spectrum, like a feature visualization's, so that they
compress as renders do (white noise would not compress at all, flat colour far too well).
"""

from __future__ import annotations

import functools
import io

import numpy as np

SYNTHETIC = "synthetic"  # the meta key that marks an entry no model rendered
POOL = 256  # distinct images per size; each use rolls and recolours one


RENDER_SLOPE = 1.2  # amplitude ~ 1/f^slope: renders at 96 px then weigh what the quick gallery's do as WebP
PHOTO_SLOPE = 1.4  # photos (and the activation strips over them) are smoother
# dataset-example crops: fields of early layers are small and shown enlarged, so smoother still; at
# 1.8 a sheet of 2 x 9 crops weighs 12.8 KB as WebP, the quick gallery's median is 12.5 KB
CROP_SLOPE = 1.8


@functools.lru_cache(maxsize=8)
def _pool(size: int, slope: float = RENDER_SLOPE, count: int = POOL) -> np.ndarray:
    """``count`` images of side ``size`` with a 1/f^slope spectrum, as uint8 (seeded: the same every run)."""
    rng = np.random.default_rng(size)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    amp = 1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / size) ** slope
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        spec = amp[..., None] * np.exp(2j * np.pi * rng.random((size, size // 2 + 1, 3)))
        x = np.fft.irfft2(spec, s=(size, size), axes=(0, 1))
        x = (x - x.mean()) / (x.std() + 1e-8) * 0.18 + 0.5
        out[i] = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def images(rng: np.random.Generator, n: int, size: int, slope: float = RENDER_SLOPE) -> np.ndarray:
    """``n`` synthetic images of side ``size`` (uint8, channels last), each a rolled, recoloured
    image of the pool."""
    pool = _pool(size, slope)
    picks = rng.integers(0, POOL, n)
    shifts = rng.integers(0, size, (n, 2))
    perms = np.array([rng.permutation(3) for _ in range(n)])
    return np.stack([np.roll(pool[p], tuple(s), axis=(0, 1))[..., perm] for p, s, perm in zip(picks, shifts, perms)])


def curves(rng: np.random.Generator, start: np.ndarray, final: np.ndarray, steps: int) -> np.ndarray:
    """Objective curves from ``start`` to a little below ``final`` (transforms lower them), float32."""
    t = np.linspace(0, 1, steps)[None, :]
    rise = 1 - np.exp(-4 * t)
    noise = rng.normal(0, 0.03, (len(start), steps))
    return (start[:, None] + (0.85 * final - start)[:, None] * rise * (1 + noise)).astype(np.float32)


@functools.lru_cache(maxsize=16)
def jpeg_pool(width: int, height: int, count: int = 16, slope: float = PHOTO_SLOPE) -> tuple[bytes, ...]:
    """``count`` JPEG files of synthetic pictures ``width`` × ``height`` (strips and crops)."""
    from PIL import Image

    side = min(1 << (max(width, height) - 1).bit_length(), 1024)
    out = []
    for im in _pool(side, slope, count):
        buf = io.BytesIO()
        Image.fromarray(im[:height, :width]).resize((width, height)).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return tuple(out)


def jpeg_blob(rng: np.random.Generator, width: int, height: int, n: int,
              slope: float = PHOTO_SLOPE) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``n`` synthetic JPEG files as one byte array and ``n + 1`` offsets (as ``encode_jpegs`` gives)."""
    pool = jpeg_pool(width, height, slope=slope)
    blobs = [pool[i] for i in rng.integers(0, len(pool), n)]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offsets
