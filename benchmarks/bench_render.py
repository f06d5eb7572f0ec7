"""featgen's batched regularized render against Lucent (torch-lucent 0.1.8), in one process, at equal resolution.

Same model, layer, channels, image size, steps, Fourier + decorrelated parameterization, Lucid's
standard transforms and Adam at 0.05, for EfficientNet-Lite0 ``blocks.4`` and VGG16-HED
``block4_conv3`` (Lucent gets each model's own preprocessing: [-1, 1] for Lite0, caffe BGR for
VGG16-HED). Lucent runs batched (one batch parameter, a sum of per-image channel objectives) and
one channel at a time.

**Equal resolution.** featgen's Lucid stack (pad 12, jitter 8, scale, rotate, jitter 4, no crop)
feeds the network ``size + 24 - 7 - 3`` px (142 px for 128). Lucent, left alone, upsamples every
image under 224 px to 224 px; with ``fixed_image_size`` it resizes its transformed image to that
size. Lucent is given ``fixed_image_size`` = featgen's network input, and a pre-hook on each
network (featgen's module chain, Lucent's model) records what every run feeds it; the script stops
unless every run optimizes at that side and none feeds more (featgen also scores the untransformed
image before and after). Lucent renders on a copy of the model, and its hooks are removed after
every call: left alone, ``render_vis`` keeps a hook on every module, holding that module's last
output.

Printed per run: seconds, unit-steps per second, the mean final activation of the images (all
measured by the same featgen forward pass at the render size), activation reached per second of
compute (mean final activation × units / seconds), and the host reads of a whole 8-step render of
2 units (device-to-host copies: ``Tensor.item/cpu/numpy/tolist`` and tensor truth values): a loop
that reads nothing per step shows the same count at any number of steps.
Runs are interleaved and repeated (``--repeat``); the table shows the median time.

    python benchmarks/bench_render.py [--models lite0,vgg] [--units 16] [--size 128] [--steps 64]
                                      [--repeat 1] [--keras] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import numpy as np

MODELS = {"lite0": ("efficientnet_lite0", "blocks.4"), "vgg": ("vgg16_hed", "block4_conv3")}
READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")


def lucent_model(model, as_loaded: bool = False):
    """Lucent calls model(images in [0, 1]); wrap the native model with the model's own normalization.

    By default Lucent gets featgen's prepared module (channels_last memory, frozen parameters).
    ``as_loaded``: the module as PyTorch loads it and Lucent's README runs it instead (default
    contiguous memory, trainable parameters, so each backward also computes weight gradients)."""
    import torch
    from torch import nn

    norm = model.norm

    class Normalized(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(norm.std).view(1, 3, 1, 1))

        def forward(self, x):
            x = x * norm.scale
            if norm.bgr:
                x = x.flip(1)
            return self.net((x - self.mean) / self.std)

    # a copy: Lucent hooks the modules it renders with, and featgen's runs must not meet those hooks
    net = Normalized(copy.deepcopy(model.module)).to(next(model.module.parameters()).device).eval()
    if as_loaded:
        net.to(memory_format=torch.contiguous_format).requires_grad_(True)
    return net


def lucent_missing() -> str | None:
    """Why Lucent cannot be imported here (torch-lucent and what it imports: kornia 0.4.1, decorator),
    or None. IPython, which Lucent imports only to show images in a notebook, is stood in for when it
    is missing (as on a bare GPU machine)."""
    import importlib.util
    import sys
    import types

    from featgen.backends.torchvision_compat import import_torchvision

    missing = [m for m in ("lucent", "kornia", "decorator") if importlib.util.find_spec(m) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator)"
    if importlib.util.find_spec("IPython") is None:
        ipython = types.ModuleType("IPython")
        ipython.display = types.ModuleType("IPython.display")
        sys.modules.update({"IPython": ipython, "IPython.display": ipython.display})
    import_torchvision()  # lucent imports torchvision
    try:
        import lucent.optvis.render  # noqa: F401
    except Exception as exc:  # noqa: BLE001 (whatever stops it, the caller prints it and goes on)
        return f"{type(exc).__name__}: {exc}"
    return None


def run_lucent(net, layer: str, units, size: int, steps: int, batched: bool, side: int):
    from lucent.optvis import objectives, param, render

    lname = "net_" + layer.replace(".", "_")
    kw = dict(thresholds=(steps,), show_image=False, progress=False, preprocess=False, fixed_image_size=side)

    def render_once(obj, param_f):
        try:
            return render.render_vis(net, obj, param_f, **kw)
        finally:  # render_vis leaves a forward hook on every module, holding its last output
            for m in net.modules():
                m._forward_hooks.clear()

    if batched:
        obj = objectives.channel(lname, units[0], batch=0)
        for i, u in enumerate(units[1:], start=1):
            obj = obj + objectives.channel(lname, u, batch=i)
        return np.concatenate(render_once(obj, lambda: param.image(size, batch=len(units))))
    return np.concatenate([render_once(objectives.channel(lname, u), lambda: param.image(size))[0] for u in units])


def channel_means(model, layer: str, images: np.ndarray, units) -> np.ndarray:
    from featgen.vis import objectives

    be = model.backend
    with be.no_grad():
        out = be.forward(model, be.asarray(images.astype(np.float32)), capture=[layer], logits=False)
        return be.to_numpy(objectives.channel(layer, list(units))(be, out.activations, None))


class Probe:
    """Counts device-to-host reads on torch tensors, and records the network's input sides."""

    def __init__(self, modules):
        import torch

        self.torch, self.reads, self.sides = torch, 0, set()
        self.originals = {name: getattr(torch.Tensor, name) for name in READS}
        for module in modules:  # each network as it is called (featgen's chain, Lucent's wrapper)
            module.register_forward_pre_hook(lambda _m, args: self.sides.add(tuple(args[0].shape[-2:])))

    def __enter__(self):
        for name, original in self.originals.items():
            def spy(t, *a, _original=original, **k):
                self.reads += 1
                return _original(t, *a, **k)

            setattr(self.torch.Tensor, name, spy)
        self.reads = 0
        return self

    def __exit__(self, *exc):
        for name, original in self.originals.items():
            setattr(self.torch.Tensor, name, original)


