"""The analysis stage at the scale of the whole ``full`` plan: the links and classes views' jobs
(expanded weights between neighbouring gallery layers, and a classifier's class weights), which read
the weights alone.

It plans the ``full`` profile of ``galleries.yml`` (every conv layer of EfficientNet-Lite0 and
VGG16-HED, in torch and TensorFlow: 124 layers, 50,464 units), keeps the jobs of the views that
run no image and no optimization, and runs them with the local executor into a cache of their
own, as a build would. It prints the wall time of that run (the plan's model loads are timed apart:
a build loads them once for every stage), the entries' bytes on disk, and those bytes against the
size of the full plan's pages (``--site-bytes``, by default the figure ``bench_pages.py --scale
full`` wrote to ``benchmarks/out``, else the one recorded in ``benchmarks/README.md``).

    python benchmarks/bench_links.py [--workers 2] [--work DIR] [--keep]

Results go to ``${OUT:-benchmarks/out}/bench_links.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANALYSIS_VIEWS = ("links", "classes")
RECORDED_SITE_BYTES = 3_930_000_000  # the full plan's pages by file sizes, links view included (benchmarks/README.md)


def site_bytes(given: int | None) -> tuple[int, str]:
    """The size of the full plan's pages to compare with, and where the figure comes from."""
    if given:
        return given, "--site-bytes"
    out = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "out") / "bench_pages_full.json"
    if out.is_file():
        data = json.loads(out.read_text())  # the pages and the built site, hard links counted once
        return int(data["project_disk"]["bytes"]), "bench_pages_full.json"
    return RECORDED_SITE_BYTES, "benchmarks/README.md (bench_pages.py --scale full)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", help="a folder for the cache (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--site-bytes", type=int, help="the full plan's pages in bytes")
    args = ap.parse_args()

    from featgen.site.render.cache import RenderCache
    from featgen.site.render.executors import RunProgress
    from featgen.site.render.executors.local import execute
    from featgen.site.render.plan import plan

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="featgen-links-"))
    try:
        cache = RenderCache(work / "renders")
        t0 = time.perf_counter()
        p = plan("full", cache, config=str(ROOT / "galleries.yml"), device="cpu")
        planned = time.perf_counter() - t0
        jobs = [j for lp in p.layers for name, js in lp.jobs.items() if name in ANALYSIS_VIEWS for j in js]
        units = sum(len(lp.units) for lp in p.layers)
        t0 = time.perf_counter()
        with RunProgress(sum(len(j.units) for j in jobs), desc="analysis") as progress:
            execute(jobs, cache, progress, workers=args.workers)
        seconds = time.perf_counter() - t0
        entries = [cache.root / j.key[:2] / j.key for j in jobs]  # the cache's layout: a folder per key
        size = sum(f.stat().st_size for d in entries for f in d.rglob("*") if f.is_file())
        site, source = site_bytes(args.site_bytes)
        result = {"layers": len(p.layers), "units": units, "jobs": len(jobs),
                  "jobs_by_view": {v: sum(j.view == v for j in jobs) for v in ANALYSIS_VIEWS}, "workers": args.workers,
                  "plan_seconds": round(planned, 1), "analysis_seconds": round(seconds, 1), "cache_bytes": size,
                  "site_bytes": site, "site_bytes_from": source, "cache_over_site": size / site}  # fmt: skip
        print(f"full plan: {result['layers']} layers, {units:,} units; {len(jobs)} analysis jobs "
              f"({', '.join(f'{v}: {n}' for v, n in result['jobs_by_view'].items())}) on {args.workers} workers")
        print(f"plan (model infos) {planned:.1f} s; analysis {seconds:.1f} s")
        print(f"cache {size / 1e6:.1f} MB = {100 * size / site:.2f} % of the pages' {site / 1e9:.2f} GB ({source})")
        out = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "out")
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_links.json").write_text(json.dumps(result, indent=1))
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
