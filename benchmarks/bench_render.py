"""featgen's batched regularized render against Lucent (torch-lucent 0.1.8), in one process.

Same model (efficientnet_lite0, torch), layer, channels, image size, steps, Fourier + decorrelated
parameterization, Lucid's standard transforms and Adam at 0.05. Lucent runs one channel at a
time and in its batched mode (one batch parameter, a sum of per-image channel objectives).
Prints unit-steps per second and the ratios, and the final activations of each method's images,
all measured by the same featgen forward pass at the render size.

    python benchmarks/bench_render.py [--units 16] [--size 128] [--steps 64] [--keras]

``--keras`` adds featgen on its TensorFlow backend (the same weights, converted at load time).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def lucent_model(model):
    """Lucent calls model(images in [0, 1]); wrap the timm model with its normalization."""
    import torch
    from torch import nn

    class Normalized(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net((x - 0.5) / 0.5)

    return Normalized(model.module).eval().to(torch.device("cpu"))


def run_lucent(net, layer: str, units, size: int, steps: int, batched: bool):
    from lucent.optvis import objectives, param, render

    lname = "net_" + layer.replace(".", "_")
    if batched:
        obj = objectives.channel(lname, units[0], batch=0)
        for i, u in enumerate(units[1:], start=1):
            obj = obj + objectives.channel(lname, u, batch=i)
        out = render.render_vis(net, obj, lambda: param.image(size, batch=len(units)), thresholds=(steps,),
                                show_image=False, progress=False, preprocess=False, fixed_image_size=None)  # fmt: skip
        return np.concatenate(out)
    images = []
    for u in units:
        out = render.render_vis(net, objectives.channel(lname, u), lambda: param.image(size), thresholds=(steps,),
                                show_image=False, progress=False, preprocess=False)  # fmt: skip
        images.append(out[0])
    return np.concatenate(images)


def channel_means(model, layer: str, images: np.ndarray, units) -> np.ndarray:
    from featgen.vis import objectives

    be = model.backend
    with be.no_grad():
        out = be.forward(model, be.asarray(images.astype(np.float32)), capture=[layer], logits=False)
        return be.to_numpy(objectives.channel(layer, list(units))(be, out.activations, None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="blocks.4")
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--keras", action="store_true", help="also time featgen's TensorFlow backend (same weights)")
    args = ap.parse_args()

    import torch

    import featgen
    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()  # lucent imports torchvision
    if args.threads:
        torch.set_num_threads(args.threads)
    model = featgen.load_model("efficientnet_lite0", device="cpu")
    units = list(range(args.units))
    work = len(units) * args.steps
    net = lucent_model(model)
    results = {}

    # warm-up, so the first timed run pays no one-off costs
    featgen.visualize(model, args.layer, units=units[:2], size=args.size, steps=2, progress=False)
    run_lucent(net, args.layer, units[:1], args.size, 2, batched=False)
    runs = []
    if args.keras:
        keras_model = featgen.load_model("efficientnet_lite0", backend="tensorflow")
        featgen.visualize(keras_model, args.layer, units=units[:2], size=args.size, steps=2, progress=False)
        runs.append(("featgen batched, Keras", lambda: featgen.visualize(keras_model, args.layer, units=units, size=args.size,
                                                                          steps=args.steps, progress=False).images))  # fmt: skip

    for name, fn in runs + [
        ("featgen batched", lambda: featgen.visualize(model, args.layer, units=units, size=args.size,
                                                       steps=args.steps, progress=False).images),
        ("lucent batched", lambda: run_lucent(net, args.layer, units, args.size, args.steps, batched=True)),
        ("lucent one-at-a-time", lambda: run_lucent(net, args.layer, units, args.size, args.steps, batched=False)),
    ]:  # fmt: skip
        torch.manual_seed(0)
        t0 = time.perf_counter()
        images = fn()
        dt = time.perf_counter() - t0
        acts = channel_means(model, args.layer, images, units)
        results[name] = (work / dt, dt, acts)
        print(f"{name:<22} {dt:8.1f} s  {work / dt:8.1f} unit-steps/s  mean final activation {acts.mean():7.2f}")

    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; {len(units)} channels of {args.layer}, {args.size}px, {args.steps} steps")  # fmt: skip
    for ours_name in [n for n in results if n.startswith("featgen")]:
        ours = results[ours_name]
        for peer in ("lucent one-at-a-time", "lucent batched"):
            r = results[peer]
            wins = int((ours[2] >= r[2]).sum())
            print(f"{ours_name} / {peer}: speed x{ours[0] / r[0]:.2f}; final activation {ours[2].mean():.2f} vs "
                  f"{r[2].mean():.2f} (featgen higher on {wins}/{len(units)} channels)")  # fmt: skip


if __name__ == "__main__":
    main()
