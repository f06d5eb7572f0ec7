"""How many images one optimization step holds: the activation memory of the layers up to the target,
from a model's layer table, against a memory budget (a share of the GPU's free memory, a fixed budget on
a CPU). Framework-free: the numbers come in, a count goes out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Bytes per activation value of the layers up to the target, per image of a render step: measured 4.3 to
# 4.4 on a CPU in float32 (peak memory of VGG16-HED block4_conv3 and EfficientNet-Lite0 blocks.6 renders at
# 4 and 24 images, 142-px network input: the saved activations, their gradients and the step's
# temporaries); the rest is margin, for a GPU's allocator and its convolution workspaces.
BYTES_PER_VALUE = 6.0
GPU_SHARE = 0.7  # of a GPU's free memory, what one render step may take
CPU_BUDGET = 3e9  # bytes a render step may take on a CPU (a worker holds its frameworks and models besides)
GIB = 2**30


def activation_values(table: Sequence, layer: str, side: int, input_size: int) -> float:
    """Values per image that the layers up to ``layer`` (its own sublayers included) output at a
    ``side``-px input. ``table`` is a model's layer table (rows with ``name`` and ``shape`` at
    ``input_size`` px, in execution order); a container's row is left out, as its output is its last
    child's."""
    names = [r.name for r in table]
    last = max((i for i, n in enumerate(names) if n == layer or n.startswith(layer + ".")), default=None)
    if last is None:
        raise ValueError(f"no layer {layer!r} in the table")
    scale = (side / input_size) ** 2
    total = 0.0
    for i, row in enumerate(table[: last + 1]):
        leaf = i + 1 >= len(names) or not names[i + 1].startswith(row.name + ".")
        if leaf and row.shape:
            total += float(np.prod(row.shape)) * (scale if len(row.shape) == 3 else 1.0)
    return total


def budget(free_bytes: int | None) -> float:
    """What one step may take: :data:`GPU_SHARE` of a GPU's free memory, in whole GiB (so that a few
    MB more or less free do not change a batch), or :data:`CPU_BUDGET` where the device cannot say
    (a CPU: ``None``)."""
    if free_bytes is None:
        return CPU_BUDGET
    return float(np.floor(free_bytes * GPU_SHARE / GIB) * GIB)


def images_that_fit(values_per_image: float, budget_bytes: float, cap: int) -> int:
    """Images of ``values_per_image`` activation values that fit ``budget_bytes``: at least 1, at most ``cap``."""
    return int(max(1, min(cap, budget_bytes // max(values_per_image * BYTES_PER_VALUE, 1.0))))


def pack(chunks: Sequence[Sequence[int]], units_per_batch: int) -> list[list[int]]:
    """Consecutive chunks (a layer's jobs, in plan order) grouped into batches of at most
    ``units_per_batch`` units (a chunk alone if it is larger); returns each batch's chunk indices. The
    grouping depends on the chunks and the number alone, not on which of them are still to render."""
    packs: list[list[int]] = []
    units = 0
    for i, chunk in enumerate(chunks):
        if not packs or units + len(chunk) > units_per_batch:
            packs.append([])
            units = 0
        packs[-1].append(i)
        units += len(chunk)
    return packs