def bench_model(key: str, args, featgen, torch) -> list[tuple]:
    from featgen.vis.transforms import PRESETS

    name, layer = MODELS[key]
    model = featgen.load_model(name, device="cpu")
    model.compile = args.compile
    tname = model.resolve_layer(layer)  # VGG16-HED's Keras name → its torch module
    units = list(range(args.units))
    # featgen runs the modules up to the layer as one chain, with BatchNorms folded (a copy of them),
    # and where it closes with a convolution, the chain less that one as the picked head's prefix: the
    # chain's first module sees the network's input either way
    head = model.backend._head(model, tname) or model.module
    head = head[0] if isinstance(head, torch.nn.Sequential) else head
    lucents = {"": lucent_model(model)}  # run-name suffix → the network Lucent renders with
    if args.lucent_as_loaded:
        lucents[", as loaded"] = lucent_model(model, as_loaded=True)
    probe = Probe([head, *lucents.values()])
    side = PRESETS["lucid"].out_size(args.size)  # what featgen's stack feeds the network
    runs = {
        "featgen torch": lambda n, s: featgen.visualize(model, tname, units=units[:n], size=args.size, steps=s,
                                                         progress=False).images,
    }  # fmt: skip
    for suffix, net in lucents.items():
        for mode, batched in (("batched", True), ("one-at-a-time", False)):
            runs[f"lucent {mode}{suffix}"] = lambda n, s, net=net, b=batched: run_lucent(net, tname, units[:n],
                                                                                       args.size, s, b, side)  # fmt: skip
    if args.keras:
        kmodel = featgen.load_model(name, backend="tensorflow")
        runs["featgen keras"] = lambda n, s: featgen.visualize(kmodel, layer, units=units[:n], size=args.size,
                                                                steps=s, progress=False).images  # fmt: skip
    reads, sides = {}, {}
    for run_name, fn in runs.items():  # warm-up (one-off costs, compilation), then count reads on 8 steps
        fn(2, 2)
        with probe:
            probe.sides.clear()
            fn(2, 8)
        # the probe sees torch tensors only: Keras reads are not counted
        reads[run_name] = "n/a" if "keras" in run_name else probe.reads
        sides[run_name] = set(probe.sides)
    torch_sides = {r: s for r, s in sides.items() if "keras" not in r}
    # every run optimizes at featgen's network input; featgen also scores the untransformed image
    # (size px) before and after, and nothing may be larger (Lucent's default would be 224 px)
    if any((side, side) not in s or max(s) != (side, side) for s in torch_sides.values()):
        raise SystemExit(f"unequal network inputs: {torch_sides}")
    times: dict[str, list[float]] = {r: [] for r in runs}
    acts = {}
    for _ in range(args.repeat):  # interleaved: each repeat runs every method once
        for run_name, fn in runs.items():
            torch.manual_seed(0)
            t0 = time.perf_counter()
            images = fn(len(units), args.steps)
            times[run_name].append(time.perf_counter() - t0)
            acts[run_name] = channel_means(model, tname, images, units)
            print(f"  {name} {run_name}: {times[run_name][-1]:.1f} s, mean final activation "
                  f"{acts[run_name].mean():.2f}", flush=True)  # fmt: skip
    work = len(units) * args.steps
    rows = []
    for run_name in runs:
        dt = statistics.median(times[run_name])
        a = acts[run_name]
        rows.append((key, tname, run_name, dt, work / dt, float(a.mean()), float(a.mean()) * len(units) / dt,
                     reads[run_name], a))  # fmt: skip
    print(f"\n{name} {tname}: network inputs {torch_sides}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lite0,vgg", help="comma-separated: lite0, vgg")
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved repeats (the median time is shown)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--keras", action="store_true", help="also time featgen's TensorFlow backend (same weights)")
    ap.add_argument("--compile", action="store_true", help="featgen torch with torch.compile")
    ap.add_argument("--lucent-as-loaded", action="store_true",
                    help="also time Lucent on the model as PyTorch loads it (contiguous memory, trainable "
                         "parameters), besides featgen's prepared module")  # fmt: skip
    args = ap.parse_args()

    import torch

    import featgen
    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()  # lucent imports torchvision
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for key in args.models.split(",") for r in bench_model(key.strip(), args, featgen, torch)]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; {args.units} channels, {args.size} px, {args.steps} steps, "
          f"median of {args.repeat}{', torch.compile' if args.compile else ''}\n")  # fmt: skip
    print("| model | layer | run | seconds | unit-steps/s | mean final activation | activation·units/s | host reads, 8-step render |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for key, layer, run_name, dt, speed, act, act_s, reads, _ in rows:
        print(f"| {MODELS[key][0]} | {layer} | {run_name} | {dt:.1f} | {speed:.1f} | {act:.2f} | {act_s:.2f} | {reads} |")
    print()
    for key, layer, run_name, _, speed, act, _, _, a in rows:
        if not run_name.startswith("featgen"):
            continue
        for p in (r for r in rows if r[0] == key and r[2].startswith("lucent")):
            peer = p[2]
            wins = int((a >= p[8]).sum())
            print(f"{MODELS[key][0]} {layer}: {run_name} / {peer}: speed x{speed / p[4]:.2f}; final activation "
                  f"{act:.2f} vs {p[5]:.2f} (featgen higher on {wins}/{len(a)} channels)")  # fmt: skip


if __name__ == "__main__":
    main()
