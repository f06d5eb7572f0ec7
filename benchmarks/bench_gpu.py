"""featgen on one GPU: against its own network and Lucent, and the galleries it renders there.

Sections (``benchmarks/gpu_render.sh`` and ``benchmarks/gpu_speed.sh`` pick them):

* ``table`` (always): featgen in float32 and bfloat16 (CUDA graphs, opt-in until this run shows they pay; eager; every
  channel of the closing convolution; ``torch.compile``) and Lucent (batched, and one channel at a
  time), at each ``--units``, 128 px, 64 steps, on VGG16-HED ``block4_conv3`` and EfficientNet-Lite0
  ``blocks.4`` and ``blocks.6``. Beside it the **network alone** (``network_alone.py``: the same
  truncated network, batch, side, dtype and layout, forward and the gradient to the input only) and
  featgen's **efficiency**, its unit-steps/s over the network's images/s (same dtype, channels_last).
* ``--checks``: the same render twice gives the same bytes; CUDA graphs give the eager bytes; a
  float32 render on the device is the CPU's picture (per-image correlation, VGG16 ``block3_conv1``).
* ``--projection``: the full VGG16 gallery at 224 px, projected from short timed runs of each layer.
* ``--estimate``: ``python -m featgen.site plan --estimate`` for the model's whole torch gallery with
  the ``full`` profile's settings (every conv layer, every unit, all views), in its own process.
* ``--layer``: one full layer of the model with those settings through the pipeline
  (``python -m featgen.site render``, the local executor), in its own process: unit-views/s.

    python benchmarks/bench_gpu.py --models vgg [--checks] [--estimate] [--layer] [--smoke --device cpu]

Figures go to ``${OUT:-benchmarks/out}/bench_gpu.{md,json}``. TensorFlow and Ray are not used.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_render import channel_means, lucent_missing, lucent_model, run_lucent  # noqa: E402
from network_alone import table as network_table  # noqa: E402

MODELS = {"vgg": ("vgg16_hed", ("block4_conv3",)), "lite0": ("efficientnet_lite0", ("blocks.4", "blocks.6"))}
LAYER = {"vgg": "block4_conv3", "lite0": "blocks.4"}  # the full layer --layer renders through the pipeline
GALLERY_224 = dict(channels=4224, size=224, steps=512)
LINES: list[str] = []  # what goes to bench_gpu.md


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def timed(cuda: bool, fn, *args):
    """``(seconds, fn(*args))``, the device synchronized before and after."""
    import torch

    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


# --- the table ---------------------------------------------------------------------------------------------
def featgen_runs(featgen, name: str, layer: str, args, first: bool) -> dict:
    """Label → (model, pick) of each featgen configuration timed (``torch.compile``: on the model's
    ``first`` layer only, as compiling costs about a minute a shape)."""
    runs = {}
    for label, precision, graphs, pick, compiled in (("float32", "float32", True, True, False),
                                                    ("bfloat16", "bfloat16", True, True, False),
                                                    ("bfloat16 eager", "bfloat16", False, True, False),
                                                    ("bfloat16 every channel", "bfloat16", True, False, False),
                                                    ("bfloat16 compiled", "bfloat16", None, True, True)):  # fmt: skip
        if compiled and (args.no_compile or not first):
            continue
        model = featgen.load_model(name, device=args.device, precision=precision)
        model.graphs, model.compile = graphs, compiled or None
        if not pick and model.backend._head(model, model.resolve_layer(layer), picked=True) is None:
            continue  # the layer does not close with a convolution: every channel is all there is
        runs[f"featgen {label}"] = (model, pick)
    return runs


def table(key: str, args, featgen, torch, cuda: bool) -> tuple[list[dict], list[dict]]:
    """The featgen and Lucent rows, and the network-alone rows, of one model's layers."""
    from featgen.vis.transforms import PRESETS

    name, layers = MODELS[key]
    side = PRESETS["lucid"].out_size(args.size)
    rows: list[dict] = []
    net_rows: list[dict] = []
    missing = None if args.no_lucent else lucent_missing()
    if missing:
        say(f"Lucent: skipped ({missing})")
    for layer in layers:
        runs = featgen_runs(featgen, name, layer, args, first=layer == layers[0])
        ref = next(iter(runs.values()))[0]
        tname = ref.resolve_layer(layer)
        lucent = None if missing or args.no_lucent else lucent_model(ref)
        alone = [{**r, "layer": layer} for r in network_table(ref, tname, args.units, side, args.network_seconds)]
        net_rows += alone
        for n in args.units:
            # the yardstick of a featgen run: the network in its dtype, channels_last, no CUDA graph
            network = {r["precision"]: r["images_per_s"] for r in alone
                       if r["batch"] == n and r["channels_last"] and not r["graph"]}  # fmt: skip
            calls = {label: featgen_call(featgen, model, pick, tname, args.size) for label, (model, pick) in runs.items()
                     if "compiled" not in label or n == max(args.units)}  # compiling: about a minute a shape  # fmt: skip
            if lucent is not None:
                calls["Lucent batched"] = lucent_call(lucent, tname, args.size, side, True)
                if n == min(args.units):
                    calls["Lucent one channel at a time"] = lucent_call(lucent, tname, args.size, side, False)
            for label, call in calls.items():
                units = list(range(args.one_at_a_time if "one channel" in label else n))
                warm, _ = timed(cuda, call, units, 20 if "compiled" in label else 4)  # compiled: past the redirected steps
                torch.manual_seed(0)
                dt, images = timed(cuda, call, units, args.steps)
                rate = len(units) * args.steps / dt
                precision = "bfloat16" if "bfloat16" in label else "float32"
                eff = rate / network[precision] if label.startswith("featgen") else None
                row = dict(model=name, layer=layer, run=label, units=len(units), seconds=dt, unit_steps_per_s=rate,
                           network_images_per_s=network[precision], efficiency=eff, warmup_s=warm,
                           mean_final_activation=float(channel_means(ref, tname, images, units).mean()))  # fmt: skip
                rows.append(row)
                print(f"{name} {layer} {label:<30} {len(units):4d} ch {dt:7.2f} s {rate:9,.0f} unit-steps/s"
                      + (f"  efficiency {eff:.2f}" if eff else "") + f"  act {row['mean_final_activation']:.2f}", flush=True)  # fmt: skip
        del runs, ref, lucent
        gc.collect()
    return rows, net_rows


