"""The gallery build: plan → render (missing jobs only) → pages, under a lock on the cache and docs.

Pages go to ``docs/galleries/`` (git-ignored) with stable URLs
``galleries/<model>/<backend>/<layer>/unit-<n>/``. Renders come from the content-addressed cache,
so a rebuild renders only what changed, and a cache copied from another machine renders nothing.

Everything is checked before anything is written: the config, the options, and that the cache and
docs folders are a cache's and a project's (:func:`~featgen.site.render.cache.check_cache_folder`,
:func:`~featgen.site.pages.write.check_docs`). Only then are folders, locks and files made.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import limits
from ..errors import FeatgenError
from ..files import atomic_write
from . import views
from .pages.install import check_docs, clean_staging
from .pages.write import check_pages_dir, default_pages_dir, write_pages
from .render.cache import (
    WRITE_ERRORS,
    BuildLock,
    RenderCache,
    check_cache_folder,
    check_writable_dir,
    write_error,
)
from .render.config import get_profile
from .render.executors import RunStats, run_jobs
from .render.merge import MergeStats, merge_examples, missing_examples
from .render.plan import Plan, plan


def _no_loading(spec: str, backend: str, device: Any, precision: str) -> Any:
    raise FeatgenError(f"the cache has no model info for {spec} ({backend}): run `python -m featgen.site render` "
                       "with this profile first, or copy the cache that has it.")  # fmt: skip


def build(profile: str = "quick", docs: str | os.PathLike = "docs", cache_dir: str | os.PathLike = ".featgen-cache",
          device: str | None = None, pages: bool = True, render: bool = True, config: str | None = None,
          executor: str = "local", chunk: int | None = None, quiet: bool = False, tutorials: bool = False,
          pages_dir: str | os.PathLike | None = None, **executor_options: Any) -> dict[str, Any]:  # fmt: skip
    """Render (what the cache lacks) every gallery of ``profile`` and write its pages under ``docs/galleries``.

    ``pages=False`` only fills the cache (a GPU machine); ``render=False`` only writes pages, from the
    cache alone; ``pages_dir`` is where the gallery's own pages go (default ``.featgen-pages`` beside
    ``docs``) (it loads no model and fails with one line if an entry is missing). ``tutorials``:
    with pages, make the tutorials under ``docs/tutorials`` re-run if featgen changed since they ran.
    Returns counts: ``jobs``, ``rendered``, ``cached``, ``corrupt`` entries (each quarantined and
    rendered again), ``units`` rendered, ``seconds``, ``tutorials`` (whether they will re-run), and
    ``numerics``: the entries the pages show, per numerics they were rendered with.
    """
    t0 = time.perf_counter()
    prof = get_profile(profile, config)  # the config, the options and the folders, before anything is made
    limits.check("chunk", chunk)
    cache_root = check_cache_folder(cache_dir)
    docs = check_docs(docs) if pages else Path(docs)
    pages_dir = check_pages_dir(default_pages_dir(docs) if pages_dir is None else pages_dir) if pages else None
    cache_root = check_writable_dir(cache_root, "cache folder", "--cache")
    cache = RenderCache(cache_root / "renders")
    rerun_tutorials = False
    with ExitStack() as locks:
        locks.enter_context(BuildLock(cache_root))
        if pages:
            docs = check_writable_dir(docs, "docs folder", "--docs")
            locks.enter_context(BuildLock(docs))
            pages_dir = check_writable_dir(pages_dir, "pages folder", "--pages-dir")
            locks.enter_context(BuildLock(pages_dir))
            clean_staging(docs)
            if tutorials:
                from .mkdocs.tutorials import invalidate_stale_tutorials

                rerun_tutorials = invalidate_stale_tutorials(docs / "tutorials")
        loader = None if render else _no_loading  # model info the cache lacks: loaded here, on the CPU
        p = plan(prof, cache, device=device, chunk=chunk, loader=loader)
        run = RunStats(jobs=len({j.key for j in p.jobs}))
        scan = RunStats(jobs=len(p.scans))
        merged = MergeStats()
        if render:
            run = run_jobs(p.jobs, cache, executor, quiet=quiet, desc=f"galleries ({p.profile.name})", **executor_options)
            if missing_examples(p, cache):  # shards first, then the crops of every layer that lacks them
                scan = run_jobs(p.scans, cache, executor, quiet=quiet, desc="example scan", unit="image", **executor_options)
                merged = merge_examples(p, cache, quiet=quiet)
                if merged.skipped and not quiet:
                    print(f"example scan: {merged.skipped:,} of the collection's {merged.read + merged.skipped:,} files skipped as unreadable "
                          f"(e.g. {merged.why[0] if merged.why else '?'})")  # fmt: skip

        def rerender(jobs: list) -> None:
            if not render:
                return
            again = run_jobs([j for j in jobs if not views.get(j.view).scanned], cache, executor, quiet=True, **executor_options)
            run.rendered += again.rendered
            derived = [j for j in jobs if views.get(j.view).scanned]
            if derived:
                run_jobs(p.scans, cache, executor, quiet=True, unit="image", **executor_options)
                merge_examples(p, cache, derived, quiet=True)

        numerics: dict[str, dict[str, int]] = {}
        written = None
        if pages:
            written = write_pages(p, cache, docs, rerender, pages_dir)
            numerics = written.numerics
        stats = {"profile": p.profile.name, "jobs": run.jobs, "rendered": run.rendered,
                 "cached": run.jobs - run.rendered, "units": run.units, "unit_steps": run.unit_steps,
                 "workers": run.workers, "corrupt": list(cache.corrupt), "numerics": numerics,
                 "scan": {"shards": scan.jobs, "scanned": scan.rendered, "examples": merged.written,
                          "images": merged.read, "skipped": merged.skipped},
                 "tutorials": rerun_tutorials, "seconds": round(time.perf_counter() - t0, 1),
                 "layers_written": written.written if written else 0, "layers": written.layers if written else 0}  # fmt: skip
        _record(cache_root, stats, p)
    return stats


def _record(cache_root: Path, stats: dict[str, Any], p: Plan) -> None:
    """``last-build.json``: what the last build did and its plan, for the benchmarks and for a reader."""
    rows = [{"model": lp.model, "backend": lp.backend, "layer": lp.layer, "units": len(lp.units),
             "channels": lp.info.channels} for lp in p.layers]  # fmt: skip
    profile = asdict(p.profile)
    text = json.dumps({**stats, "plan": rows, "config": profile}, indent=1, default=str)
    try:
        atomic_write(cache_root / "last-build.json", text.encode())
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise write_error(exc, f"the cache {str(cache_root)!r}", "--cache") from None
