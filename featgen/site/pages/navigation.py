"""Links between gallery pages: neighbouring layers, the layer strip, thumbnail rows, and the
torch | TensorFlow pairs with each unit's image correlation (plain dicts and NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def neighbours(items: Sequence[Any], current: Any) -> tuple[Any | None, Any | None]:
    """The items before and after ``current`` in ``items`` (None at either end)."""
    i = list(items).index(current)
    return (items[i - 1] if i else None), (items[i + 1] if i + 1 < len(items) else None)


def layer_strip(layers: Sequence[str], current: str | None = None) -> list[dict[str, Any]]:
    """One entry per rendered layer of a model in a backend, in model order: ``layer``, ``index``
    (1-based), ``current``."""
    return [{"layer": name, "index": i + 1, "current": name == current} for i, name in enumerate(layers)]


def layer_nav(layers: Sequence[str], current: str) -> dict[str, Any]:
    """What a layer page gains: ``prev_layer``, ``next_layer`` and ``strip``."""
    prev, nxt = neighbours(layers, current)
    return {"prev_layer": prev, "next_layer": nxt, "strip": layer_strip(layers, current)}


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


def planned_pairs(rows: Sequence[dict[str, Any]], model: str) -> list[str]:
    """The layers of ``model`` that a plan (rows of ``model``, ``backend``, ``layer``) renders in both
    torch and TensorFlow: known before anything renders, so every layer page can link its pair."""
    by_backend: dict[str, list[str]] = {}
    for r in rows:
        if r["model"] == model:
            by_backend.setdefault(r["backend"], []).append(r["layer"])
    return shared_layers(by_backend)


def compare_units(images_a: np.ndarray, images_b: np.ndarray, units: Sequence[int]) -> list[dict[str, Any]]:
    """Per unit of a layer rendered in two backends: ``unit`` and the ``correlation`` of its images
    (the first ``len(units)`` images of each)."""
    n = min(len(units), len(images_a), len(images_b))
    return [{"unit": int(units[i]), "correlation": image_correlation(images_a[i], images_b[i])} for i in range(n)]


def unit_links(units: Sequence[int], current: int) -> dict[str, Any]:
    """``prev`` and ``next`` unit of a layer, for links and ``rel`` keyboard navigation."""
    prev, nxt = neighbours(units, current)
    return {"prev": prev, "next": nxt}
