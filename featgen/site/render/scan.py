"""The dataset-example scan: one forward-only pass of a collection through a model, every gallery
layer hooked at once, in shards.

A :class:`ScanJob` reads images ``start .. stop`` of a collection (a shard: a job like a render job,
run by any executor and cached by its key). Per batch, each hooked layer's feature maps are reduced
on the device to three numbers per image and unit: the spatial maximum, its position and the
spatial mean. A :class:`TopK` keeps, per unit, the ``k`` images with the
highest maximum and the ``k`` with the lowest mean, so memory is O(units × k) whatever the
collection's size. Merging is associative and deterministic: ties go to the lower image index, so
shards merged in any order give the same result (:func:`merge_entries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .entries import Array, Expected
from .jobs import cache_key

SCAN_VERSION = "scan-3"  # 2: layers behind an activation are read before it; 3: counts the predicted classes
SENTINEL = np.iinfo(np.int32).max  # the image index of an empty slot: after every real one


@dataclass(frozen=True)
class ScanJob:
    """Images ``start .. stop`` of a collection through ``layers`` (native names) of one model.

    It has what executors read of a job: ``key``, ``units`` (here: the images, which the progress
    bar counts), ``siblings``, ``label()`` and ``meta()``. ``settings`` hold what the result depends on:
    the collection's digest, the input size, ``k``, the weights' digest."""

    model: str
    backend: str
    device: str | None
    precision: str
    layers: tuple[str, ...]
    start: int
    stop: int
    settings: tuple[tuple[str, Any], ...] = ()
    siblings: tuple = ()
    view: str = field(default="scan", init=False)
    layer: str = field(default="(every gallery layer)", init=False)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.settings)

    @property
    def units(self) -> range:
        return range(self.start, self.stop)

    @property
    def unit_steps(self) -> int:
        return 0

    def key_settings(self) -> dict[str, Any]:
        return {**self.options, "kind": SCAN_VERSION, "model": self.model, "backend": self.backend,
                "precision": self.precision, "layers": list(self.layers), "shard": [self.start, self.stop]}  # fmt: skip

    @property
    def key(self) -> str:
        return cache_key(self.key_settings())

    def meta(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "view": "scan", "layers": list(self.layers),
                "shard": [self.start, self.stop], "settings": self.key_settings()}  # fmt: skip

    def label(self) -> str:
        return f"{self.model}/{self.backend}/scan[{self.start}..{self.stop - 1}]"


def shards(count: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive shards of at most ``size`` images over ``count`` images."""
    return [(a, min(a + size, count)) for a in range(0, count, max(1, size))]


class TopK:
    """Per unit: the ``k`` highest spatial maxima and the ``k`` lowest spatial means seen so far, with
    their image indices and positions; how many images left the unit silent (maximum ≤ 0), and the sum
    of its means. Slots not yet filled hold ∓inf and image :data:`SENTINEL`."""

    def __init__(self, units: int, k: int):
        self.k = k
        self.top_value = np.full((units, k), -np.inf, np.float32)
        self.top_image = np.full((units, k), SENTINEL, np.int32)
        self.top_pos = np.zeros((units, k), np.int32)
        self.bottom_value = np.full((units, k), np.inf, np.float32)
        self.bottom_image = np.full((units, k), SENTINEL, np.int32)
        self.bottom_pos = np.zeros((units, k), np.int32)
        self.silent = np.zeros(units, np.int64)
        self.mean_sum = np.zeros(units, np.float64)

    def add(self, index: np.ndarray, peak: np.ndarray, at_peak: np.ndarray, mean: np.ndarray) -> None:
        """Merge a batch: ``(B, units)`` arrays of the images numbered ``index`` (B,)."""
        images = np.broadcast_to(np.asarray(index, np.int32)[None, :], (peak.shape[1], len(peak)))
        self._merge("top", peak.T, images, at_peak.T)
        self._merge("bottom", mean.T, images, at_peak.T)
        self.silent += (peak <= 0).sum(axis=0)
        self.mean_sum += mean.astype(np.float64).sum(axis=0)

    def update(self, other: TopK) -> None:
        """Merge another state (a shard's)."""
        self._merge("top", other.top_value, other.top_image, other.top_pos)
        self._merge("bottom", other.bottom_value, other.bottom_image, other.bottom_pos)
        self.silent += other.silent
        self.mean_sum += other.mean_sum

    def _merge(self, kind: str, value: np.ndarray, image: np.ndarray, pos: np.ndarray) -> None:
        v = np.concatenate([getattr(self, f"{kind}_value"), value.astype(np.float32)], axis=1)
        im = np.concatenate([getattr(self, f"{kind}_image"), image.astype(np.int32)], axis=1)
        p = np.concatenate([getattr(self, f"{kind}_pos"), pos.astype(np.int32)], axis=1)
        order = np.lexsort((im, -v if kind == "top" else v), axis=1)[:, : self.k]  # ties: the lower index
        for name, a in (("value", v), ("image", im), ("pos", p)):
            setattr(self, f"{kind}_{name}", np.take_along_axis(a, order, axis=1))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{kind}_{name}": getattr(self, f"{kind}_{name}") for kind in ("top", "bottom")
                for name in ("value", "image", "pos")} | {"silent": self.silent, "mean_sum": self.mean_sum}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TopK:
        t = cls(len(arrays["silent"]), arrays["top_value"].shape[1])
        for name in t.arrays():
            setattr(t, name, arrays[name].copy())
        return t