def featgen_call(featgen, model, pick: bool, layer: str, size: int):
    """``call(units, steps)``: featgen's images, with the closing convolution's channels picked or not."""

    def call(units, steps):
        model.backend.pick_channels = pick
        try:
            return featgen.visualize(model, layer, units=units, size=size, steps=steps, progress=False).images
        finally:
            model.backend.pick_channels = True

    return call


def lucent_call(net, layer: str, size: int, side: int, batched: bool):
    """``call(units, steps)``: Lucent's images, batched or one channel at a time, at featgen's network input."""
    return lambda units, steps: run_lucent(net, layer, units, size, steps, batched, side)


def print_table(rows: list[dict], net_rows: list[dict]) -> None:
    say("| model | layer | run | channels | seconds | unit-steps/s | network alone, images/s | efficiency | mean final activation | / Lucent batched |")
    say("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        peer = next((p for p in rows if p["run"] == "Lucent batched" and p["layer"] == r["layer"]
                     and p["units"] == r["units"]), None)  # fmt: skip
        vs = f"x{r['unit_steps_per_s'] / peer['unit_steps_per_s']:.2f}" if peer and r["run"].startswith("featgen") else ""
        eff = f"{r['efficiency']:.2f}" if r["efficiency"] else ""
        net = f"{r['network_images_per_s']:,.0f}" if r["efficiency"] else ""
        say(f"| {r['model']} | {r['layer']} | {r['run']} | {r['units']} | {r['seconds']:.2f} | {r['unit_steps_per_s']:,.0f} "
            f"| {net} | {eff} | {r['mean_final_activation']:.2f} | {vs} |")  # fmt: skip
    say()
    configs = list(dict.fromkeys(r["config"] for r in net_rows))
    say("The network alone, images/s (forward and the gradient to the input, frozen weights):")
    say()
    say("| model | layer | batch | " + " | ".join(configs) + " |")
    say("|---|---|---:|" + "---:|" * len(configs))
    for (model, layer, batch) in dict.fromkeys((r["model"], r["layer"], r["batch"]) for r in net_rows):
        cells = {r["config"]: f"{r['images_per_s']:,.0f}" for r in net_rows
                 if (r["model"], r["layer"], r["batch"]) == (model, layer, batch)}  # fmt: skip
        say(f"| {model} | {layer} | {batch} | " + " | ".join(cells.get(c, "") for c in configs) + " |")
    say()


