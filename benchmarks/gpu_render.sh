#!/usr/bin/env bash
# featgen's render loop on a GPU, in one command: featgen against Lucent at equal resolution,
# float32 against bfloat16, eager against torch.compile, on EfficientNet-Lite0 `blocks.4` and
# VGG16-HED `block4_conv3`; then the projected time of the full VGG16 gallery (all 13 conv
# layers, 4,224 channels, 224 px, 512 steps) from short timed runs of every layer.
#
#   benchmarks/gpu_render.sh                      # on the GPU (about 5 minutes on one H200)
#   benchmarks/gpu_render.sh --smoke --device cpu # tiny sizes, to check the script anywhere
#
# Options: --device cuda|cpu, --smoke, --no-compile, --models lite0,vgg, --no-gallery, --units N,
# --size PX, --steps N. torch.compile is timed in bfloat16 (compiling costs about a minute per graph);
# the gallery projection uses the fastest eager run, and prints what compiling would change.
# --models runs one model per command where their weight packages must be installed separately
# (e.g. `--models lite0 --no-gallery`, then `--models vgg`; the projection needs vgg).
# Run from the repository root. Figures are printed and written to ${OUT:-benchmarks/out}.
# TensorFlow is timed only where it is installed; otherwise the script says it skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}."
export FEATGEN_PROGRESS=0
OUT="${OUT:-benchmarks/out}"
mkdir -p "$OUT"
exec python3 - "$OUT" "$@" <<'PY'
import argparse
import importlib.util
import json
import platform
import sys
import time

import torch

import featgen
from featgen.backends.torchvision_compat import import_torchvision
from featgen.vis.transforms import PRESETS

sys.path.insert(0, "benchmarks")
from bench_render import channel_means, lucent_model, run_lucent  # noqa: E402

out_dir = sys.argv[1]
ap = argparse.ArgumentParser(prog="gpu_render.sh")
ap.add_argument("--device", default="cuda")
ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile runs")
ap.add_argument("--models", default="lite0,vgg", help="comma-separated: lite0, vgg")
ap.add_argument("--no-gallery", action="store_true", help="leave out the VGG16 gallery projection")
ap.add_argument("--units", type=int, default=None)
ap.add_argument("--size", type=int, default=None)
ap.add_argument("--steps", type=int, default=None)
args = ap.parse_args(sys.argv[2:])
units_n = args.units or (4 if args.smoke else 64)
size = args.size or (48 if args.smoke else 128)
steps = args.steps or (4 if args.smoke else 64)
one_at_a_time_units = 2 if args.smoke else 8  # Lucent one channel at a time: a rate from fewer channels
gallery = dict(channels=4224, size=224, steps=512)
proj_steps = 2 if args.smoke else 32
proj_size = 48 if args.smoke else gallery["size"]
proj_batch = 4 if args.smoke else 64

if args.device.startswith("cuda") and not torch.cuda.is_available():
    raise SystemExit("gpu_render.sh: torch sees no CUDA GPU; pass --device cpu (with --smoke) to check the script.")
cuda = args.device.startswith("cuda")
if cuda:
    torch.backends.cudnn.benchmark = True  # static shapes: pick the fastest convolution once
device_name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
print(f"device: {device_name}; torch {torch.__version__}; featgen {featgen.__version__}", flush=True)
if importlib.util.find_spec("tensorflow") is None:
    print("TensorFlow: skipped (not installed here).")
else:
    print("TensorFlow: skipped (this script times torch; bench_render.py --keras times the Keras backend).")
import_torchvision()


def sync():
    if cuda:
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - t0, result


rows = []
MODELS = {"lite0": ("efficientnet_lite0", "blocks.4"), "vgg": ("vgg16_hed", "block4_conv3")}
configs = [("float32", False), ("bfloat16", False)] + ([] if args.no_compile else [("bfloat16", True)])
for name, layer in (MODELS[k.strip()] for k in args.models.split(",")):
    ref = featgen.load_model(name, device=args.device)
    tname = ref.resolve_layer(layer)
    units = list(range(units_n))
    side = PRESETS["lucid"].out_size(size)
    net = lucent_model(ref)
    runs = {}
    for precision, comp in configs:
        model = featgen.load_model(name, device=args.device, precision=precision)
        model.compile = comp
        label = f"featgen {precision}{' compiled' if comp else ''}"
        runs[label] = (lambda m: lambda n, s: featgen.visualize(m, tname, units=units[:n], size=size, steps=s,
                                                                 progress=False).images)(model)  # fmt: skip
    runs["lucent batched"] = lambda n, s: run_lucent(net, tname, units[:n], size, s, True, side)
    runs["lucent one-at-a-time"] = lambda n, s: run_lucent(net, tname, units[:n], size, s, False, side)
    for label, fn in runs.items():
        n = one_at_a_time_units if "one-at-a-time" in label else units_n
        warm, _ = timed(lambda: fn(n, 20 if "compiled" in label else 2))  # compiles: past the redirected steps too
        torch.manual_seed(0)
        dt, images = timed(lambda: fn(n, steps))
        acts = channel_means(ref, tname, images, units[:n])
        row = dict(model=name, layer=tname, run=label, units=n, seconds=dt, unit_steps_per_s=n * steps / dt,
                   mean_final_activation=float(acts.mean()), warmup_s=warm)  # fmt: skip
        rows.append(row)
        print(f"{name} {tname} {label:<28} {dt:7.2f} s {row['unit_steps_per_s']:9.1f} unit-steps/s  "
              f"act {row['mean_final_activation']:7.2f}  (warm-up {warm:.1f} s)", flush=True)  # fmt: skip