def batch_reductions(model, batch: np.ndarray, captures: list[str],
                     classes: bool = False) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray | None]:  # fmt: skip
    """Per capture, ``(max, argmax, mean)`` over positions, each ``(B, C)``, of one batch of images
    (NHWC uint8 or float in [0, 1] at the model's input size), and with ``classes`` the class each
    image is predicted as (the largest logit; else None). ``captures`` name what
    :meth:`~featgen.backends.base.ModelRunner.forward` captures: for a layer that ends in an
    activation, its :meth:`~featgen.backends.base.ModelRunner.linear_output`, whose maximum and
    where are the same wherever the unit fires, and where images that leave it at 0 keep their order
    instead of tying. The feature maps never leave the device: only these three numbers per image
    and unit do, from two passes over each map."""
    be = model.backend
    x = be.asarray(batch.astype(np.float32) / 255.0 if batch.dtype == np.uint8 else batch)
    out = []
    with be.no_grad():
        result = be.forward(model, x, capture=captures, logits=classes)
        acts = result.activations
        predicted = np.argmax(be.to_numpy(result.logits).reshape(len(batch), -1), axis=1) if classes else None
        for name in captures:
            a = acts[name]
            n, h, w, c = be.shape(a)
            flat = be.reshape(a, (n, h * w, c))
            peak, at_peak = be.max_and_argmax(flat, axis=1)
            out.append(tuple(be.to_numpy(t) for t in (peak, at_peak, be.mean(flat, axis=1))))
    return out, predicted


def scan_arrays(model, layers: tuple[str, ...], images: Any, k: int, batch: int = 32) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Stream ``images`` (an iterable of ``(index, uint8 image | None)``; None: skipped) through
    ``layers`` in batches of ``batch``. Returns a shard entry's arrays (every layer's units one after
    another), ``predicted`` (how many images the model predicts as each of its classes, if it is a
    classifier) and what its meta records: the layers' grids, channels, whether each was read before
    its activation, and the images read."""
    be = model.backend
    captures = [be.linear_output(model, name) for name in layers]
    predicted = np.zeros(len(model.labels), np.int64)
    states: list[TopK] | None = None
    grids: list[tuple[int, int]] = []
    skipped: list[int] = []
    read = 0
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        nonlocal states
        index = np.asarray([i for i, _ in pending])
        red, classes = batch_reductions(model, np.stack([im for _, im in pending]), captures, bool(len(predicted)))
        if classes is not None:
            np.add.at(predicted, classes, 1)
        if states is None:
            states = [TopK(r[0].shape[1], k) for r in red]
        for state, r in zip(states, red):
            state.add(index, *r)
        pending.clear()

    for index, image in images:
        if image is None:
            skipped.append(index)
            continue
        read += 1
        pending.append((index, image))
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    if states is None:  # nothing readable in this shard
        states = [TopK(int(model.layer_info(n).channels), k) for n in layers]
    for name in layers:
        row = model.layer_info(name)
        grids.append((int(row.shape[0]), int(row.shape[1])))
    arrays = {name: np.concatenate([getattr(s, name) for s in states]) for name in states[0].arrays()}
    arrays["skipped"] = np.asarray(skipped, np.int32)
    arrays["predicted"] = predicted
    before = [c != name for c, name in zip(captures, layers)]
    return arrays, {"read": read, "channels": [len(s.silent) for s in states], "grids": grids, "before_activation": before}


def scan_expected(job: ScanJob, channels: list[int]) -> Expected:
    """What a shard entry holds, for ``channels`` units per layer (from the plan's layer table)."""
    units, k = sum(channels), int(job.options["k"])
    out = {f"{kind}_{name}": Array(dtype, (units, k)) for kind in ("top", "bottom")
           for name, dtype in (("value", "f4"), ("image", "i4"), ("pos", "i4"))}  # fmt: skip
    out["silent"] = Array("i8", (units,))
    out["mean_sum"] = Array("f8", (units,))
    out["skipped"] = Array("i4", (None,), most=4 * (job.stop - job.start))
    out["predicted"] = Array("i8", (int(job.options.get("classes", 0)),))

    def values(arrays: dict[str, np.ndarray]) -> None:
        for kind in ("top", "bottom"):
            im = arrays[f"{kind}_image"]
            if np.any((im != SENTINEL) & ((im < job.start) | (im >= job.stop))):
                raise ValueError(f"{kind}_image points outside the shard {job.start}..{job.stop - 1}")
        sk = arrays["skipped"]
        if sk.size and (sk.min() < job.start or sk.max() >= job.stop):
            raise ValueError("skipped points outside the shard")

    return Expected(out, values)


def merge_entries(parts: list[dict[str, np.ndarray]]) -> TopK:
    """The shards' states merged (in any order: the result is the same)."""
    total = TopK.from_arrays(parts[0])
    for p in parts[1:]:
        total.update(TopK.from_arrays(p))
    return total
