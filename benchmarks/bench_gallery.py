"""Gallery rendering through the executors: the local executor against Ray, and full layers on a GPU.

``cpu``: the same plan with the local executor (one single-threaded worker process per core, its
default; then one worker with every core; then one worker with one thread, the work each Ray worker
does) and with Ray at 2 single-threaded workers. Prints the ratio and Ray's per-job overhead. The Ray cluster binds to 127.0.0.1; run it in a
private network namespace so it reaches nothing else::

    unshare -n python benchmarks/bench_gallery.py cpu [--units 8] [--steps 24] [--size 64]

``gpu``: one full layer of HED-VGG16 and one of EfficientNet-Lite0 with the ``full`` profile's
settings (``galleries.yml``), through the Ray executor on one GPU; prints units/s per layer and
projects the whole ``full`` plan from them (``benchmarks/gpu_gallery.sh`` runs it)::

    python benchmarks/bench_gallery.py gpu [--smoke] [--device cpu] [--budget 120]

Figures go to ``${OUT:-benchmarks/out}/bench_gallery_<mode>.json`` too.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import platform
import socket
import struct
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from featgen.errors import FeatgenError  # noqa: E402
from featgen.site.render.cache import RenderCache  # noqa: E402
from featgen.site.render.config import get_profile, parse_config  # noqa: E402
from featgen.site.render.executors import RunProgress, run_jobs  # noqa: E402
from featgen.site.render.jobs import RenderJob  # noqa: E402
from featgen.site.render.plan import plan  # noqa: E402

# Layers whose full render fits the script's time limit on one H200 (measured there: HED-VGG16
# block3_conv1 ran at 3,000 unit-steps/s, Lite0 blocks.3 at 1,700 to 2,200, full settings).
GPU_LAYERS = (("vgg16_hed", "block2_conv1"), ("efficientnet_lite0", "blocks.2"))


def out_dir() -> Path:
    d = Path(os.environ.get("OUT") or "benchmarks/out")
    d.mkdir(parents=True, exist_ok=True)
    return d


def loopback_up() -> None:
    """In a fresh network namespace ``lo`` starts down: bring it up (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0))[:18])[1]
        if not flags & 1:
            fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))


def conditions() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(), "gpu": gpu,
            "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def start_ray(local_only: bool, **options) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local_only:
        loopback_up()
        options.update(_node_ip_address="127.0.0.1", _temp_dir=tempfile.mkdtemp(prefix="fgray", dir="/tmp"))
    ray.init(include_dashboard=False, log_to_driver=False, **options)


class Timeline(RunProgress):
    """The run's progress bar, plus when each job finished; raises ``Budget`` past ``deadline``."""

    def __init__(self, total_units: int, deadline: float | None = None, desc: str = "render"):
        super().__init__(total_units, desc=desc)
        self.deadline, self.done = deadline, []

    def advance(self, job, worker=None) -> None:
        super().advance(job, worker)
        self.done.append((time.perf_counter(), job))
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise Budget


class Budget(Exception):
    """The time budget ran out; the figures come from the jobs finished so far."""


