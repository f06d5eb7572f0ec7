"""The VGG16 layer plan and the name mapping between its two backends (no framework import).

Keras names follow ``keras.applications.VGG16`` (``block4_conv3``); torch follows torchvision's
``features`` stack, where a conv and its ReLU are two modules. A Keras conv carries its ReLU, so
``block4_conv3`` maps to the ReLU after torch's conv, i.e. the same post-activation output.
"""

from __future__ import annotations


def _vgg16_layers() -> tuple[list[tuple[str, int, int]], dict[str, str]]:
    """The VGG16 plan as (kind, c_in, c_out) rows, and Keras name → torch name of each layer."""
    plan: list[tuple[str, int, int]] = []
    names: dict[str, str] = {}
    c_in = 3
    for block, (width, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            names[f"block{block}_conv{i}"] = f"features.{len(plan) + 1}"
            plan += [("conv", c_in, width), ("relu", width, width)]
            c_in = width
        names[f"block{block}_pool"] = f"features.{len(plan)}"
        plan.append(("pool", width, width))
    return plan, names


VGG16_PLAN, VGG16_TORCH_NAMES = _vgg16_layers()