# --- the full VGG16 gallery, projected from every conv layer's measured rate -----------------------
total_s, layers = 0.0, []
vgg_rows = [r for r in rows if r["model"] == "vgg16_hed" and r["run"].startswith("featgen")]
if vgg_rows and not args.no_gallery:
    best = max((r for r in vgg_rows if "compiled" not in r["run"]), key=lambda r: r["unit_steps_per_s"])
    precision = "bfloat16" if "bfloat16" in best["run"] else "float32"
    vgg = featgen.load_model("vgg16_hed", device=args.device, precision=precision)
    convs = [f"block{b}_conv{i}" for b, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    if args.smoke:
        convs = convs[:2]
    for lname in convs:
        channels = vgg.layer_info(lname).channels
        batch = list(range(min(proj_batch, channels)))
        featgen.visualize(vgg, lname, units=batch, size=proj_size, steps=2, progress=False)
        dt, _ = timed(lambda: featgen.visualize(vgg, lname, units=batch, size=proj_size, steps=proj_steps + 16,
                                                progress=False))  # fmt: skip
        dt16, _ = timed(lambda: featgen.visualize(vgg, lname, units=batch, size=proj_size, steps=16, progress=False))
        per_step = max(dt - dt16, 1e-9) / proj_steps  # the steps after the 16 redirected ones
        layer_s = (channels / len(batch)) * (dt16 + (gallery["steps"] - 16) * per_step)
        layers.append(dict(layer=lname, channels=channels, batch=len(batch), s_per_batch_step=per_step,
                           projected_s=layer_s))  # fmt: skip
        total_s += layer_s
        print(f"vgg16_hed {lname:<13} {channels:4d} ch  {per_step * 1e3:8.2f} ms per step of {len(batch)}  "
              f"projected {layer_s:8.1f} s", flush=True)  # fmt: skip
    if not args.smoke:
        assert sum(r["channels"] for r in layers) == gallery["channels"], layers
    compiled = [r for r in vgg_rows if "compiled" in r["run"]]
    note = ""
    if compiled:
        k = compiled[0]["unit_steps_per_s"] / next(r for r in vgg_rows if r["run"] == "featgen bfloat16")["unit_steps_per_s"]
        note = f"; torch.compile measured x{k:.2f} on block4_conv3 at {size} px"
    gallery_line = (f"projected full VGG16 gallery ({sum(r['channels'] for r in layers)} channels, {proj_size} px, "
                    f"{gallery['steps']} steps, batches of {proj_batch}, {best['run']}): {total_s / 60:.1f} min "
                    f"on {device_name}{note}")  # fmt: skip
    print("\n" + gallery_line)
else:
    gallery_line = "gallery projection: not run"

lines = [f"device: {device_name}; torch {torch.__version__}; {units_n} channels, {size} px, {steps} steps", "",
         "| model | layer | run | channels | seconds | unit-steps/s | mean final activation |",
         "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
for r in rows:
    lines.append(f"| {r['model']} | {r['layer']} | {r['run']} | {r['units']} | {r['seconds']:.2f} | "
                 f"{r['unit_steps_per_s']:.1f} | {r['mean_final_activation']:.2f} |")  # fmt: skip
lines.append("")
for model_name in dict.fromkeys(r["model"] for r in rows):
    peer = next(r for r in rows if r["model"] == model_name and r["run"] == "lucent batched")
    for r in rows:
        if r["model"] == model_name and r["run"].startswith("featgen"):
            lines.append(f"{model_name}: {r['run']} / lucent batched: x{r['unit_steps_per_s'] / peer['unit_steps_per_s']:.2f}")
lines.append("\n" + gallery_line)
print("\n" + "\n".join(lines))
with open(f"{out_dir}/gpu_render.md", "w") as f:
    f.write("\n".join(lines) + "\n")
with open(f"{out_dir}/gpu_render.json", "w") as f:
    json.dump(dict(device=device_name, torch=torch.__version__, rows=rows, gallery_layers=layers,
                   gallery_projected_s=total_s, smoke=args.smoke), f, indent=1)  # fmt: skip
PY
