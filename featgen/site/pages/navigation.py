"""Links between gallery pages: neighbours in a list, the layers rendered in both backends, and
each unit's image correlation between them (plain data and NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def neighbours(items: Sequence[Any], current: Any) -> tuple[Any | None, Any | None]:
    """The items before and after ``current`` in ``items`` (None at either end)."""
    i = list(items).index(current)
    return (items[i - 1] if i else None), (items[i + 1] if i + 1 < len(items) else None)


def image_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' pixels (any shape, same size); nan if either is flat."""
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {np.shape(a)} and {np.shape(b)}")
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def shared_layers(by_backend: dict[str, Sequence[str]], pair: tuple[str, str] = ("torch", "tensorflow")) -> list[str]:
    """The layers rendered in both backends of ``pair``, in the first backend's order."""
    if not all(b in by_backend for b in pair):
        return []
    other = set(by_backend[pair[1]])
    return [name for name in by_backend[pair[0]] if name in other]


def compare_units(images_a: np.ndarray, images_b: np.ndarray, units: Sequence[int]) -> list[dict[str, Any]]:
    """Per unit of a layer rendered in two backends: ``unit`` and the ``correlation`` of its images
    (the first ``len(units)`` images of each)."""
    n = min(len(units), len(images_a), len(images_b))
    return [{"unit": int(units[i]), "correlation": image_correlation(images_a[i], images_b[i])} for i in range(n)]
