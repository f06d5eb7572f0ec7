"""``python -m featgen.site build|render|pages|plan``: render the galleries and write their pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FeatgenError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", help="a profile of the config file (default: quick)")
    p.add_argument("--config", default=None, help="the gallery config (default: ./galleries.yml)")
    p.add_argument("--cache", default=".featgen-cache", help="the render cache folder")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, auto, or per backend: torch=cuda,tensorflow=cpu (default: each gallery's)")
    p.add_argument("--chunk", type=int, default=None, help="at most this many units per job (default: the profile's)")


def _executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local", choices=("local", "ray"), help="where jobs run (default: local)")
    p.add_argument("--workers", type=int, default=None,
                   help="render workers: processes (local) or actors (ray) (default: one per GPU, else one per core)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per worker (default 1 on a CPU: other counts round differently)")
    p.add_argument("--address", default=None, help="ray: a cluster to join (auto, ray://host:port)")
    p.add_argument("--gpus-per-worker", type=float, default=None, help="ray: GPUs per actor (fractions allowed)")


def _check_numbers(args: argparse.Namespace) -> None:
    """The numeric options, within the limits the config uses too (``--chunk 0`` is an error, not "the
    profile's"), before anything runs."""
    from .. import limits

    for name in ("chunk", "threads", "workers", "max_in_flight"):
        limits.check(name, getattr(args, name, None))


def _options(args: argparse.Namespace) -> dict:
    names = {"threads": "threads", "address": "address", "workers": "workers", "gpus_per_worker": "num_gpus"}
    return {opt: getattr(args, a) for a, opt in names.items() if getattr(args, a, None) is not None}


# --- the ray executor's flow control and shared cache, and its options' check ----------------------------
RAY_ONLY = ("address", "gpus_per_worker", "max_in_flight", "shared_cache")


def _ray_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-in-flight", type=int, default=None, help="ray: jobs queued on each worker at once (default 2)")
    p.add_argument("--shared-cache", action="store_true", default=None,
                   help="ray: workers write entries into --cache themselves (a folder every node sees at that path)")


def _ray_options(args: argparse.Namespace) -> dict:
    """The ray executor's own options that were given; one line if they come without ``--executor ray``."""
    given = [a for a in RAY_ONLY if getattr(args, a, None) is not None]
    if given and getattr(args, "executor", "local") != "ray":
        raise FeatgenError(f"--{given[0].replace('_', '-')} is an option of the ray executor: add --executor ray.")
    return {a: getattr(args, a) for a in ("max_in_flight", "shared_cache") if getattr(args, a, None) is not None}


def _plan(args: argparse.Namespace) -> int:
    from .render.cache import RenderCache, check_cache_folder
    from .render.plan import plan

    root = Path(args.cache)
    cache = RenderCache(check_cache_folder(root) / "renders") if root.is_dir() else None
    p = plan(args.profile, cache, device=args.device, config=args.config, chunk=args.chunk)
    from . import views

    jobs = p.jobs
    for lp in p.layers:
        n = sum(len(js) for name, js in lp.jobs.items() if not views.get(name).scanned)
        steps = sum(j.unit_steps for js in lp.jobs.values() for j in js)
        print(f"{lp.model:<20} {lp.backend:<10} {lp.layer:<24} {len(lp.units):>5} of {lp.info.channels} units "
              f"{n:>5} jobs {steps:>12,} unit-steps")  # fmt: skip
    todo = sum(1 for j in jobs if cache is None or not cache.has(j.key))
    print(f"{p.profile.name}: {len(p.layers)} layers, {sum(len(lp.units) for lp in p.layers)} units, {len(jobs)} jobs "
          f"({todo} not in the cache), {p.unit_steps():,} unit-steps")  # fmt: skip
    if p.scans:
        models = len({(s.model, s.backend) for s in p.scans})
        missing = sum(1 for s in p.scans if cache is None or not cache.has(s.key))
        print(f"example scan: {len(p.scans)} shards ({missing} not in the cache) over {models} models, "
              f"{max(s.stop for s in p.scans):,} images each; examples of {len(p.derived)} layers")  # fmt: skip
    if args.estimate:
        from .render.estimate import estimate

        e = estimate(p, device=args.device, cache=cache)
        for line in e.lines():
            print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m featgen.site")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="render what the cache lacks, then write the pages under docs/galleries")
    r = sub.add_parser("render", help="render what the cache lacks; write no pages (GPU machines)")
    g = sub.add_parser("pages", help="write the pages from the cache alone: no model, no framework")
    p = sub.add_parser("plan", help="print the jobs and unit-steps of a profile (and, with --estimate, its duration)")
    for sp in (b, r, g, p):
        _common(sp)
    for sp in (b, r):
        _executor(sp)
        _ray_executor(sp)
    for sp in (b, g):
        sp.add_argument("--docs", default="docs", help="the docs folder (index pages go to DOCS/galleries)")
        sp.add_argument("--pages-dir", default=None,
                        help="the gallery's own pages (layers, units), linked into the site by the mkdocs hook "
                             "(default: .featgen-pages beside DOCS)")
    b.add_argument("--renders-only", action="store_true", help="the same as the render command")
    p.add_argument("--estimate", action="store_true", help="time a short calibration on the device and project the run")
    args = ap.parse_args(argv)
    try:
        _check_numbers(args)
        if args.cmd == "plan":
            return _plan(args)
        from .build import build

        pages = args.cmd == "pages" or (args.cmd == "build" and not args.renders_only)
        render = args.cmd != "pages"
        stats = build(args.profile, docs=getattr(args, "docs", "docs"), cache_dir=args.cache, device=args.device,
                      pages=pages, render=render, config=args.config, chunk=args.chunk, tutorials=pages,
                      pages_dir=getattr(args, "pages_dir", None),
                      executor=getattr(args, "executor", "local"), **({**_options(args), **_ray_options(args)} if render else {}))  # fmt: skip
        if stats["tutorials"]:
            print("featgen changed since the tutorials last ran: they will re-run")
        for entry in stats["corrupt"]:
            print(f"bad cache entry quarantined and rendered again: {entry}")
        for gallery, labels in sorted(stats["numerics"].items()):
            if len(labels) > 1:  # the pictures repeat across these, the bytes do not
                kinds = "; ".join(f"{n} under {label}" for label, n in sorted(labels.items()))
                print(f"note: the {gallery} pages show renders of different numerics ({kinds}): "
                      "see 'What repeats' in How it works")
        scan = stats.get("scan") or {}
        if scan.get("examples"):
            print(f"example scan: {scan['scanned']} of {scan['shards']} shards scanned (the collection: {scan['images']:,} images "
                  f"read, {scan['skipped']:,} files skipped); examples of {scan['examples']} layers merged")  # fmt: skip
        what = "nothing to render, all from cache" if not stats["rendered"] else f"{stats['rendered']} jobs rendered"
        if pages:
            what += f"; pages of {stats['layers_written']} of {stats['layers']} layers written (the rest unchanged)"
        print(f"galleries ({stats['profile']}): {what}; {stats['cached']} of {stats['jobs']} jobs cached; {stats['seconds']} s")
        return 0
    except FeatgenError as exc:
        print(f"featgen.site: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("featgen.site: interrupted; finished renders stay in the cache, and a rerun resumes from them.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
