"""Throughput and memory of the dataset-example scan, against the model's own forward pass.

The scan reads a collection, decodes and resizes each image, runs it through the model with every
gallery layer hooked (all 13 convolutions of VGG16-HED by default), reduces each feature map on the
device, and merges a streaming top-k (:mod:`featgen.site.render.scan`). Its efficiency is its
images/s over the forward-only images/s of the same model at the same batch and input size, up to
the last hooked layer, measured in the same process. Peak memory is the process's maximum RSS.

Each run is a child process, so that its peak memory is its own: ``--images`` gives the collection
sizes, e.g. ``500,2000`` to see that memory does not grow with the collection.

    python benchmarks/bench_scan.py [--model vgg16_hed] [--backend torch] [--images 500,2000]
        [--size 224] [--batch 16] [--device cpu] [--threads 2] [--collection DIR]

It also times decoding alone (``--threads`` decoding threads, as the scan uses them), to show
whether decoding or the network bounds the scan, and projects the time of a 50,000-image scan
(ImageNet's validation set) at the measured rate.

Without ``--collection`` it makes the test collection (``make_collection.py``, seeded) in a
temporary folder. Results go to ``${OUT:-benchmarks/out}/bench_scan.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def forward_rate(model, layers: tuple[str, ...], size: int, batch: int, batches: int) -> float:
    """Images/s of the model's forward pass up to the last of ``layers`` (nothing hooked but it)."""
    import numpy as np

    be = model.backend
    x = be.asarray(np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32))
    with be.no_grad():
        be.to_numpy(be.forward(model, x, capture=[layers[-1]], logits=False).activations[layers[-1]])  # warm-up
        t0 = time.perf_counter()
        for _ in range(batches):
            be.to_numpy(be.max(be.forward(model, x, capture=[layers[-1]], logits=False).activations[layers[-1]]))
    return batches * batch / (time.perf_counter() - t0)


def child(args) -> dict:
    import featgen
    from featgen.site.render.examples import photo_set, read_photos
    from featgen.site.render.scan import scan_arrays

    model = featgen.load_model(args.model, backend=args.backend, device=args.device)
    be = model.backend
    layers = tuple(n for n in model.layer_names if be.layer_kernels(model, n) is not None)
    photos = photo_set(args.collection)[: args.images]
    rates = [forward_rate(model, layers, args.size, args.batch, args.forward_batches) for _ in range(args.repeat)]
    n_decode = min(len(photos), 300)
    t0 = time.perf_counter()
    for _ in read_photos(photos, range(n_decode), args.size, threads=args.threads):
        pass
    decode_rate = n_decode / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    images = ((i, im) for i, im, _ in read_photos(photos, range(len(photos)), args.size, threads=args.threads))
    scan_arrays(model, layers, images, 9, args.batch)
    seconds = time.perf_counter() - t0
    return {"images": len(photos), "layers": len(layers), "scan_s": seconds, "scan_rate": len(photos) / seconds,
            "forward_rates": rates, "forward_rate": statistics.median(rates),
            "efficiency": len(photos) / seconds / statistics.median(rates), "decode_rate": decode_rate,
            "device": model.backend.device, "threads": args.threads, "projected_50k_min": 50_000 / (len(photos) / seconds) / 60,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vgg16_hed")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--images", default="500,2000", help="collection sizes, one child process each")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--forward-batches", type=int, default=4, help="batches timed per forward-only measurement")
    ap.add_argument("--repeat", type=int, default=3, help="forward-only measurements (their median is used)")
    ap.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda, ...)")
    ap.add_argument("--threads", type=int, default=2, help="decoding threads")
    ap.add_argument("--collection", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.images = int(args.images)
        print(json.dumps(child(args)))
        return 0
    sizes = [int(n) for n in args.images.split(",")]
    made = None
    if args.collection is None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from make_collection import make_collection

        made = Path(tempfile.mkdtemp(prefix="bench-scan-"))
        args.collection = str(make_collection(made, max(sizes)))
    try:
        results = []
        for n in sizes:
            cmd = [sys.executable, __file__, "--child", "--model", args.model, "--backend", args.backend, "--images", str(n),
                   "--size", str(args.size), "--batch", str(args.batch), "--forward-batches", str(args.forward_batches),
                   "--repeat", str(args.repeat), "--collection", args.collection, "--device", args.device,
                   "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FEATGEN_PROGRESS": "0"})
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{args.model} ({args.backend}), {r['layers']} layers hooked, {args.size} px, batch {args.batch}: "
                  f"{r['images']:,} images scanned at {r['scan_rate']:.2f} images/s; forward only {r['forward_rate']:.2f} "
                  f"images/s (median of {args.repeat}); efficiency {r['efficiency']:.2f}; peak RSS {r['peak_rss_mb']:.0f} MB; "
                  f"decoding alone {r['decode_rate']:.0f} images/s on {args.threads} threads; 50,000 images: "
                  f"{r['projected_50k_min']:.0f} min on {r['device']}")  # fmt: skip
        if len(results) > 1:
            lo, hi = results[0]["peak_rss_mb"], results[-1]["peak_rss_mb"]
            print(f"peak memory: {lo:.0f} MB for {results[0]['images']:,} images, {hi:.0f} MB for {results[-1]['images']:,} "
                  f"({100 * (hi / lo - 1):+.1f} %)")  # fmt: skip
        d = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "out")
        d.mkdir(parents=True, exist_ok=True)
        (d / "bench_scan.json").write_text(json.dumps({"cpus": os.cpu_count(), "runs": results}, indent=1))
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
