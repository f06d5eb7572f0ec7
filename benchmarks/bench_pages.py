"""The page stage and the site build at the scale of a full gallery, on a synthetic cache.

A cache of synthetic entries in the real format (each view's ``synthetic`` arrays, marked
``"synthetic": true``) is made for the ``full`` profile of ``galleries.yml`` — the VGG16 gallery
alone (``--scale vgg16``: vgg16_hed in torch, 4,224 units, every view) or the whole plan (``--scale
full``: 50,464 units) — inside a work folder of its own, with a project (docs, mkdocs.yml) copied
there. Then it times, each in a child process whose peak memory it reads:

1. the page stage (``write_pages``, with ``synthetic=True``: its pages say so on every page);
2. the site build (``mkdocs build`` of the copied project, tutorials left out: they do not depend on
   the gallery's size);
3. a rebuild after one layer changed (its steps, so its jobs have new keys): the page stage and the
   site build again.

It prints wall time, peak memory, bytes on disk (file sizes, and blocks allocated), file counts, the
search index's size and the size of the unit folders, and writes them to
``${OUT:-benchmarks/out}/bench_pages_<scale>.json``. Nothing it writes leaves the work folder (a
temporary one, removed at the end unless ``--keep``); synthetic pages never reach a site.

    python benchmarks/bench_pages.py [--scale vgg16|full] [--units N] [--work DIR] [--keep]

``--units N`` renders at most N units of each layer (a quick run). The model infos (layer tables)
come from the real models, loaded once on the CPU (torch and TensorFlow).
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
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MKDOCS_DROP = ("gallery",)  # plugins the site build leaves out: the tutorials' runs


def out_dir() -> Path:
    d = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "out")
    d.mkdir(parents=True, exist_ok=True)
    return d


def profile_of(scale: str, units: int | None, changed: str | None = None):
    """The ``full`` profile cut to ``scale``, at most ``units`` units a layer; ``changed``: one layer
    (``model/backend/layer``) rendered with one more step, so that its jobs have new keys."""
    from featgen.site.render.config import get_profile

    prof = get_profile("full", ROOT / "galleries.yml")
    galleries = prof.galleries if scale == "full" else tuple(g for g in prof.galleries if g.model == "vgg16_hed")[:1]
    if units is not None:
        galleries = tuple(replace(g, units=units) for g in galleries)
    if changed is not None:  # that layer's options (or none) with one more step
        model, backend, layer = changed.split("/")
        galleries = tuple(replace(g, layer_options=_one_more_step(g, layer)) if (g.model, g.backend) == (model, backend)
                          else g for g in galleries)  # fmt: skip
    return replace(prof, name=f"bench-{scale}", galleries=galleries)


def _one_more_step(g, layer: str) -> tuple:
    steps = dict(dict(g.layer_options).get(layer, ())).get("steps", g.steps) + 1
    mine = tuple(sorted({**dict(dict(g.layer_options).get(layer, ())), "steps": steps}.items()))
    return tuple((name, opts) for name, opts in g.layer_options if name != layer) + ((layer, mine),)


def changed_layer(rows: list[dict]) -> str:
    """A layer of the median size (by units), the one a rebuild changes."""
    row = sorted(rows, key=lambda r: (sum(b - a + 1 for a, b in r["units"]), r["path"]))[len(rows) // 2]
    return f"{row['model']}/{row['backend']}/{row['layer']}"


def make_project(work: Path) -> Path:
    """A copy of the project's docs and mkdocs.yml (no tutorials, no galleries) in ``work/project``."""
    project = work / "project"
    shutil.copytree(ROOT / "docs", project / "docs", ignore=shutil.ignore_patterns("galleries", "tutorials", ".*"))
    text = (ROOT / "mkdocs.yml").read_text()
    lines, skip = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if skip and (line.startswith("      ") or not stripped):
            continue
        skip = stripped.startswith("- ") and stripped[2:].rstrip(":").split(":")[0] in MKDOCS_DROP
        if skip or stripped.startswith("- Tutorials:"):
            continue
        line = line.replace("featgen/site/mkdocs/hooks.py", str(ROOT / "featgen/site/mkdocs/hooks.py"))
        lines.append(line.replace('base_path: ["."]', f'base_path: ["{ROOT}"]'))  # snippets of the repository
    (project / "mkdocs.yml").write_text("\n".join(lines) + "\n")
    return project


