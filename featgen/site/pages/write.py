"""The pages stage: cache → the gallery's pages. It runs no model and imports no framework.

Two outputs, each a folder featgen owns only the files of (:mod:`.install`):

- ``DOCS/galleries``: the few pages mkdocs builds into the site (markdown): the galleries' index, one
  page per model and one per model and backend, in the site's navigation and search.
- the gallery's own pages (``PAGES/galleries``, by default ``.featgen-pages/`` beside the docs
  folder): a page per layer and per unit, and a torch | TensorFlow page per layer rendered in both,
  written as HTML in the site's theme (:mod:`.theme`) with their images, for tens of thousands of
  units that mkdocs would take too long to build. The mkdocs hook links them into the built site.

A layer's pages are written again only when something they show changed: its renders (the cache
keys of its jobs), the page code, the theme, or the layers and backends around it. Its manifest
entry records that digest, its files and the summary the index pages need, so a rebuild after one
layer changed reads and writes that layer alone; and a digest per view, so that the images of the
views whose entries did not change are linked from the last build rather than encoded again.

URLs: ``galleries/<model>/<backend>/<layer>/`` (the layer) and ``.../<layer>/unit-<n>/`` (a unit),
``galleries/<model>/compare/<layer>/`` (both backends), and ``galleries/units.json``, the list of
layers and units that the search and the navigation read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import FeatgenError
from ...files import check_own_folder
from .. import views
from ..render.cache import WRITE_ERRORS, RenderCache, write_error
from ..render.jobs import RenderJob
from ..render.plan import LayerPlan, Plan
from .classes import CLASSES, class_layer, digest_jobs, predicted, read_classes, write_classes
from .compare import compare_digest_jobs, write_compare
from .files import TILE, Reuse
from .install import GALLERIES, PAGES_KIND, UNITS_JSON, clean_staging, install, pages_of, read_manifest_data
from .layer import (
    LayerResult,
    Site,
    finish_layer,
    numerics_label,
    reproducible,
    unit_parts,
    write_layer,
    write_units,
)
from .navigation import shared_layers
from .templating import slug, write_page
from .theme import THEME_CSS, site_theme, theme_css

PAGES = ".featgen-pages"  # the gallery's own pages, beside the docs folder
PAIR = ("torch", "tensorflow")  # the backends a compare page puts side by side
MAX_WORKERS = 8  # a worker holds one entry of each view: up to about 100 MB for a 512-unit layer

__all__ = ["write_pages", "write_index_pages", "PageStats", "default_pages_dir", "check_pages_dir", "numerics_label", "PAGES",
           "PAGES_KIND", "UNITS_JSON", "pages_of"]


@dataclass
class PageStats:
    layers: int = 0
    units: int = 0
    written: int = 0  # layers whose pages were written (the others had not changed)
    units_written: int = 0  # units of those layers
    rerendered: int = 0  # entries found corrupt while writing, rendered again through ``rerender``
    # per gallery ("model/backend"): its entries per numerics they were rendered with
    numerics: dict[str, dict[str, int]] = field(default_factory=dict)


def default_pages_dir(docs: str | os.PathLike) -> Path:
    """Where the gallery's own pages go by default: ``.featgen-pages`` beside the docs folder."""
    return Path(docs).resolve().parent / PAGES


def check_pages_dir(path: str | os.PathLike, flag: str = "--pages-dir") -> Path:
    """``path`` if it can hold the gallery's pages, creating nothing: a new or empty folder, or one
    with featgen's pages in it; else one line."""
    path = check_own_folder(path, "pages folder", flag, "a folder of its own, such as .featgen-pages")
    if path.is_dir():
        names = {e.name for e in path.iterdir()}
        if names and not names <= {GALLERIES, ".featgen-build.lock"} and not any(n.startswith(f".{GALLERIES}.") for n in names):
            raise FeatgenError(f"{str(path)!r} holds files but no featgen pages: pass {flag} with a new or empty folder.")
    out = path / GALLERIES
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise FeatgenError(f"{str(out)!r} is a link or a file: featgen writes pages only into a folder there; move it away.")
    return path


