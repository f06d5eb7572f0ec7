"""Expanded weights: how strongly each unit of one layer drives each unit of a later one, read from
the weights alone (no images, no optimization).

Between two adjacent convolutions, the weight from input unit ``i`` to output unit ``u`` is the
kernel slice ``W[:, :, i, u]``. Across the linear parts of a network between two layers (1x1 and
depthwise convolutions, batch norms in inference mode, residual sums, average pooling), it is the
product of those linear maps; activations are treated as the identity and max pooling as average
pooling (:meth:`~featgen.backends.base.ModelRunner.linearized`). That is the "expanded weights" of
"Visualizing Weights" (Olah et al., 2020, in the Distill Circuits thread).

The expanded weight from ``i`` to ``u`` is a small spatial kernel. It is measured with impulses: the
source layer's output is replaced by a map that is 1 at one position of channel ``i`` and 0
elsewhere, and the response of the target layer (read before its activation) minus its response to
an all-zero map is the kernel, flipped, at every output position that sees the impulse. An output
stride of ``s`` between the layers takes ``s²`` impulse positions to visit every tap once. Each link
is summarised by the kernel's L2 norm (its strength) and its sum (its sign: excitatory or inhibitory).

Everything goes through the backend protocol, so the same code serves torch and TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FeatgenError
from ..fields import receptive_field

CHUNK_BYTES = 32 << 20  # impulse maps per forward pass: a few tens of MB of source maps
BORDER_TOLERANCE = 1e-4  # response at the target's border, relative to its largest: the map was too small
LINEARITY_TOLERANCE = 1e-3  # f(2δ) - f(0) against 2 (f(δ) - f(0)), relative to the largest response
AMPLITUDE = 64.0  # the impulse: well above the rounding of the target's constant response (exact in float32)
MIN_INPUT = 64  # px: a network traced whole (Keras) must reach its last pooling with a map left
MAX_SIDE = 1024  # the largest input side tried before giving up on a field that does not fit


@dataclass(frozen=True)
class Expanded:
    """The expanded weights from every unit of ``source`` to every unit of ``target``: ``norm`` and
    ``total`` are ``(target units, source units)``, the L2 norm and the sum of each spatial kernel."""

    source: str
    target: str
    norm: np.ndarray
    total: np.ndarray
    stride: int  # the target's output stride in source positions
    extent: int  # the kernel's side in source positions (an upper bound from the receptive fields)

    @property
    def signed(self) -> np.ndarray:
        """Each link's strength with its sign (negative: inhibitory)."""
        return np.where(self.total < 0, -self.norm, self.norm).astype(np.float32)


def _geometry(model: Any, source: str, target: str) -> tuple[int, int]:
    """``(stride, extent)`` of ``target`` seen from ``source``: how many source positions one target
    position moves by, and how many source positions one target unit sees (per side)."""
    fs, ft = receptive_field(model, source), receptive_field(model, target)
    if ft.jump < fs.jump or ft.jump % fs.jump:
        raise FeatgenError(f"{model.name}: layer {target!r} does not come after {source!r} in one chain; "
                           "expanded weights link a layer to a later one.")  # fmt: skip
    return ft.jump // fs.jump, max(1, (ft.size - fs.size) // fs.jump + 1)


def expanded_weights(model: Any, source: str, target: str, chunk_bytes: int = CHUNK_BYTES) -> Expanded:
    """The expanded weights from ``source``'s units to ``target``'s (names as ``model`` takes them),
    with the network linearized between them. One line if the path is not linear once activations
    are the identity (an activation inside a module's own code, which no hook reaches)."""
    be = model.backend
    source, target = model.resolve_layer(source), model.resolve_layer(target)
    read = be.linear_output(model, target)
    stride, extent = _geometry(model, source, target)
    jump = receptive_field(model, source).jump
    side = max(extent + 3 * stride + 2, 5)  # the source map: the impulses in the middle, a kernel's margin around
    while True:
        size = max(jump * side, MIN_INPUT)
        found = _measure(model, source, read, size, stride, chunk_bytes)
        if found is not None:
            norm, total = found
            return Expanded(source, target, norm, total, stride, extent)
        side *= 2
        if jump * side > MAX_SIDE:
            raise FeatgenError(f"{model.name}: the field of {target!r} over {source!r} does not fit a "
                               f"{MAX_SIDE}-px input; expanded weights are for layers a few convolutions apart.")  # fmt: skip