# --- cpu: local executor against Ray -----------------------------------------------------------------
def cpu(args: argparse.Namespace) -> dict:
    from featgen.site.render.executors import ray as ray_executor

    config = {"profiles": {"bench": {"chunk": args.chunk, "photos": ["chelsea", "coffee"], "examples": None, "galleries": [
        {"model": m, "backend": "torch", "layers": list(layers), "units": args.units, "size": args.size,
         "steps": args.steps, "naive_steps": args.steps, "diversity": 2, "device": "cpu",
         "views": ["regularized", "naive", "negative", "diversity", "photos"]}
        for m, layers in (("vgg16_hed", ("block2_conv1", "block4_conv1")), ("efficientnet_lite0", ("blocks.2", "blocks.4")))
    ]}}}  # fmt: skip
    jobs = plan(parse_config(config)["bench"], None).jobs
    found: dict = {"conditions": conditions(), "jobs": len(jobs), "units": sum(len(j.units) for j in jobs),
                   "unit_steps": sum(j.unit_steps for j in jobs), "plan": config["profiles"]["bench"]}  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        # the local executor as it runs by default (one single-threaded worker per core), then one
        # worker with every core, then one worker with one thread; each starts its workers anew
        for name, options in (("local_s", {}), ("local_1_worker_s", {"workers": 1, "threads": cores}),
                              ("local_1_thread_s", {"workers": 1, "threads": 1})):  # fmt: skip
            t0 = time.perf_counter()
            run_jobs(jobs, RenderCache(Path(tmp) / name), "local", quiet=True, **options)
            found[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        start_ray(local_only=True, num_cpus=2, object_store_memory=200 * 2**20)
        found["ray_cluster_start_s"] = time.perf_counter() - t0
        # one actor's start-up: its imports and one load of each model (a 1-step job per model)
        starts = [RenderJob(j.model, j.backend, j.device, j.precision, j.layer, (0,), "naive", {**j.options, "steps": 1})
                  for j in {j.model: j for j in jobs if j.view == "naive"}.values()]  # fmt: skip
        t0 = time.perf_counter()
        ray_executor.execute(starts, RenderCache(Path(tmp) / "start"), RunProgress(1, quiet=True), workers=1)
        found["ray_actor_start_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        progress = Timeline(found["units"])
        ray_executor.execute(jobs, RenderCache(Path(tmp) / "ray"), progress, workers=2, threads=1)
        progress.close()
        found["ray_s"] = time.perf_counter() - t0
        found["ray_workers"] = progress.workers
    found["conditions"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    found["ratio"] = found["local_s"] / found["ray_s"]
    found["ratio_with_cluster_start"] = found["local_s"] / (found["ray_s"] + found["ray_cluster_start_s"])
    # Ray's 2 workers each do about half the single-threaded work; the rest of their time is overhead.
    # The actors' start-up (imports, model loads, in parallel) is counted apart.
    busy = found["ray_s"] - found["ray_actor_start_s"]
    found["ray_overhead_per_job_s"] = (2 * busy - found["local_1_thread_s"]) / found["jobs"]
    return found


def print_cpu(f: dict) -> None:
    c = f["conditions"]
    print(f"plan: {f['jobs']} jobs, {f['units']} units, {f['unit_steps']:,} unit-steps "
          f"(HED-VGG16 block2_conv1, block4_conv1; Lite0 blocks.2, blocks.4; 5 views)")  # fmt: skip
    print(f"machine: {c['cpus']} CPUs, torch {c['torch']}, load average {c['load_average']} -> {c['load_average_after']}")
    print(f"local executor ({c['cpus']} workers x 1 thread)  {f['local_s']:8.1f} s")
    print(f"local, 1 worker x {c['cpus']} threads       {f['local_1_worker_s']:8.1f} s")
    print(f"local, 1 worker x 1 thread        {f['local_1_thread_s']:8.1f} s")
    print(f"Ray, 2 workers x 1 thread    {f['ray_s']:8.1f} s  (+ {f['ray_cluster_start_s']:.1f} s cluster start; "
          f"actor start with model load {f['ray_actor_start_s']:.1f} s)")  # fmt: skip
    print(f"ratio local / Ray: x{f['ratio']:.2f} (x{f['ratio_with_cluster_start']:.2f} counting the cluster start)")
    print(f"Ray overhead per job: {1000 * f['ray_overhead_per_job_s']:.0f} ms")


# --- gpu: full layers on one GPU ---------------------------------------------------------------------
def gpu(args: argparse.Namespace) -> dict:
    import ray

    from featgen.site.render.executors import ray as ray_executor

    full = get_profile("full", args.config)
    has_tf = importlib.util.find_spec("tensorflow") is not None
    found: dict = {"conditions": conditions(), "device": args.device, "smoke": args.smoke, "layers": [], "skipped": []}
    if not has_tf:
        found["skipped"].append("TensorFlow galleries: tensorflow is not installed here "
                                "(GPU build: pip install 'tensorflow[and-cuda]')")  # fmt: skip
    galleries = [g for g in full.galleries if has_tf or g.backend != "tensorflow"]
    by_model = {g.model: g for g in galleries if g.backend == "torch"}
    device = None if args.device == "auto" else args.device
    start_ray(local_only=args.local_only, **({"num_cpus": 2} if args.smoke else {}))
    found["ray_resources"] = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    with tempfile.TemporaryDirectory() as tmp:
        cache = RenderCache(Path(tmp) / "renders")
        rates = {}
        for model, layer in [(m, n) for m, n in GPU_LAYERS if m in args.models]:
            g = replace(by_model[model], layers=(layer,))
            prof = replace(full, galleries=(g,))
            if args.smoke:  # the same views and code path, a few units and steps
                g = replace(g, units=4, size=32, steps=4, naive_steps=4, diversity=2)
                prof = replace(full, galleries=(g,), chunk=2, crop=16, top=2, photos=("chelsea", "coffee"))
            p = plan(prof, cache, device=args.device)
            jobs = p.jobs
            units = len(p.layers[0].units)
            steps = sum(j.unit_steps for j in jobs)
            progress = Timeline(units * len(g.views), time.perf_counter() + args.budget, desc=f"{model} {layer}")
            t0 = time.perf_counter()
            try:
                ray_executor.execute(jobs, cache, progress, workers=1, num_gpus=None if device != "cpu" else 0)
                cut = False
            except Budget:
                cut = True
            progress.close()
            seconds = time.perf_counter() - t0
            done_steps = sum(j.unit_steps for _, j in progress.done)
            # projection rate: from the first job's end on (the actor's start and model load excluded)
            steady = (done_steps - progress.done[0][1].unit_steps) / (progress.done[-1][0] - progress.done[0][0]) \
                if len(progress.done) > 1 else done_steps / seconds  # fmt: skip
            rates[(model, "torch")] = steady
            yardstick = network_alone(model, layer, g, [j for _, j in progress.done], cache, args.device)
            row = {"model": model, "layer": layer, "units": units, "jobs": len(jobs), "jobs_done": len(progress.done),
                   **yardstick, "efficiency": steady / yardstick["network_images_per_s"] if yardstick else None,
                   "unit_steps": steps, "seconds": round(seconds, 1), "unit_steps_per_s": round(done_steps / seconds, 1),
                   "units_per_s": round(done_steps / seconds / (steps / units), 3),
                   "steady_unit_steps_per_s": round(steady, 1), "cut_by_budget": cut,
                   "views": list(g.views), "size": g.size, "steps": g.steps}  # fmt: skip
            found["layers"].append(row)
            print_layer(row)
        # the full plan, from model info (one load per model) and the rates measured above
        total = {}
        for g in galleries:
            try:
                pf = plan(replace(full, galleries=(g,)), cache, device="cpu")
            except FeatgenError as exc:  # e.g. a model whose weights package is missing here
                found["skipped"].append(f"{g.model} ({g.backend}) in the projection: {exc}")
                continue
            total[f"{g.model} ({g.backend})"] = ((g.model, g.backend), pf.unit_steps(), sum(len(lp.units) for lp in pf.layers))
    projected = 0.0
    found["projection"] = []
    for name, (key, steps, units) in total.items():
        seconds = steps / rates[key] if key in rates else None
        projected += seconds or 0
        found["projection"].append({"gallery": name, "units": units, "unit_steps": steps, "hours": seconds and seconds / 3600})
    found["projected_hours_one_gpu"] = projected / 3600
    ray.shutdown()
    return found


def network_alone(model: str, layer: str, g, done: list, cache: RenderCache, device: str) -> dict:
    """The network alone (``network_alone.py``) at the batch the layer's entries record, its input side
    and the jobs' precision: the yardstick of the pipeline's steady rate over all views."""
    import statistics

    from network_alone import images_per_s

    import featgen
    from featgen.vis.transforms import get_transforms

    metas = [cache.meta(j.key) for j in done if j.view != "photos"]
    batches = [m["numerics"].get("batch") for m in metas if m and m.get("numerics", {}).get("batch")]
    if not batches:
        return {}
    batch, precision = int(statistics.median(batches)), done[0].precision
    net = featgen.load_model(model, device=device, precision="float32")
    side = get_transforms(g.transforms).out_size(g.size)
    rate = images_per_s(net, net.resolve_layer(layer), batch, side, precision, channels_last=True)
    return {"network_batch": batch, "network_precision": precision, "network_images_per_s": round(rate, 1)}


def print_layer(r: dict) -> None:
    cut = f" (budget reached after {r['jobs_done']} of {r['jobs']} jobs)" if r["cut_by_budget"] else ""
    print(f"{r['model']:<20} {r['layer']:<14} {r['units']:>5} units x {len(r['views'])} views, {r['size']} px, "
          f"{r['steps']} steps: {r['seconds']:7.1f} s, {r['units_per_s']:.3f} units/s "
          f"({r['unit_steps_per_s']:,.0f} unit-steps/s; {r['steady_unit_steps_per_s']:,.0f} after the first job){cut}")  # fmt: skip
    if r.get("efficiency"):
        print(f"  network alone at batch {r['network_batch']} ({r['network_precision']}, channels_last): "
              f"{r['network_images_per_s']:,.0f} images/s; the pipeline's efficiency over all views {r['efficiency']:.2f}")


def print_gpu(f: dict) -> None:
    c = f["conditions"]
    print(f"device: {c['gpu'] or 'CPU'} (--device {f['device']}), torch {c['torch']}, Ray resources {f['ray_resources']}")
    for p in f["projection"]:
        hours = f"{p['hours']:.1f} h" if p["hours"] is not None else "not measured"
        print(f"full plan, {p['gallery']:<32} {p['units']:>6} units {p['unit_steps']:>14,} unit-steps  {hours}")
    print(f"projected full plan on one such device (measured galleries): {f['projected_hours_one_gpu']:.1f} h"
          " (one layer per model calibrates all its layers, at the rate after the first job:"
          " a rough figure)")  # fmt: skip
    for line in f["skipped"]:
        print(f"skipped: {line}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("cpu", help="local executor against Ray at 2 single-threaded workers")
    c.add_argument("--units", type=int, default=8)
    c.add_argument("--chunk", type=int, default=4)
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--steps", type=int, default=24)
    g = sub.add_parser("gpu", help="one full layer per torch model through Ray on one GPU; project the full plan")
    g.add_argument("--smoke", action="store_true", help="a few units and steps (checks the path on a CPU)")
    g.add_argument("--device", default="auto", help="auto (a GPU if there is one), cuda or cpu")
    g.add_argument("--budget", type=float, default=120, help="seconds per layer before it stops and projects")
    g.add_argument("--config", default=None, help="the gallery config (default: ./galleries.yml)")
    g.add_argument("--models", nargs="+", default=[m for m, _ in GPU_LAYERS], help="which of the two models to time")
    g.add_argument("--local-only", action="store_true", help="bind Ray to 127.0.0.1 (run inside unshare -n)")
    args = ap.parse_args()
    found = cpu(args) if args.mode == "cpu" else gpu(args)
    (print_cpu if args.mode == "cpu" else print_gpu)(found)
    path = out_dir() / f"bench_gallery_{args.mode}.json"
    path.write_text(json.dumps(found, indent=1, default=str))
    print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
