"""Objectives: what a visualization maximizes, per image of the batch, composable with + - and *.

An objective maps ``(backend, activations, logits)`` to a ``(N,)`` tensor: one value per image,
so each image of a batch can maximize its own unit. It names the layers it reads and whether it
needs the logits, so the forward pass can stop right after the deepest layer it needs.

Per-image arguments (units, classes, diversity groups) describe the images of a whole
:func:`~featgen.vis.visualize` call; :meth:`Objective.rows` restricts them to one batch of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FeatgenError

Fn = Callable[[Any, dict, Any], Any]


@dataclass(frozen=True)
class Objective:
    """A per-image objective. Build with the functions below; combine with ``+``, ``-``, ``*``."""

    fn: Fn
    layers: tuple[str, ...] = ()
    needs_logits: bool = False
    name: str = "objective"
    slicer: Callable[[int, int], Objective] | None = None  # per-image arguments cut to rows [a, b)
    picks: tuple[int, ...] | None = None  # the one channel of its layer each image reads (cyclic), if one

    def __call__(self, be, acts: dict, logits: Any = None):
        return self.fn(be, acts, logits)

    def channels(self, n: int) -> tuple[int, ...] | None:
        """The one channel of its only layer that each of ``n`` images reads, or None when an image
        reads more. A backend may then compute just those channels of the layer (the forward's
        ``channels``), and the objective reads them as a layer of one channel."""
        if self.picks is None or len(self.layers) != 1 or self.needs_logits:
            return None
        return tuple(self.picks[i % len(self.picks)] for i in range(n))

    def rows(self, start: int, stop: int) -> Objective:
        """The objective for images ``start..stop`` of the call (a batch): per-image lists sliced.
        An objective without per-image arguments is returned as it is."""
        return self.slicer(start, stop) if self.slicer is not None else self

    def _merge(self, other: Objective, fn: Fn, name: str, sliced: Callable[[int, int], Objective]) -> Objective:
        layers = tuple(dict.fromkeys(self.layers + other.layers))
        return Objective(fn, layers, self.needs_logits or other.needs_logits, name, sliced)

    def __add__(self, other: Objective) -> Objective:
        return self._merge(other, lambda be, a, z: self(be, a, z) + other(be, a, z), f"{self.name} + {other.name}",
                           lambda i, j: self.rows(i, j) + other.rows(i, j))  # fmt: skip

    def __sub__(self, other: Objective) -> Objective:
        return self._merge(other, lambda be, a, z: self(be, a, z) - other(be, a, z), f"{self.name} - {other.name}",
                           lambda i, j: self.rows(i, j) - other.rows(i, j))  # fmt: skip

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, (int, float, np.floating, np.integer)):
            return NotImplemented
        return Objective(lambda be, a, z: self(be, a, z) * float(k), self.layers, self.needs_logits,
                         f"{k} * {self.name}", lambda i, j: self.rows(i, j) * k, self.picks)  # fmt: skip

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0


def _per_image(units: int | Sequence[int]) -> list[int]:
    return [int(units)] if isinstance(units, (int, np.integer)) else [int(u) for u in units]


def _cut(values: list, start: int, stop: int) -> list:
    """Rows ``start..stop`` of a per-image list that repeats cyclically (one value serves all)."""
    return [values[i % len(values)] for i in range(start, stop)]


def _constant(cache: dict, be, key: tuple, make: Callable[[], np.ndarray]):
    """A device constant built once per backend, dtype and ``key`` (hot loops must not re-upload)."""
    full = (be.name, be.device, be.dtype) + key
    if full in cache:
        return cache[full]
    value = be.asarray(make())
    if be.eager():  # a constant made inside a trace belongs to that graph: not kept
        cache[full] = value
    return value


def _selector(units: list[int]) -> Callable[[Any, Any], Any]:
    """Per-image channel selection with a one-hot mask (works in both frameworks, no gather)."""
    cache: dict = {}

    def select(be, act):
        shape = be.shape(act)
        n, c = shape[0], shape[-1]
        if c == 1:  # the image's own channel, computed alone (see Objective.channels), or a 1-channel layer
            return act[..., 0]

        def make():
            mask = np.zeros((n, c), np.float32)
            mask[np.arange(n), [units[i % len(units)] for i in range(n)]] = 1.0
            return mask.reshape((n,) + (1,) * (len(shape) - 2) + (c,))

        return be.sum(act * _constant(cache, be, (n, c, len(shape)), make), axis=-1)

    return select


def channel(layer: str, units: int | Sequence[int], border: int = 0) -> Objective:
    """Mean activation of one channel per image (``units[i]`` for image ``i``), without a ``border``."""
    us = _per_image(units)
    select = _selector(us)

    def fn(be, acts, _):
        a = acts[layer]
        if border and min(be.shape(a)[1:3]) > 2 * border:  # tiny maps keep their border
            a = a[:, border:-border, border:-border, :]
        return be.mean(select(be, a), axis=(1, 2))

    return Objective(fn, (layer,), name=f"channel({layer})", slicer=lambda i, j: channel(layer, _cut(us, i, j), border),
                     picks=tuple(us))  # fmt: skip


def neuron(layer: str, units: int | Sequence[int], x: int | None = None, y: int | None = None) -> Objective:
    """One spatial position of a channel (default: the centre)."""
    us = _per_image(units)
    select = _selector(us)

    def fn(be, acts, _):
        a = acts[layer]
        h, w = be.shape(a)[1:3]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        return select(be, a[:, yy : yy + 1, xx : xx + 1, :])[:, 0, 0]

    return Objective(fn, (layer,), name=f"neuron({layer})", slicer=lambda i, j: neuron(layer, _cut(us, i, j), x, y),
                     picks=tuple(us))  # fmt: skip


def deepdream(layer: str) -> Objective:
    """DeepDream: the mean squared activation of a whole layer."""

    def fn(be, acts, _):
        a = acts[layer]
        return be.mean(a * a, axis=tuple(range(1, len(be.shape(a)))))

    return Objective(fn, (layer,), name=f"deepdream({layer})")


layer = deepdream


def direction(layer: str, vector: np.ndarray) -> Objective:
    """Mean over positions of the dot product with a direction in channel space."""
    vec = np.asarray(vector, np.float32)
    cache: dict = {}

    def fn(be, acts, _):
        a = acts[layer]
        dots = be.sum(a * _constant(cache, be, (), lambda: vec), axis=-1)
        return be.mean(dots, axis=tuple(range(1, len(be.shape(dots))))) if len(be.shape(dots)) > 1 else dots

    return Objective(fn, (layer,), name=f"direction({layer})")


def class_logit(classes: int | Sequence[int]) -> Objective:
    """The logit of a class (per image)."""
    cs = _per_image(classes)
    select = _selector(cs)

    def fn(be, _acts, logits):
        return select(be, logits)

    return Objective(fn, (), needs_logits=True, name="class_logit", slicer=lambda i, j: class_logit(_cut(cs, i, j)))


def _runs(groups: Sequence[Any]) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal labels; a label may not come back after its run ends."""
    runs: list[tuple[int, int]] = []
    seen: set = set()
    for i, g in enumerate(groups):
        if runs and groups[runs[-1][0]] == g:
            runs[-1] = (runs[-1][0], i + 1)
            continue
        if g in seen:
            raise FeatgenError(f"diversity groups must be contiguous: label {g!r} comes back at image {i}; "
                               "put each group's images next to each other, e.g. units=[0, 0, 1, 1], groups=units.")  # fmt: skip
        seen.add(g)
        runs.append((i, i + 1))
    return runs