# --- checks --------------------------------------------------------------------------------------------------
def checks(args, featgen, np, cuda: bool) -> dict:
    """Bytes repeat; CUDA graphs give the eager bytes; the device's float32 picture is the CPU's."""
    found = {}
    name, layer = ("vgg16_hed", "block3_conv1") if "vgg" in args.models else ("efficientnet_lite0", "blocks.3")
    kw = dict(units=list(range(args.check_units)), size=args.size, steps=args.check_steps, progress=False)
    model = featgen.load_model(name, device=args.device)  # the default: bfloat16 on a GPU with bf16 tensor cores
    model.graphs = True if cuda else None
    a, b = (featgen.visualize(model, layer, **kw).images for _ in range(2))
    found["same_bytes_twice"] = a.tobytes() == b.tobytes()
    say(f"{name} {layer}, {model.backend.precision} on {args.device}: the same render twice gives the same bytes: "
        f"{'yes' if found['same_bytes_twice'] else 'NO'}")  # fmt: skip
    if cuda:
        model.graphs = False
        eager = featgen.visualize(model, layer, **kw).images
        found["graphs_equal_eager"] = eager.tobytes() == a.tobytes()
        say(f"{name} {layer}: CUDA graphs give the eager render's bytes: {'yes' if found['graphs_equal_eager'] else 'NO'}"
            f" (max pixel difference {np.abs(eager - a).max():.3g})")  # fmt: skip
        here = featgen.load_model(name, device=args.device, precision="float32")
        there = featgen.load_model(name, device="cpu", precision="float32")
        g, c = (featgen.visualize(m, layer, **kw).images for m in (here, there))
        r = [float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) for x, y in zip(g, c)]
        found["float32_device_vs_cpu_r"] = r
        say(f"{name} {layer}: float32 on {args.device} against the CPU, per-image correlation: min {min(r):.3f}, "
            f"median {float(np.median(r)):.3f} ({len(r)} units, {args.check_steps} steps)")  # fmt: skip
    say()
    return found


