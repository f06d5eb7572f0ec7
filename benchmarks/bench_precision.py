"""What ``precision="float64"`` costs: naive renders in float32 and float64, both backends.

The naive 30-step ascent of the Keras tutorial (4 units, 48 px) on one early and one deep layer of
each built-in model, timed after a warm-up call, and the per-pixel correlation between the two
backends' images at each precision.

    python benchmarks/bench_precision.py [--size 48] [--steps 30]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import featgen

LAYERS = {"efficientnet_lite0": ["conv_stem", "blocks.3"], "vgg16_hed": ["block1_conv2", "block5_conv3"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    kw = dict(units=range(4), method="naive", size=args.size, steps=args.steps, progress=False)
    print(f"{platform.processor() or platform.machine()}, naive {args.steps} steps, 4 units, {args.size} px")
    print(f"{'model':<19}{'layer':<14}{'precision':<10}{'torch s':>9}{'keras s':>9}{'min r':>8}")
    for name, layers in LAYERS.items():
        for precision in ("float32", "float64"):
            models = [featgen.load_model(name, backend=b, precision=precision) for b in ("torch", "tensorflow")]
            for layer in layers:
                seconds, images = [], []
                for m in models:
                    featgen.visualize(m, layer, **{**kw, "steps": 1})  # warm-up: tracing, allocations
                    t = time.perf_counter()
                    images.append(featgen.visualize(m, layer, **kw).images)
                    seconds.append(time.perf_counter() - t)
                r = min(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(*images))
                print(f"{name:<19}{layer:<14}{precision:<10}{seconds[0]:>9.2f}{seconds[1]:>9.2f}{r:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
