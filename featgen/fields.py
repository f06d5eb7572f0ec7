"""Receptive fields: which input pixels a unit at one position of a layer sees.

The field comes from the layer geometry alone (:meth:`~featgen.backends.base.ModelRunner.layer_geometry`:
kernel, stride, dilation and padding of every convolution and pooling), composed in the order the
backend lists the layers, so one function serves every model and both backends. A block's residual
sum adds no pixels (its other branch sees fewer), so for chains of blocks, such as VGG16 and
EfficientNet-Lite0 with its depthwise convolutions, the composition is exact. Parallel branches of
other shapes (Inception) would be composed as if in sequence: the field is then an upper bound.

Coordinates are continuous, with pixel centres at ``i + 0.5``, as featgen's warps use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models.base import LoadedModel


@dataclass(frozen=True)
class Field:
    """A layer's receptive field on an input of ``input_size`` px: each unit sees ``size`` px; position
    ``i`` of the feature map is centred on input coordinate ``start + i * jump`` (rows and columns alike);
    ``grid``: the feature map's side on that input."""

    size: int
    jump: int
    start: float
    input_size: int
    grid: int = 0

    def box(self, row: int, col: int, least: int = 0) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` pixel bounds of the field of position ``(row, col)``, a square of
        at least ``least`` px, moved (not cut) to lie inside the input."""
        side = min(max(self.size, least), self.input_size)
        out = []
        for i in (row, col):
            centre = self.start + i * self.jump
            lo = int(round(centre - side / 2))
            out.append(min(max(lo, 0), self.input_size - side))
        return out[0], out[1], out[0] + side, out[1] + side


def receptive_field(model: LoadedModel, layer: str, input_size: int | None = None) -> Field:
    """The receptive field of ``layer``'s units on a square input of ``input_size`` px (default: the
    model's own), from every convolution and pooling up to the layer's last sub-layer."""
    be = model.backend
    name = model.resolve_layer(layer)
    n = int(input_size or model.input_size)
    ops = [(lname, g) for lname, g in ((ln, be.layer_geometry(obj)) for ln, obj in be.iter_layers(model))]
    ends = [i for i, (ln, _) in enumerate(ops) if ln == name or ln.startswith(name + ".")]
    if not ends:
        raise ValueError(f"layer {name!r} is not among {model.name}'s layers")
    size, jump, start = 1, 1, 0.5
    for _, g in ops[: ends[-1] + 1]:
        if g is None:
            continue
        k = (g.kernel[0] - 1) * g.dilation[0] + 1
        s = g.stride[0]
        if g.padding == "same":
            out = -(-n // s)
            before = max((out - 1) * s + k - n, 0) // 2
        else:
            before = g.padding[0]
            out = (n + 2 * before - k) // s + 1
        start += ((k - 1) / 2 - before) * jump
        size += (k - 1) * jump
        jump *= s
        n = max(out, 1)
    return Field(size, jump, start, int(input_size or model.input_size), n)


__all__ = ["Field", "receptive_field"]