# --- the full VGG16 gallery at 224 px, projected ---------------------------------------------------------------
def projection(args, featgen, cuda: bool) -> dict:
    vgg = featgen.load_model("vgg16_hed", device=args.device)
    size = 48 if args.smoke else GALLERY_224["size"]
    steps = 2 if args.smoke else 32
    convs = [f"block{b}_conv{i}" for b, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    layers, total = [], 0.0
    for lname in convs[:2] if args.smoke else convs:
        channels = vgg.layer_info(lname).channels
        batch = list(range(min(4 if args.smoke else channels, channels)))
        call = featgen_call(featgen, vgg, True, lname, size)
        call(batch, 20)  # past the redirected steps: every kernel and graph made
        dt, _ = timed(cuda, call, batch, steps + 16)
        dt16, _ = timed(cuda, call, batch, 16)
        per_step = max(dt - dt16, 1e-9) / steps
        layer_s = (channels / len(batch)) * (dt16 + (GALLERY_224["steps"] - 16) * per_step)
        layers.append(dict(layer=lname, channels=channels, batch=len(batch), s_per_batch_step=per_step, projected_s=layer_s))
        total += layer_s
        print(f"vgg16_hed {lname:<13} {channels:4d} ch {per_step * 1e3:8.2f} ms per step of {len(batch)}  projected "
              f"{layer_s:8.1f} s", flush=True)  # fmt: skip
    say(f"projected full VGG16 gallery ({sum(r['channels'] for r in layers)} channels, {size} px, "
        f"{GALLERY_224['steps']} steps, a layer's units per call in batches its memory holds, "
        f"{vgg.backend.precision}): {total / 60:.1f} min")
    say()
    return {"layers": layers, "projected_s": total}


# --- the whole gallery through plan --estimate, and one full layer through render ---------------------------
def gallery_config(key: str, folder: Path, args, layers: list[str] | None = None) -> Path:
    """A galleries.yml with one profile, ``g``: the ``full`` profile's torch gallery of the model (every
    conv layer, or ``layers``); with ``--smoke``, a few units and steps of two layers."""
    import yaml

    from featgen.site.render.config import gallery_keys, get_profile

    full = get_profile("full", str(ROOT / "galleries.yml"))
    g = next(g for g in full.galleries if g.model == MODELS[key][0] and g.backend == "torch")
    fields = {**dataclasses.asdict(g), **dict(g.view_options)}  # the views' own options as keys of their own
    data = {k: v for k, v in fields.items() if k in gallery_keys() and v is not None}
    data = json.loads(json.dumps(data))  # tuples → lists
    data["units"] = "all" if g.units is None else data["units"]
    data["layer_options"] = {name: dict(opts) for name, opts in g.layer_options}
    profile = {"chunk": full.chunk, "galleries": [data]}
    if layers:
        data["layers"] = layers
    if args.smoke:
        data.update(units=4, size=32, steps=4, naive_steps=4, diversity=2)
        data["layers"] = layers or {"vgg": ["block1_conv1", "block3_conv1"], "lite0": ["conv_stem", "blocks.2"]}[key]
        profile.update(chunk=2, photos=["chelsea", "coffee"], crop=16, top=2)
    path = folder / f"{key}-{'layer' if layers else 'gallery'}.yml"
    path.write_text(yaml.safe_dump({"profiles": {"g": profile}}, sort_keys=False))
    return path


def site(*argv: str, timeout: float | None = None) -> tuple[int | None, str, float]:
    """``python -m featgen.site ARGV`` in its own process group: ``(exit code or None if cut at
    ``timeout``, output, seconds)``. A cut stops its render workers too, so they leave the GPU."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "FEATGEN_PROGRESS": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "featgen.site", *argv], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out, time.perf_counter() - t0


def estimate(key: str, folder: Path, args) -> dict:
    config = gallery_config(key, folder, args)
    code, out, seconds = site("plan", "--config", str(config), "--profile", "g", "--estimate", "--device", args.device,
                              "--cache", str(folder / "estimate-cache"))  # fmt: skip
    lines = [line for line in out.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith(("g:", "estimate on", MODELS[key][0] + " (torch)"))]
    say(f"`plan --estimate`, the whole {MODELS[key][0]} torch gallery (the full profile's settings, all views; "
        f"the command took {seconds:.0f} s):")
    say("```")
    for line in ours if code == 0 else lines[-15:]:
        say(line)
    say("```")
    say()
    return {"returncode": code, "lines": ours, "seconds": seconds}


def layer(key: str, folder: Path, args) -> dict:
    """One full layer through ``python -m featgen.site render``; what it rendered is read from the cache."""
    from featgen.site.render.cache import RenderCache
    from featgen.site.render.config import get_profile
    from featgen.site.render.plan import plan

    name = args.layer_name or LAYER[key]
    config = gallery_config(key, folder, args, [name])
    cache_dir = folder / "layer-cache"
    code, out, seconds = site("render", "--config", str(config), "--profile", "g", "--device", args.device,
                              "--cache", str(cache_dir), timeout=args.layer_budget)  # fmt: skip
    cache = RenderCache(cache_dir / "renders")
    p = plan(get_profile("g", str(config)), cache, device=args.device)
    done = [(os.path.getmtime(cache.root / j.key[:2] / j.key / "meta.json"), j) for j in p.jobs if cache.has(j.key)]
    done.sort(key=lambda d: d[0])
    views = sum(len(j.units) for _, j in done)
    steps = sum(j.unit_steps for _, j in done)
    units, n_views = len(p.layers[0].units), len(p.layers[0].jobs)
    steady = (views - len(done[0][1].units)) / (done[-1][0] - done[0][0]) if len(done) > 1 and done[-1][0] > done[0][0] else None
    state = "done" if code == 0 else ("cut at the budget" if code is None else f"failed ({code})")
    say(f"one full layer through the pipeline: {MODELS[key][0]} {name}, {units} units x {n_views} views "
        f"({p.layers[0].gallery.size} px, {p.layers[0].gallery.steps} steps), {state} after {seconds:.0f} s: "
        f"{views} unit-views, {steps:,} unit-steps; {views / seconds:.1f} unit-views/s ({views / n_views / seconds:.2f} "
        f"units/s with all views) counting start-up and model load"
        + (f", {steady:.1f} unit-views/s from the first entry on" if steady else ""))  # fmt: skip
    if code not in (0, None):
        say("```\n" + "\n".join(out.splitlines()[-10:]) + "\n```")
    say()
    return {"layer": name, "returncode": code, "seconds": seconds, "unit_views": views, "unit_steps": steps,
            "unit_views_per_s": views / seconds, "steady_unit_views_per_s": steady}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    ap.add_argument("--models", default="lite0,vgg", help="comma-separated: lite0, vgg")
    ap.add_argument("--units", default=None, help="comma-separated channel counts of the table (default 64,256)")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile runs")
    ap.add_argument("--compile", action="store_true", help="with --smoke: time torch.compile too (minutes on a CPU)")
    ap.add_argument("--no-lucent", action="store_true", help="leave out Lucent")
    ap.add_argument("--checks", action="store_true", help="bytes repeat; graphs against eager; the device against the CPU")
    ap.add_argument("--projection", action="store_true", help="project the full VGG16 gallery at 224 px")
    ap.add_argument("--no-gallery", action="store_true", help="(gpu_render.sh) leave out the projection")
    ap.add_argument("--estimate", action="store_true", help="plan --estimate of the model's whole torch gallery")
    ap.add_argument("--layer", action="store_true", help="one full layer through the pipeline")
    ap.add_argument("--layer-name", default=None, help="that layer (default: block4_conv3, blocks.4)")
    ap.add_argument("--layer-budget", type=float, default=None, help="seconds the layer may take (default 150)")
    args = ap.parse_args()
    args.units = [int(u) for u in (args.units or ("2,4" if args.smoke else "64,256")).split(",")]
    args.no_compile = args.no_compile or (args.smoke and not args.compile)
    args.size = args.size or (48 if args.smoke else 128)
    args.steps = args.steps or (4 if args.smoke else 64)
    args.one_at_a_time = 2 if args.smoke else 8
    args.network_seconds = 0.2 if args.smoke else 1.0
    args.check_units, args.check_steps = (2, 4) if args.smoke else (8, 64)
    args.layer_budget = args.layer_budget or (120 if args.smoke else 150)
    keys = [k.strip() for k in args.models.split(",")]
    out = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "out")
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np
    import torch

    import featgen

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: torch sees no CUDA GPU; pass --device cpu (with --smoke) to check the script.")
    device_name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    say(f"device: {device_name}; torch {torch.__version__}; featgen {featgen.__version__}; {args.units} channels, "
        f"{args.size} px, {args.steps} steps{' (smoke: the figures mean nothing)' if args.smoke else ''}")  # fmt: skip
    for module, what in (("tensorflow", "the Keras backend"), ("ray", "the Ray executor")):
        if importlib.util.find_spec(module) is None:
            say(f"{module}: not installed here; {what} is not timed (this script uses neither)")
    say()
    found: dict = {"device": device_name, "torch": torch.__version__, "smoke": args.smoke, "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        # the pipeline's own processes first, while this one holds no GPU memory
        for key in keys:
            if args.estimate:
                found.setdefault("estimate", {})[key] = estimate(key, Path(tmp), args)
            if args.layer:
                found.setdefault("layer", {})[key] = layer(key, Path(tmp), args)
    if args.checks:
        found["checks"] = checks(args, featgen, np, cuda)
    if cuda:
        torch.backends.cudnn.benchmark = True  # static shapes: the fastest kernels, found once (timings only)
    rows, net_rows = [], []
    for key in keys:
        more, alone = table(key, args, featgen, torch, cuda)
        rows, net_rows = rows + more, net_rows + alone
    print_table(rows, net_rows)
    found.update(rows=rows, network=net_rows)
    if args.projection and not args.no_gallery and "vgg" in keys:
        found["projection"] = projection(args, featgen, cuda)
    (out / "bench_gpu.md").write_text("\n".join(LINES) + "\n")
    (out / "bench_gpu.json").write_text(json.dumps(found, indent=1, default=str))
    print(f"figures: {out / 'bench_gpu.md'}, {out / 'bench_gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
