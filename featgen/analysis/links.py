"""Expanded weights: how strongly each unit of one layer drives each unit of a later one, read from
the weights alone (no images, no optimization).

Between two adjacent convolutions, the weight from input unit ``i`` to output unit ``u`` is the
kernel slice ``W[:, :, i, u]``. Across the linear parts of a network between two layers (1x1 and
depthwise convolutions, batch norms in inference mode, residual sums, average pooling), it is the
product of those linear maps; activations are treated as the identity and max pooling as average
pooling (:meth:`~featgen.backends.base.ModelRunner.linearized`). That is the "expanded weights" of
"Visualizing Weights" (Olah et al., 2020, in the Distill Circuits thread).

The expanded weight from ``i`` to ``u`` is a small spatial kernel. It is measured with impulses: the
source layer's output is replaced by a map that is ``a`` at one position of channel ``i`` and 0
elsewhere, and the response of the target layer (read before its activation) minus its response to
an all-zero map, over ``a``, is the kernel, flipped, at every target position that sees the impulse.
An output stride of ``s`` between the layers takes ``s²`` impulse positions to visit every tap once.
One map holds a grid of impulses, each of another channel, far enough apart that no target position
sees two; which impulse a target position sees comes from the layers' receptive fields
(:mod:`featgen.fields`), and a response where no impulse should reach is an error. Each link is
summarised by the kernel's L2 norm (its strength) and its sum (its sign: excitatory or inhibitory).

Everything goes through the backend protocol, so the same code serves torch and TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FeatgenError
from ..fields import receptive_field

CHUNK_BYTES = 128 << 20  # impulse maps per forward pass (in torch each pass also runs the network up to the source)
GRID = 4  # impulses per side of one map: 16 channels measured by one map
LEAK_TOLERANCE = 1e-4  # response where no impulse reaches, relative to the largest: the geometry was wrong
LINEARITY_TOLERANCE = 1e-3  # f(2δ) - f(0) against 2 (f(δ) - f(0)), relative to the largest response
AMPLITUDE = 64.0  # the impulse: well above the rounding of the target's constant response (exact in float32)
MIN_INPUT = 32  # px: a network traced whole (Keras) must reach its last pooling with a map left


@dataclass(frozen=True)
class Expanded:
    """The expanded weights from every unit of ``source`` to every unit of ``target``: ``norm`` and
    ``total`` are ``(target units, source units)``, the L2 norm and the sum of each spatial kernel."""

    source: str
    target: str
    norm: np.ndarray
    total: np.ndarray
    stride: int  # the target's output stride in source positions
    extent: int  # the kernel's side in source positions

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


def expanded_weights(model: Any, source: str, target: str, channels: tuple[int, int] | None = None,
                     chunk_bytes: int = CHUNK_BYTES) -> Expanded:  # fmt: skip
    """The expanded weights from ``source``'s units to ``target``'s (names as ``model`` takes them),
    with the network linearized between them; ``channels``: the two layers' units, if known (else from
    the model's layer table). One line if the path is not linear once activations are the identity
    (an activation inside a module's own code, which no hook reaches)."""
    source, target = model.resolve_layer(source), model.resolve_layer(target)
    stride, extent = _geometry(model, source, target)
    spacing = -(-(extent + stride - 1) // stride) * stride  # impulses of one phase: no target unit sees two
    margin = extent  # source positions between the map's border and its impulses: every path to a target inside
    side = 2 * margin + (GRID - 1) * spacing + stride
    jump = receptive_field(model, source).jump
    size = max(jump * side, MIN_INPUT)
    if channels is None:
        channels = (int(model.layer_info(source).channels), int(model.layer_info(target).channels))
    norm, total = _measure(model, source, target, channels, size, stride, spacing, margin, chunk_bytes)
    return Expanded(source, target, norm, total, stride, extent)


def _blocks(fs: Any, ft: Any, first: int, spacing: int, phase: int) -> np.ndarray:
    """Per target position along one axis, the grid row (or column) of the impulse it sees, or -1: the
    impulse whose centre lies within the target's field less the source's (the fields' geometry)."""
    reach = (ft.size - fs.size) / 2 + 1e-6
    centres = fs.start + (first + phase + spacing * np.arange(GRID)) * fs.jump
    seen = np.abs(centres[None, :] - (ft.start + np.arange(ft.grid) * ft.jump)[:, None]) <= reach
    if (seen.sum(axis=1) > 1).any():
        raise FeatgenError("impulses closer than a target unit's field: the layers' geometry is not a chain")
    return np.where(seen.any(axis=1), seen.argmax(axis=1), -1)


def _measure(model: Any, source: str, target: str, channels: tuple[int, int], size: int, stride: int, spacing: int,
             margin: int, chunk_bytes: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(norm, total)`` measured with impulses on a ``size``-px input: maps of ``GRID`` × ``GRID``
    impulses of one phase, each of another channel, ``spacing`` source positions apart. Each batch holds
    an all-zero map first (its response is subtracted) and, in the first, a doubled map (the linearity
    check), so every forward pass has one shape (one trace in Keras)."""
    be = model.backend
    read = be.linear_output(model, target)
    fs, ft = receptive_field(model, source, size), receptive_field(model, target, size)
    h = w = fs.grid
    c, units = channels
    x = be.asarray(np.full((1, size, size, 3), 0.5, np.float32))
    per_map = GRID * GRID
    phases = [(dy, dx) for dy in range(stride) for dx in range(stride)]
    maps = [(ph, list(range(k, min(k + per_map, c)))) for ph in phases for k in range(0, c, per_map)]  # (phase, channels)
    per = max(1, min(len(maps), chunk_bytes // (h * w * c * 4) - 2))
    labels = {}  # per phase: the impulse each target position sees (-1: none)
    for dy, dx in phases:
        rows, cols = _blocks(fs, ft, margin, spacing, dy), _blocks(fs, ft, margin, spacing, dx)
        labels[dy, dx] = np.where((rows[:, None] >= 0) & (cols[None, :] >= 0), rows[:, None] * GRID + cols[None, :], -1)
    norm2 = np.zeros((units, c), np.float64)
    total = np.zeros_like(norm2)
    peak = leak = 0.0
    with be.no_grad(), be.linearized(model):
        for start in range(0, len(maps), per):
            batch = maps[start : start + per]
            inputs = np.zeros((per + 2, h, w, c), np.float32)  # [zero, doubled or zero, maps..., zeros]
            for n, ((dy, dx), chans) in enumerate(batch):
                for k, i in enumerate(chans):
                    r, col = divmod(k, GRID)
                    inputs[n + 2, margin + r * spacing + dy, margin + col * spacing + dx, i] = AMPLITUDE
            if start == 0:
                inputs[1] = 2 * inputs[2]
            out = be.to_numpy(be.forward(model, x, capture=[read], logits=False, replace={source: be.asarray(inputs)}).activations[read])
            if out.shape[1:3] != (ft.grid, ft.grid):
                raise FeatgenError(f"{model.name}: {target!r} came out {out.shape[1]}×{out.shape[2]}, not the "
                                   f"{ft.grid}×{ft.grid} its layers' geometry gives: expanded weights need a chain of layers.")  # fmt: skip
            noise = _rounding(out[0]) / AMPLITUDE
            r = (out[2 : 2 + len(batch)] - out[:1]) / AMPLITUDE
            if start == 0:
                _check_linear((out[1:2] - out[:1]) / AMPLITUDE, r[:1], noise, model.name)
            for phase in dict.fromkeys(ph for ph, _ in batch):  # the maps of one phase share their labels
                idx = [n for n, (ph, _) in enumerate(batch) if ph == phase]
                lab = labels[phase].reshape(-1)
                flat = r[idx].reshape(len(idx), -1, r.shape[-1])
                inside, outside = flat[:, lab >= 0], flat[:, lab < 0]
                peak = max(peak, float(np.abs(inside).max()) if inside.size else 0.0)
                leak = max(leak, float(np.abs(outside).max()) if outside.size else 0.0)
                onehot = (lab[lab >= 0][:, None] == np.arange(per_map)[None, :]).astype(np.float32)
                sums, squares = onehot.T @ inside, onehot.T @ (inside * inside)  # (maps, impulses, target units)
                for j, n in enumerate(idx):
                    chans = batch[n][1]
                    norm2[:, chans] += squares[j, : len(chans)].T
                    total[:, chans] += sums[j, : len(chans)].T
            if leak > LEAK_TOLERANCE * peak + noise:
                raise FeatgenError(f"{model.name}: the response of {target!r} reaches where no impulse on {source!r} "
                                   "should: the layers' geometry is not a chain of convolutions and poolings.")  # fmt: skip
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