def _measure(model: Any, source: str, read: str, size: int, stride: int,
             chunk_bytes: int) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """``(norm, total)`` measured with impulses on a ``size``-px input, or None if the responses reach
    the target's border (the input was too small to hold them)."""
    be = model.backend
    x = be.asarray(np.full((1, size, size, 3), 0.5, np.float32))
    with be.no_grad(), be.linearized(model):
        h, w, c = be.shape(be.forward(model, x, capture=[source], logits=False).activations[source])[1:]
        cy, cx = (h - stride) // 2, (w - stride) // 2
        if min(cy, cx) < 1:
            return None

        def respond(maps: np.ndarray) -> np.ndarray:
            out = be.forward(model, x, capture=[read], logits=False, replace={source: be.asarray(maps)}).activations[read]
            return be.to_numpy(out).astype(np.float64)

        zero = respond(np.zeros((1, h, w, c), np.float32))
        noise = _rounding(zero) / AMPLITUDE
        pulses = [(i, dy, dx) for i in range(c) for dy in range(stride) for dx in range(stride)]
        per = max(1, min(len(pulses), chunk_bytes // (h * w * c * 4)))
        norm2 = total = None
        peak = border = 0.0
        for start in range(0, len(pulses), per):
            batch = pulses[start : start + per]
            maps = np.zeros((len(batch), h, w, c), np.float32)
            for n, (i, dy, dx) in enumerate(batch):
                maps[n, cy + dy, cx + dx, i] = AMPLITUDE
            r = (respond(maps) - zero) / AMPLITUDE
            if start == 0:
                _check_linear((respond(2 * maps[:1]) - zero) / AMPLITUDE, r[:1], noise, model.name)
            if norm2 is None:
                norm2 = np.zeros((r.shape[-1], c), np.float64)
                total = np.zeros((r.shape[-1], c), np.float64)
            channels = np.asarray([i for i, _, _ in batch])
            np.add.at(norm2.T, channels, (r * r).sum(axis=(1, 2)))
            np.add.at(total.T, channels, r.sum(axis=(1, 2)))
            peak = max(peak, float(np.abs(r).max()))
            edges = np.concatenate([r[:, 0].ravel(), r[:, -1].ravel(), r[:, :, 0].ravel(), r[:, :, -1].ravel()])
            border = max(border, float(np.abs(edges).max()))
    if border > BORDER_TOLERANCE * peak + noise:
        return None
    return np.sqrt(norm2).astype(np.float32), total.astype(np.float32)


def _rounding(constant: np.ndarray) -> float:
    """How far float32 rounding of the target's constant response (its biases, and what the rest of the
    network adds) may move a difference of two responses: the floor under every measured weight."""
    return 64 * float(np.finfo(np.float32).eps) * float(np.abs(constant).max())


def _check_linear(double: np.ndarray, single: np.ndarray, noise: float, name: str) -> None:
    """One line unless doubling an impulse doubles the response, to the rounding of the constant part."""
    scale = max(float(np.abs(single).max()), 1e-30)
    if float(np.abs(double - 2 * single).max()) > LINEARITY_TOLERANCE * scale + noise:
        raise FeatgenError(f"{name}: the path between these layers is not linear with its activations as the identity "
                           "(an activation called inside a module's own code, which featgen cannot reach): "
                           "expanded weights need activation modules or layers.")  # fmt: skip


def class_weights(model: Any, layer: str, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """``(classes, units)``: how much each unit of ``layer``, held at a constant activation of 1 over
    the whole map, moves each logit, with the network linearized after the layer. Where the logits
    are a linear map of the layer's pooled (averaged) output, a unit's contribution to class ``c`` is
    this weight times the unit's mean activation."""
    be = model.backend
    layer = model.resolve_layer(layer)
    x = be.asarray(np.full((1, model.input_size, model.input_size, 3), 0.5, np.float32))
    with be.no_grad(), be.linearized(model):
        h, w, c = be.shape(be.forward(model, x, capture=[layer], logits=False).activations[layer])[1:]

        def logits(maps: np.ndarray) -> np.ndarray:
            out = be.forward(model, x, logits=True, replace={layer: be.asarray(maps)}).logits
            return be.to_numpy(out).astype(np.float64)

        zero = logits(np.zeros((1, h, w, c), np.float32))
        per = max(1, min(c, chunk_bytes // (h * w * c * 4)))
        columns = []
        for start in range(0, c, per):
            channels = np.arange(start, min(start + per, c))
            maps = np.zeros((len(channels), h, w, c), np.float32)
            maps[np.arange(len(channels)), :, :, channels] = AMPLITUDE
            columns.append((logits(maps) - zero) / AMPLITUDE)
    return np.concatenate(columns).T.astype(np.float32)


def top_links(signed: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per row of ``signed`` (strengths with their signs), the ``k`` strongest excitatory and the ``k``
    strongest inhibitory columns: ``exc_unit``, ``exc_weight``, ``inh_unit``, ``inh_weight``, each
    ``(rows, k)``; a row with fewer links is padded with unit -1 and weight 0. Links weaker than a
    millionth of the strongest are no links (a depthwise convolution's zeros). Ties go to the lower column."""
    s = np.asarray(signed, np.float32)
    floor = 1e-6 * float(np.abs(s).max()) if s.size else 0.0
    out: dict[str, np.ndarray] = {}
    for kind, sign in (("exc", 1.0), ("inh", -1.0)):
        strength = np.where(sign * s > floor, np.abs(s), 0.0)
        order = np.argsort(-strength, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(strength, order, axis=1)
        units = np.where(picked > 0, order, -1).astype(np.int32)
        weights = np.where(picked > 0, sign * picked, 0.0).astype(np.float32)
        pad = k - units.shape[1]
        if pad > 0:
            units = np.pad(units, ((0, 0), (0, pad)), constant_values=-1)
            weights = np.pad(weights, ((0, 0), (0, pad)))
        out[f"{kind}_unit"], out[f"{kind}_weight"] = units, weights
    return out


__all__ = ["Expanded", "expanded_weights", "class_weights", "top_links"]