# --- the stages, each run in a child process ---------------------------------------------------------------
def stage_fill(work: Path, scale: str, units: int | None, changed: str | None) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from featgen.site.render.cache import RenderCache
    from featgen.site.render.plan import Plan, plan

    cache = RenderCache(work / "cache" / "renders")
    p = plan(profile_of(scale, units, changed), cache)  # model infos: loaded once, then from the cache
    t0 = time.perf_counter()
    workers = len(os.sched_getaffinity(0))
    groups = [Plan(p.profile, p.models, p.layers[i::workers]) for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        made = sum(pool.map(_fill, groups, [cache.root] * workers))
    return {"entries": made, "jobs": len(p.jobs), "units": sum(len(lp.units) for lp in p.layers),
            "layers": len(p.layers), "seconds": time.perf_counter() - t0}  # fmt: skip


def _fill(p, root: Path) -> int:
    from featgen.site.render import synthetic
    from featgen.site.render.cache import RenderCache

    return synthetic.fill(p, RenderCache(root))


def stage_pages(work: Path, scale: str, units: int | None, changed: str | None) -> dict:
    from featgen.site.pages.write import write_pages
    from featgen.site.render.cache import RenderCache
    from featgen.site.render.plan import plan

    def refuse(*a):
        raise RuntimeError("the page stage must not load a model")

    project = work / "project"
    t0 = time.perf_counter()
    cache = RenderCache(work / "cache" / "renders")
    p = plan(profile_of(scale, units, changed), cache, loader=refuse)
    stats = write_pages(p, cache, project / "docs", pages_dir=project / ".featgen-pages", synthetic=True)
    return {"layers": stats.layers, "layers_written": stats.written, "units": stats.units, "units_written": stats.units_written,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def stage_site(work: Path, *_: object) -> dict:
    project = work / "project"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q"], cwd=project, env=env,
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"mkdocs build failed:\n{res.stderr[-3000:]}")
    return {"seconds": time.perf_counter() - t0}


STAGES = {"fill": stage_fill, "pages": stage_pages, "site": stage_site}


def _pss(pid: int) -> int:
    """Process ``pid``'s proportional set size: its own pages, plus each shared page divided among
    the processes that share it (Linux's smaps_rollup); 0 if it just ended."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """``(rss, pss)``: bytes resident in process ``pid`` and all its descendants now, summed two ways.
    Summed RSS counts a page shared by several processes (Python, NumPy and the other libraries of
    spawned workers) once per process; summed PSS counts it once, which is what the machine holds."""
    parent, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * page
            parent[int(entry)] = int(fields[1])
        except (OSError, ValueError, IndexError):  # a process that just ended
            continue
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return sum(rss.get(p, 0) for p in tree), sum(_pss(p) for p in tree)


def run_stage(name: str, work: Path, scale: str, units: int | None, changed: str | None = None) -> dict:
    """One stage in a child process: its result, wall time, and peak memory: the most that the stage
    and its worker processes held together (their summed PSS, sampled every 0.2 s; their summed RSS
    beside it) and the largest single process."""
    args = [sys.executable, __file__, "--stage", name, "--work", str(work), "--scale", scale]
    args += ["--units", str(units)] if units is not None else []
    args += ["--changed", changed] if changed else []
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    peak, done = [0, 0], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[:] = map(max, peak, tree_memory(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"stage {name} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    largest = max(usage.ru_maxrss, result.pop("children_maxrss_kb", 0)) * 1024
    return {**result, "wall": time.perf_counter() - t0, "peak_mb": max(peak[1], largest) / 2**20,
            "peak_rss_sum_mb": max(peak[0], largest) / 2**20, "largest_process_mb": largest / 2**20}  # fmt: skip


def disk(folder: Path) -> dict:
    """Files, their bytes, and the bytes allocated for them (a hard-linked file counted once)."""
    seen, files, size, blocks = set(), 0, 0, 0
    for root, _, names in os.walk(folder):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            files += 1
            size += st.st_size
            blocks += st.st_blocks * 512
    return {"files": files, "bytes": size, "allocated": blocks}


def unit_folders(pages: Path) -> dict:
    sizes, allocated = [], []
    for unit in pages.glob("galleries/*/*/*/unit-*"):
        d = disk(unit)
        sizes.append(d["bytes"])
        allocated.append(d["allocated"])
    if not sizes:
        return {}
    return {"count": len(sizes), "median_kb": statistics.median(sizes) / 1e3, "max_kb": max(sizes) / 1e3,
            "median_allocated_kb": statistics.median(allocated) / 1e3, "max_allocated_kb": max(allocated) / 1e3,
            "over_80kb": sum(s > 80_000 for s in sizes)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("vgg16", "full"), default="vgg16")
    ap.add_argument("--units", type=int, default=None, help="at most this many units a layer (a quick run)")
    ap.add_argument("--work", default=None, help="the work folder (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--stage", choices=tuple(STAGES), help=argparse.SUPPRESS)
    ap.add_argument("--changed", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        result = STAGES[args.stage](Path(args.work), args.scale, args.units, args.changed)
        result["children_maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps(result))
        return 0
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-pages-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        make_project(work) if not (work / "project").exists() else None
        fill = run_stage("fill", work, args.scale, args.units)
        print(f"synthetic cache: {fill['units']:,} units in {fill['layers']} layers, {fill['jobs']:,} jobs "
              f"({fill['entries']:,} entries made in {fill['wall']:.0f} s); {disk(work / 'cache')['bytes'] / 1e9:.2f} GB")  # fmt: skip
        pages = run_stage("pages", work, args.scale, args.units)
        site = run_stage("site", work, args.scale, args.units)
        project = work / "project"
        changed = changed_layer(json.loads((project / ".featgen-pages/galleries/units.json").read_text()))
        run_stage("fill", work, args.scale, args.units, changed)
        re_pages = run_stage("pages", work, args.scale, args.units, changed)
        re_site = run_stage("site", work, args.scale, args.units, changed)
        if re_pages["layers_written"] != 1:
            raise SystemExit(f"the rebuild after {changed} changed wrote {re_pages['layers_written']} layers, not 1")
        gallery, built = disk(project / ".featgen-pages"), disk(project / "site")
        both = disk(project)  # the pages and the site, hard links counted once
        index = project / "site" / "search" / "search_index.json"
        full = pages["wall"] + site["wall"]
        again = re_pages["wall"] + re_site["wall"]
        report = {
            "scale": args.scale, "units": pages["units"], "layers": pages["layers"],
            "pages": pages, "site": site, "total_s": full, "peak_mb": max(pages["peak_mb"], site["peak_mb"]),
            "rebuild": {"layer": changed, "pages": re_pages, "site": re_site, "total_s": again, "share": again / full},
            "gallery_disk": gallery, "site_disk": built, "project_disk": both,
            "search_index_bytes": index.stat().st_size, "units_json_bytes": (project / ".featgen-pages/galleries/units.json").stat().st_size,
            "unit_folders": unit_folders(project / ".featgen-pages"), "cpus": os.cpu_count(),
        }  # fmt: skip
        print(f"page stage: {pages['units']:,} units, {pages['layers']} layers: {pages['wall']:.0f} s, peak {pages['peak_mb']:.0f} MB "
              f"(its processes together, PSS; their RSS summed {pages['peak_rss_sum_mb']:.0f} MB; "
              f"the largest alone {pages['largest_process_mb']:.0f} MB)")  # fmt: skip
        print(f"site build: {site['wall']:.0f} s, peak {site['peak_mb']:.0f} MB")
        print(f"together: {full:.0f} s ({full / 60:.1f} min), peak memory {report['peak_mb']:.0f} MB")
        print(f"rebuild after {changed} ({re_pages['units_written']:,} units) changed: page stage {re_pages['wall']:.0f} s "
              f"({re_pages['layers_written']} layer written), "
              f"site {re_site['wall']:.0f} s: {again:.0f} s, {100 * again / full:.1f} % of the full time")  # fmt: skip
        print(f"on disk: gallery pages {gallery['bytes'] / 1e9:.3f} GB in {gallery['files']:,} files "
              f"({gallery['allocated'] / 1e9:.3f} GB allocated); site with them {both['bytes'] / 1e9:.3f} GB "
              f"({both['allocated'] / 1e9:.3f} GB allocated, {both['files']:,} files, hard links counted once)")  # fmt: skip
        u = report["unit_folders"]
        print(f"unit folders: median {u['median_kb']:.1f} KB, max {u['max_kb']:.1f} KB ({u['median_allocated_kb']:.1f} / "
              f"{u['max_allocated_kb']:.1f} KB allocated), {u['over_80kb']} over 80 KB")  # fmt: skip
        print(f"search index {report['search_index_bytes'] / 1e3:.0f} KB; units.json {report['units_json_bytes'] / 1e3:.1f} KB")
        path = out_dir() / f"bench_pages_{args.scale}{'' if args.units is None else f'_u{args.units}'}.json"
        path.write_text(json.dumps(report, indent=1))
        print(f"written to {path}")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
