"""What a cache entry must hold: each view's arrays, stated from its job, as the cache checks them.

The render stage writes these arrays (see :mod:`featgen.site.render.renderer`); the cache checks an entry
against its :class:`Expected` arrays before it decompresses a byte of them (names, dtypes, shapes
and so the size of each, from the ``.npy`` headers), and checks the values that index other
arrays after. So a damaged or hostile entry is refused, not trusted: a zip bomb, an entry with
fewer images than units, offsets past the end of a JPEG blob.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .jobs import RenderJob

JPEG_SLACK = 4096  # bytes a JPEG may add to its pixels' raw size (headers, tables; q88 never grows more)
MAX_NAME_CHARS = 4096  # a scanned file's name
MAX_NAMES_BYTES = 256 << 20  # the scanned files' names (an ImageNet validation set's take 8 MB)


@dataclass(frozen=True)
class Array:
    """One array of an entry: its dtype (``"u1"``, ``"f4"``, ``"i4"``, ``"i8"``, or ``"U"``: text of
    any width), its shape (``None``: any length) and, where a length is open, at most ``most``
    bytes."""

    dtype: str
    shape: tuple[int | None, ...]
    most: int = 0
    optional: bool = False

    def max_bytes(self) -> int:
        return self.most if None in self.shape else math.prod(self.shape) * int(self.dtype[1:])

    def problem(self, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
        """Why an array of ``dtype`` and ``shape`` is not this one, or None."""
        kind = dtype.kind == "U" and dtype.itemsize <= 4 * MAX_NAME_CHARS if self.dtype == "U" else (
            dtype.str[1:] == self.dtype and dtype.byteorder in "<|=")  # fmt: skip
        if not kind:
            return f"dtype {dtype.str}, expected {self.dtype}"
        if len(shape) != len(self.shape) or any(d is not None and d != s for d, s in zip(self.shape, shape)):
            want = str(tuple("N" if d is None else d for d in self.shape)).replace("'", "")
            return f"shape {tuple(shape)}, expected {want}"
        if None in self.shape and math.prod(shape) * dtype.itemsize > self.most:
            return f"shape {tuple(shape)}, over {self.most:,} bytes"
        return None


@dataclass(frozen=True)
class Expected:
    """The arrays an entry must hold (by name), and a check of their values once read."""

    arrays: dict[str, Array]
    values: Callable[[dict[str, np.ndarray]], None] | None = field(default=None, compare=False)

    def max_bytes(self) -> int:
        """The most bytes the arrays may take decompressed (what the cache allows an entry)."""
        return sum(a.max_bytes() for a in self.arrays.values()) + 1024 * len(self.arrays)  # + .npy headers

    def check_header(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Raise ValueError if array ``name`` of ``dtype`` and ``shape`` does not belong here."""
        spec = self.arrays.get(name)
        if spec is None:
            raise ValueError(f"an array {name!r} that no such entry holds")
        why = spec.problem(dtype, shape)
        if why is not None:
            raise ValueError(f"{name} has {why}")

    def check_names(self, names: set[str]) -> None:
        """Raise ValueError if a required array is missing."""
        missing = [n for n, a in self.arrays.items() if not a.optional and n not in names]
        if missing:
            raise ValueError(f"no {', '.join(missing)} array")

    def check_values(self, arrays: dict[str, np.ndarray]) -> None:
        if self.values is not None:
            self.values(arrays)


def _optimized(job: RenderJob) -> Expected:
    o = job.options
    n = len(job.units) * (int(o.get("diversity", 1)) if job.view == "diversity" else 1)
    size, steps = int(o["size"]), int(o["steps"])
    return Expected({
        "images": Array("u1", (n, size, size, 3)), "start": Array("f4", (n,)), "final": Array("f4", (n,)),
        "losses": Array("f4", (n, steps)), "valid_final": Array("f4", (n,), optional=True),
    })  # fmt: skip


def _blob(arrays: dict[str, np.ndarray], prefix: str, count: int) -> None:
    """JPEG blob ``prefix_jpeg`` with ``count + 1`` offsets that start at 0, never go back, and end at its length."""
    offsets, data = arrays[f"{prefix}_offsets"], arrays[f"{prefix}_jpeg"]
    if offsets.shape != (count + 1,) or offsets[0] != 0 or offsets[-1] != len(data) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{prefix}_offsets do not cut {prefix}_jpeg into {count} pictures")


def _photos(job: RenderJob, input_size: int) -> Expected:
    o = job.options
    n, photos, top = len(job.units), len(o.get("photos") or ()), int(o.get("top", 1))
    crop = min(int(o.get("crop", input_size)), input_size)
    out: dict[str, Array] = {}
    if photos:  # one strip a unit: the photos side by side, 4 px apart
        strip = photos * (input_size + 4) ** 2 * 3 + JPEG_SLACK
        out.update(strip_jpeg=Array("u1", (None,), most=n * strip), strip_offsets=Array("i8", (n + 1,)),
                   peaks=Array("f4", (n, photos)))  # fmt: skip
    if o.get("examples"):
        out["files"] = Array("U", (None,), most=MAX_NAMES_BYTES)
        for kind in ("top", "bottom"):
            out.update({f"{kind}_jpeg": Array("u1", (None,), most=n * top * (crop * crop * 3 + JPEG_SLACK)),
                        f"{kind}_offsets": Array("i8", (None,), most=(n * top + 1) * 8),
                        f"{kind}_file": Array("i4", (n, None), most=n * top * 4),
                        f"{kind}_value": Array("f4", (n, None), most=n * top * 4)})  # fmt: skip

    def values(arrays: dict[str, np.ndarray]) -> None:
        if "strip_jpeg" in arrays:
            _blob(arrays, "strip", n)
        if "files" in arrays:
            k = min(top, len(arrays["files"]))
            for kind in ("top", "bottom"):
                index = arrays[f"{kind}_file"]
                if index.shape != (n, k) or arrays[f"{kind}_value"].shape != (n, k):
                    raise ValueError(f"{kind}_file has shape {index.shape}, expected ({n}, {k})")
                if index.size and (index.min() < 0 or index.max() >= len(arrays["files"])):
                    raise ValueError(f"{kind}_file points past the {len(arrays['files'])} scanned files")
                _blob(arrays, kind, n * k)

    return Expected(out, values)


def job_arrays(job: RenderJob, input_size: int) -> Expected:
    """The arrays of ``job``'s entry: for its view, units, size and steps (``input_size``: the model's,
    which sizes the photo strips and crops)."""
    return _photos(job, input_size) if job.view == "photos" else _optimized(job)


MAX_KERNEL = 64  # a first convolution's kernel side
MODEL_INFO = Expected({"kernels": Array("f4", (None, None, 3, None), most=MAX_KERNEL**2 * 3 * 4 * 4096, optional=True)})

__all__ = ["Array", "Expected", "job_arrays", "MODEL_INFO", "MAX_KERNEL"]
