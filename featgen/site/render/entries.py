"""What a cache entry must hold, as the cache checks it: :class:`Expected` arrays, which each view
states from its job (:meth:`featgen.site.views.View.expected`).

The render stage writes these arrays; the cache checks an entry against its :class:`Expected`
arrays before it decompresses a byte of them (names, dtypes, shapes
and so the size of each, from the ``.npy`` headers), and checks the values that index other
arrays after. So a damaged or hostile entry is refused, not trusted: a zip bomb, an entry with
fewer images than units, offsets past the end of a JPEG blob.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
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


def blob(arrays: dict[str, np.ndarray], prefix: str, count: int) -> None:
    """JPEG blob ``prefix_jpeg`` with ``count + 1`` offsets that start at 0, never go back, and end at its length."""
    offsets, data = arrays[f"{prefix}_offsets"], arrays[f"{prefix}_jpeg"]
    if offsets.shape != (count + 1,) or offsets[0] != 0 or offsets[-1] != len(data) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{prefix}_offsets do not cut {prefix}_jpeg into {count} pictures")


def job_arrays(job: RenderJob, input_size: int) -> Expected:
    """The arrays of ``job``'s entry, as its view states them (``input_size``: the model's, which
    sizes the photo strips and crops)."""
    from .. import views

    return views.get(job.view).expected(job, input_size)


MAX_KERNEL = 64  # a first convolution's kernel side
MODEL_INFO = Expected({"kernels": Array("f4", (None, None, 3, None), most=MAX_KERNEL**2 * 3 * 4 * 4096, optional=True)})

__all__ = ["Array", "Expected", "job_arrays", "blob", "MODEL_INFO", "MAX_KERNEL"]