@functools.cache
def page_engine() -> str:
    """A digest of what turns a cache entry into page bytes: the page and view code, the templates,
    and the image encoder's versions. Pages written by another engine are written again."""
    import PIL
    from PIL import features

    h = hashlib.sha256(f"{PIL.__version__} {features.version('webp')}".encode())
    site = Path(__file__).resolve().parents[1]
    for folder in ("pages", "views"):
        for p in sorted((site / folder).rglob("*")):
            if p.suffix in (".py", ".j2"):
                h.update(p.relative_to(site).as_posix().encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _ranges(units: tuple[int, ...]) -> list[list[int]]:
    """Sorted units as inclusive ranges: ``[0, 1, 2, 5]`` → ``[[0, 2], [5, 5]]``."""
    out: list[list[int]] = []
    for u in sorted(units):
        if out and u == out[-1][1] + 1:
            out[-1][1] = u
        else:
            out.append([u, u])
    return out


def _site(plan: Plan, docs: Path, synthetic: bool) -> Site:
    models: dict[str, list[str]] = {}
    layers: dict[tuple[str, str], list[str]] = {}
    units: dict[tuple[str, str, str], tuple[int, ...]] = {}
    for lp in plan.layers:
        if lp.backend not in models.setdefault(lp.model, []):
            models[lp.model].append(lp.backend)
        layers.setdefault((lp.model, lp.backend), []).append(lp.layer)
        units[(lp.model, lp.backend, lp.layer)] = lp.units
    pairs = {m: PAIR for m, bs in models.items() if all(b in bs for b in PAIR)}
    # the recipes of layers with units left out: a link to one of those shows the command that renders it
    recipes = {(lp.model, lp.backend, lp.layer): reproducible(lp) for lp in plan.layers if len(lp.units) < (lp.info.channels or 0)}
    labels = {key: info.labels for key, info in plan.models.items() if info.labels}
    return Site(site_theme(docs), models, layers, units, pairs, synthetic, recipes, labels)


def _view_digests(lp: LayerPlan, cache: RenderCache) -> dict[str, str]:
    """What each view's images on a layer's unit pages are made of: its entries (each by its key, its
    units and its stamp: an entry rendered again under the same key changes it) and the page engine."""
    return {v: _digest({"engine": page_engine(), "jobs": [(j.key, list(j.units), cache.stamp(j.key)) for j in js]})
            for v, js in lp.jobs.items()}  # fmt: skip


def _layer_digest(lp: LayerPlan, plan: Plan, site: Site, view_digests: dict[str, str]) -> str:
    """What a layer's pages are made of: its views' entries (``view_digests``), the page engine, the
    theme and the pages around it."""
    info = plan.models[(lp.model, lp.backend)]
    return _digest({"engine": page_engine(), "site": site.digest_context(lp.model, lp.backend), "views": view_digests,
                    "inputs": {name: views.get(name).page_inputs(site, lp) for name in lp.jobs}, "units": lp.units,
                    "info": [info.input_size, info.weights_digest, info.bgr, lp.native in info.stem, list(lp.info.shape)]})  # fmt: skip


def _reuse(entry: dict[str, Any] | None, view_digests: dict[str, str], out: Path, base: str) -> Reuse | None:
    """What a layer written again may take from its last build (its manifest ``entry``): the images of
    the views whose digests did not change; None if there are none."""
    if entry is None or not isinstance(entry.get("views"), dict) or not isinstance(entry.get("files"), list):
        return None
    same = frozenset(v for v, d in view_digests.items() if entry["views"].get(v) == d)
    prefix = f"{base}/"  # the names looked up in it are the page stage's own (unit-<n>/<view's file>)
    files = frozenset(f[len(prefix) :] for f in entry["files"] if isinstance(f, str) and f.startswith(prefix))
    return Reuse(out, base, same, files) if same and files else None


def _kept(entry: dict[str, Any] | None, digest: str, out: Path, index: str) -> bool:
    """Whether an old manifest entry still holds: the same digest, and its page still there."""
    return entry is not None and entry.get("digest") == digest and (out / index).is_file()


def write_pages(plan: Plan, cache: RenderCache, docs: str | os.PathLike,
                rerender: Callable[[list[RenderJob]], Any] | None = None, pages_dir: str | os.PathLike | None = None,
                synthetic: bool = False, workers: int | None = None) -> PageStats:  # fmt: skip
    """Write every page of ``plan`` from ``cache`` alone: the index pages under ``docs/galleries`` and
    the gallery's own pages under ``pages_dir/galleries`` (those whose inputs changed).

    ``rerender(jobs)`` is called for an entry found corrupt while reading (it should render it into
    the cache); without it, a missing entry is a one-line error naming the job. ``synthetic``: the
    cache holds synthetic entries on purpose (a benchmark): the pages say so on every page. Without
    it a synthetic entry is an error, so that none reaches a published site. ``workers``: processes
    that write layers side by side (default: one per core); each layer's bytes are the same either way.
    """
    docs = Path(docs)
    pages_dir = check_pages_dir(default_pages_dir(docs) if pages_dir is None else pages_dir)
    out = pages_dir / GALLERIES
    site = _site(plan, docs, synthetic)
    stats = PageStats()
    try:
        pages_dir.mkdir(parents=True, exist_ok=True)
        clean_staging(pages_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{GALLERIES}.tmp-", dir=pages_dir))
        docs_staging = Path(tempfile.mkdtemp(prefix=f".{GALLERIES}.tmp-", dir=docs))
    except OSError as exc:
        raise write_error(exc, f"the pages folder {str(pages_dir)!r}", "--pages-dir") from None
    try:
        old = read_manifest_data(out, PAGES_KIND).get("entries", {}) if out.is_dir() else {}
        entries: dict[str, dict[str, Any]] = {}
        keep: set[str] = set()
        by_layer: dict[tuple[str, str, str], LayerPlan] = {}

        def counted(rerendered: list[RenderJob]) -> Any:
            stats.rerendered += len(rerendered)
            return rerender(rerendered) if rerender is not None else None

        classes = _read_classes(plan, cache, site, old, out, counted if rerender is not None else None)
        todo: list[tuple[LayerPlan, str, str, str]] = []
        digests: dict[str, dict[str, str]] = {}
        reuse: dict[str, Reuse | None] = {}
        for lp in plan.layers:
            by_layer[(lp.model, lp.backend, lp.layer)] = lp
            base = f"{slug(lp.model)}/{slug(lp.backend)}/{slug(lp.layer)}"
            key = f"layer:{base}"
            digests[key] = _view_digests(lp, cache)
            digest = _layer_digest(lp, plan, site, digests[key])
            if _kept(old.get(key), digest, out, f"{base}/index.html"):
                entries[key] = old[key]
                keep.update(old[key]["files"])
            else:
                todo.append((lp, key, digest, base))
                reuse[key] = _reuse(old.get(key), digests[key], out, base)
        results = _write_layers(todo, plan, cache, staging, site, workers, counted if rerender is not None else None,
                                [reuse[key] for _, key, _, _ in todo])  # fmt: skip
        for (lp, key, digest, base), res in zip(todo, results):
            if res.synthetic and not synthetic:
                raise FeatgenError(f"the cache holds synthetic entries ({lp.model}/{lp.backend}/{lp.layer}), made "
                                   "by benchmarks/bench_pages.py, which no site may show: pass --cache with the "
                                   "cache of your renders.")  # fmt: skip
            entries[key] = {"digest": digest, "files": [f"{base}/{f}" for f in res.files], "summary": res.summary,
                            "numerics": res.numerics, "views": digests[key]}  # fmt: skip
            stats.written += 1
            stats.units_written += len(lp.units)
        for lp in plan.layers:
            key = f"layer:{slug(lp.model)}/{slug(lp.backend)}/{slug(lp.layer)}"
            gallery = stats.numerics.setdefault(f"{lp.model}/{lp.backend}", {})
            for label, n in entries[key]["numerics"].items():
                gallery[label] = gallery.get(label, 0) + n
            stats.layers += 1
            stats.units += len(lp.units)
        compares = _compare_pages(plan, cache, site, by_layer, old, out, staging, entries, keep, counted if rerender else None)
        _class_pages(plan, site, classes, old, staging, entries, keep)
        shared = {UNITS_JSON: json.dumps(_units_json(plan), separators=(",", ":")), THEME_CSS: theme_css(site.theme)}
        for name, text in shared.items():  # files every page shares: written only when they change
            data = text.encode()
            if (out / name).is_file() and name in old.get("shared:", {}).get("files", []) and (out / name).read_bytes() == data:
                keep.add(name)
            else:
                (staging / name).write_bytes(data)
        entries["shared:"] = {"digest": "", "files": sorted(shared), "summary": {}, "numerics": {}}
        # while files move, the manifest keeps only the entries of what stays as it was: a build cut
        # then writes the others again, and takes no image from a folder it may have half replaced
        during = {"entries": {k: v for k, v in entries.items() if old.get(k) is v}, "synthetic": synthetic}
        install(staging, out, keep, PAGES_KIND, {"entries": entries, "synthetic": synthetic}, during)
        _index_pages(plan, site, entries, compares, docs_staging)
        install(docs_staging, docs / GALLERIES, extra={"pages": os.path.relpath(out, docs / GALLERIES)})
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise write_error(exc, f"the docs folder {str(docs)!r} or the pages folder {str(pages_dir)!r}", "--docs or --pages-dir") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(docs_staging, ignore_errors=True)
    return stats


def _part_in_worker(task: tuple) -> tuple[str, Any, list[str], dict[str, str]]:
    """Some of a layer's unit pages in a worker process: ``("ok", UnitsPart, ...)`` or ``("error",
    message, ...)``, with what the worker's cache found bad (so that the build reports it)."""
    lp, info, root, layer_dir, site, registered, start, stop, reuse = task
    views.ensure(registered)
    cache = RenderCache(root)
    try:
        return "ok", write_units(lp, info, cache, layer_dir, site, start, stop, reuse=reuse), cache.corrupt, cache.quarantined
    except FeatgenError as exc:
        return "error", str(exc), cache.corrupt, cache.quarantined


def _write_layers(todo: list[tuple[LayerPlan, str, str, str]], plan: Plan, cache: RenderCache, staging: Path, site: Site,
                  workers: int | None, rerender: Callable | None, reuse: list[Reuse | None]) -> list[LayerResult]:  # fmt: skip
    """The pages of the layers in ``todo``, in order, side by side in worker processes (``reuse``: what
    each may link from its last build). With fewer layers than twice the workers (a rebuild after
    one layer changed), each layer's units are split into parts, so that every core has work, and
    this process writes parts too; a layer's own page is written here from its parts. A layer whose
    worker found an entry missing or bad is written again here, where the entry can be rendered
    again."""
    if workers is None:
        workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, MAX_WORKERS)
    here = [lambda t=t, r=r: write_layer(t[0], plan.models[(t[0].model, t[0].backend)], cache, staging / t[3], site, rerender, r)
            for t, r in zip(todo, reuse)]  # fmt: skip
    split = max(1, -(-2 * workers // max(1, len(todo))))  # parts per layer: 1 when the layers alone fill the workers
    parts = [(i, lp, base, start, stop) for i, (lp, _, _, base) in enumerate(todo)
             for start, stop in unit_parts(lp, -(-len(lp.units) // split))]  # fmt: skip
    if workers <= 1 or len(parts) < 2:
        return [f() for f in here]
    registered = list(views.all_views())
    tasks = [(lp, plan.models[(lp.model, lp.backend)], cache.root, staging / base, site, registered, start, stop, reuse[i])
             for i, lp, base, start, stop in parts]  # fmt: skip
    last = {i: k for k, (i, *_) in enumerate(parts)}  # a layer's last part: all of it is done when that is
    results: list[LayerResult] = []
    done: list[tuple[str, Any]] = []
    outcomes = _run_parts(tasks, workers, share=split > 1)
    for k, ((i, lp, base, _, _), (status, value, corrupt, quarantined)) in enumerate(zip(parts, outcomes)):
        cache.corrupt += [c for c in corrupt if c not in cache.corrupt]
        cache.quarantined.update(quarantined)
        done.append((status, value))
        if k != last[i]:
            continue
        errors = [v for s, v in done if s == "error"]
        if not errors:
            results.append(finish_layer(lp, staging / base, site, [v for _, v in done]))
        elif rerender is None:
            raise FeatgenError(errors[0])
        else:
            shutil.rmtree(staging / base, ignore_errors=True)  # what the workers wrote of it
            results.append(here[i]())
        done = []
    return results


def _run_parts(tasks: list[tuple], workers: int, share: bool) -> list[tuple[str, Any, list[str], dict[str, str]]]:
    """:func:`_part_in_worker` of each of ``tasks`` (two or more), in order, in ``workers`` processes
    side by side. ``share``: this process is one of them, which spares a worker's start (a spawned
    worker imports the page stage anew, about 0.3 s): it takes parts from the end while the workers
    take them from the start, until they meet."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawned = min(workers, len(tasks)) - (1 if share else 0)
    with ProcessPoolExecutor(spawned, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_part_in_worker, t) for t in tasks]
        mine = {}
        for k in reversed(range(len(tasks)) if share else range(0)):
            if not futures[k].cancel():  # a worker has begun it: the parts before it are the workers' too
                break
            mine[k] = _part_in_worker(tasks[k])
        return [mine[k] if k in mine else f.result() for k, f in enumerate(futures)]


def _compare_pages(plan: Plan, cache: RenderCache, site: Site, by_layer: dict, old: dict, out: Path, staging: Path,
                   entries: dict, keep: set[str], rerender: Callable | None) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """The torch | TensorFlow page of every layer a model renders in both backends; their summaries by model."""
    compares: dict[str, list[dict[str, Any]]] = {}
    for model, (left, right) in site.pairs.items():
        for layer in shared_layers({b: site.layers[(model, b)] for b in (left, right)}, (left, right)):
            a, b = by_layer[(model, left, layer)], by_layer[(model, right, layer)]
            base = f"{slug(model)}/compare/{slug(layer)}"
            key = f"compare:{base}"
            digest = _digest({"engine": page_engine(), "site": site.digest_context(model, left), "jobs": compare_digest_jobs(a, b, cache),
                              "units": [a.units, b.units]})  # fmt: skip
            if _kept(old.get(key), digest, out, f"{base}/index.html"):
                entries[key] = old[key]
                keep.update(old[key]["files"])
            else:
                sizes = (plan.models[(model, left)].input_size, plan.models[(model, right)].input_size)
                summary = write_compare(a, b, sizes, cache, staging / base, site, rerender)
                entries[key] = {"digest": digest, "files": [f"{base}/index.html"], "summary": summary, "numerics": {}}
            compares.setdefault(model, []).append(entries[key]["summary"])
    return compares


def _read_classes(plan: Plan, cache: RenderCache, site: Site, old: dict, out: Path,
                  rerender: Callable | None) -> dict[tuple[str, str], tuple]:  # fmt: skip
    """Per classifier gallery (model, backend): its class layer, its class pages' digest and, where those
    pages are written again, that layer's class data; records in ``site`` which classes have pages (the
    unit pages link to them). Pages that did not change keep their manifest entry, which holds the
    classes, so their entries (a whole layer's dataset examples) are not read."""
    found = {}
    for model, backend in site.layers:
        lp = class_layer([lp for lp in plan.layers if (lp.model, lp.backend) == (model, backend)])
        if lp is None:
            continue
        key = f"classes:{slug(model)}/{slug(backend)}/{CLASSES}"
        digest = _digest({"engine": page_engine(), "site": site.digest_context(model, backend), "jobs": digest_jobs(lp, cache),
                          "units": lp.units, "layer": lp.layer})  # fmt: skip
        entry = old.get(key)
        if _kept(entry, digest, out, f"{slug(model)}/{slug(backend)}/{CLASSES}/index.html") and "predicted" in entry["summary"]:
            data, counts = None, {int(c): n for c, n in entry["summary"]["predicted"].items()}
        else:
            data = read_classes(lp, plan.models[(model, backend)], cache, rerender)
            counts = predicted(data)
        site.class_pages[(model, backend)] = counts
        site.class_layer[(model, backend)] = lp.layer
        found[(model, backend)] = (lp, digest, data)
    return found


def _class_pages(plan: Plan, site: Site, classes: dict, old: dict, staging: Path, entries: dict, keep: set[str]) -> None:
    """The class pages of every classifier gallery, written again only when what they show changed
    (``classes`` from :func:`_read_classes`: no data where they did not)."""
    for (model, backend), (lp, digest, data) in classes.items():
        base = f"{slug(model)}/{slug(backend)}/{CLASSES}"
        key = f"classes:{base}"
        if data is None:
            entries[key] = old[key]
            keep.update(old[key]["files"])
        else:
            files = write_classes(lp, plan.models[(model, backend)], data, staging / base, site)
            counts = site.class_pages[(model, backend)]
            entries[key] = {"digest": digest, "files": [f"{base}/{f}" for f in files], "numerics": {},
                            "summary": {"classes": len(counts), "layer": lp.layer, "predicted": {str(c): n for c, n in counts.items()}}}  # fmt: skip


def _units_json(plan: Plan) -> list[dict[str, Any]]:
    """The layers and units of the gallery, for the search and the navigation (a few KB for the full plan)."""
    return [{"model": lp.model, "backend": lp.backend, "layer": lp.layer, "type": lp.info.type,
             "path": f"{slug(lp.model)}/{slug(lp.backend)}/{slug(lp.layer)}/", "units": _ranges(lp.units)}
            for lp in plan.layers]  # fmt: skip


def _index_pages(plan: Plan, site: Site, entries: dict, compares: dict, root: Path) -> None:
    """The index pages of ``plan``, from the layers' summaries."""
    galleries: dict[str, list[dict[str, Any]]] = {}
    for (model, backend), info in plan.models.items():
        layers = [dict(entries[f"layer:{slug(model)}/{slug(backend)}/{slug(x)}"]["summary"]) for x in site.layers[(model, backend)]]
        pair = site.pairs.get(model)
        for lay in layers:
            lay["compare"] = {"title": f"{pair[0]} | {pair[1]}"} if pair and site.compared(model, lay["layer"]) else None
        inverse = {native: alias for alias, native in info.aliases.items()}
        found = entries.get(f"classes:{slug(model)}/{slug(backend)}/{CLASSES}")
        galleries.setdefault(model, []).append({"backend": backend, "source": info.source, "input_size": info.input_size,
                                                "layers": layers, "table": list(info.table), "aliases": inverse,
                                                "classes": found["summary"] if found else None})  # fmt: skip
    write_index_pages(root, galleries, plan.profile, compares, site.synthetic)


def write_index_pages(root: Path, galleries: dict[str, list[dict[str, Any]]], profile: Any,
                      compares: dict[str, list[dict[str, Any]]] | None = None, synthetic: bool = False) -> None:  # fmt: skip
    """The galleries index, one page per model (its backends) and per model and backend (its layers),
    as markdown for mkdocs. ``galleries`` maps a model to one entry per backend: ``backend``,
    ``source``, ``input_size``, ``layers`` (layer summaries), ``table`` (``LayerInfo`` rows) and
    ``aliases`` (native -> alias); ``compares`` a model to its compare pages' summaries."""
    compares = compares or {}
    for model, backends in galleries.items():
        for b in backends:
            others = [o["backend"] for o in backends if o is not b]
            write_page("backend.md.j2", root / slug(model) / slug(b["backend"]) / "index.md", model=model, **b, others=others,
                       tile=TILE, synthetic=synthetic)  # fmt: skip
        titles = {c["title"] for c in compares.get(model, [])}
        write_page("model.md.j2", root / slug(model) / "index.md", model=model, backends=backends, tile=TILE,
                   compared=compares.get(model, []), pair_title=next(iter(titles), ""))  # fmt: skip
    write_page("index.md.j2", root / "index.md", galleries=galleries, profile=profile, synthetic=synthetic)
