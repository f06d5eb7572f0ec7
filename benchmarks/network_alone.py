"""The network alone: the speed of light a render is measured against.

A render step of featgen runs the model's modules up to the target layer, forward, and the gradient
back to the images. Timed here with nothing else: the same truncated network (the model's own
modules as it loads them, frozen weights, no folding, every channel of the last layer), the same
batch, input side, dtype and memory layout, forward plus the gradient to the input only, in the
same process. featgen's **efficiency** is its unit-steps/s divided by these images/s: 1.0 would
mean the transforms, the Fourier image, the objective and Adam cost nothing. (It can exceed 1.0:
featgen computes only the target channel of a closing convolution.)

    python benchmarks/network_alone.py [--device cuda] [--models vgg,lite0] [--batches 64,256] [--side 142]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

MODELS = {"vgg": ("vgg16_hed", ("block4_conv3",)), "lite0": ("efficientnet_lite0", ("blocks.4", "blocks.6"))}
# (label, precision, channels_last, CUDA graph): the table, in its order
CONFIGS = (("fp32 NCHW", "float32", False, False), ("fp32 channels_last", "float32", True, False),
           ("bf16 NCHW", "bfloat16", False, False), ("bf16 channels_last", "bfloat16", True, False),
           ("bf16 channels_last + CUDA graph", "bfloat16", True, True))  # fmt: skip


def chain(model, layer: str):
    """The model's own modules that run up to and including ``layer`` (a torch LoadedModel whose
    modules up to it form a chain, as VGG16's and EfficientNet-Lite0's stages do), as one module."""
    from torch import nn

    parts = model.resolve_layer(layer).split(".")
    node, mods = model.module, []
    for part in parts:
        kids = list(node.named_children())
        mods.extend(m for name, m in kids[: [n for n, _ in kids].index(part)])
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return nn.Sequential(*mods, node)


def _step(net, x, precision: str) -> Callable[[], None]:
    import torch

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16", cache_enabled=False):
            y = net(x)
        torch.autograd.grad(y.float().sum(), x)

    return step


def images_per_s(model, layer: str, batch: int, side: int, precision: str = "float32", channels_last: bool = True,
                 graph: bool = False, seconds: float = 1.0) -> float:  # fmt: skip
    """Images per second of the network alone (see the module docstring) on ``model``'s device."""
    import torch

    net = chain(model, layer)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if not channels_last:  # featgen prepares its modules in channels_last: a copy in the other layout
        net = copy.deepcopy(net).to(memory_format=fmt)
    device = next(model.module.parameters()).device
    x = torch.rand(batch, 3, side, side, device=device).contiguous(memory_format=fmt).requires_grad_(True)
    step = _step(net, x, precision)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3):  # cuDNN picks its kernels; the caching allocator fills
        step()
    if graph and cuda:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        step = g.replay
    sync()
    t0, n = time.perf_counter(), 0
    while n < 3 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
        if n % 5 == 0:
            sync()
    sync()
    return batch * n / (time.perf_counter() - t0)


def table(model, layer: str, batches: list[int], side: int, seconds: float = 1.0) -> list[dict]:
    """One row per batch and :data:`CONFIGS` entry (the CUDA graph one on a GPU only)."""
    cuda = next(model.module.parameters()).device.type == "cuda"
    rows = []
    for batch in batches:
        for label, precision, channels_last, graph in CONFIGS:
            if graph and not cuda:
                continue
            rate = images_per_s(model, layer, batch, side, precision, channels_last, graph, seconds)
            rows.append({"model": model.name, "layer": layer, "batch": batch, "side": side, "config": label,
                         "precision": precision, "channels_last": channels_last, "graph": graph,
                         "images_per_s": rate})  # fmt: skip
    return rows


def main() -> None:
    import torch

    import featgen

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default="vgg,lite0")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--side", type=int, default=142, help="the network's input side (142 px for a 128-px render)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per row")
    args = ap.parse_args()
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    for key in args.models.split(","):
        name, layers = MODELS[key.strip()]
        model = featgen.load_model(name, device=args.device, precision="float32")
        for layer in layers:
            for r in table(model, layer, [int(b) for b in args.batches.split(",")], args.side, args.seconds):
                print(f"{r['model']} {r['layer']} batch {r['batch']:4d} {r['config']:<34} {r['images_per_s']:10,.0f} images/s")


if __name__ == "__main__":
    main()