def diversity(layer: str, groups: Sequence[Any] | None = None) -> Objective:
    """Minus the mean cosine similarity of each image's Gram matrix to the others' (Lucid).

    ``groups``: one label per image (contiguous runs, e.g. ``groups=units`` for
    ``units=[0, 0, 0, 0, 1, 1, 1, 1]``); the penalty acts only between images with the same label,
    so the diverse images of many units share one optimization. Groups of one size are computed
    together, as one batched product, so the penalty costs the same for one group as for hundreds;
    each image's value depends on its own group's rows only. Default: one group.
    A batch boundary inside a group splits it, so keep ``batch_size`` a multiple of the group size.
    """
    labels = None if groups is None else list(groups)
    runs = None if labels is None else _runs(labels)
    cache: dict = {}

    def fn(be, acts, _):
        a = acts[layer]
        n, h, w, c = be.shape(a)
        flat = be.reshape(a, (n, h * w, c))
        grams = be.einsum("npc,npd->ncd", flat, flat) / float(h * w)
        grams = be.reshape(grams, (n, c * c))
        grams = grams / (be.sqrt(be.sum(grams * grams, axis=1, keepdims=True)) + 1e-8)
        if labels is not None and len(labels) != n:
            raise FeatgenError(f"diversity got {len(labels)} group labels for a batch of {n} images; give one per image.")
        sizes = {stop - start for start, stop in runs or [(0, n)]}
        if len(sizes) == 1:  # equal groups, in order: one batched product over all of them
            m = sizes.pop()
            g = be.reshape(grams, (n // m, m, c * c))
            sims = be.einsum("gnk,gmk->gnm", g, g)
            return be.reshape(-be.sum(sims * _off_diagonal(cache, be, m), axis=2) / float(max(m - 1, 1)), (n,))
        parts = []
        for start, stop in runs:
            g = grams[start:stop]
            m = stop - start
            sims = be.einsum("nk,mk->nm", g, g)
            parts.append(-be.sum(sims * _off_diagonal(cache, be, m), axis=1) / float(max(m - 1, 1)))
        return be.concat(parts)

    sliced = None if labels is None else (lambda i, j: diversity(layer, _cut(labels, i, j)))
    return Objective(fn, (layer,), name=f"diversity({layer})", slicer=sliced)


def _off_diagonal(cache: dict, be, m: int):
    """``1 - I`` of side ``m``: which pairs of a group's images the penalty counts."""
    return _constant(cache, be, (m,), lambda: 1.0 - np.eye(m, dtype=np.float32))


def negative(objective: Objective) -> Objective:
    """Minimize instead of maximize."""
    return -objective
