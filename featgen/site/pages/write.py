"""The pages stage: cache → markdown pages and their images. It runs no model and imports no framework.

Everything a page shows comes out of the render stage's cache entries (images, statistics, photo
crops and activation strips) and the plan's model info (layer table, first-conv kernels), each
checked against what its job must hold (:mod:`featgen.site.render.entries`).

``DOCS/galleries`` belongs to the user; featgen owns only the files it wrote there, which it lists in
``DOCS/galleries/.featgen-manifest.json``. Pages are written into a staging folder first; then each
is moved into place (one rename each), and the files of the last build that this one no longer
writes are deleted. Nothing else in the folder is touched: a user's own file there survives every
rebuild. A write that fails while the pages are made (a full disk) leaves the last build's pages
as they were, and one line.

URLs: ``galleries/index.md``, ``<model>/index.md``, ``<model>/<backend>/index.md``,
``<model>/<backend>/<layer>/index.md`` and ``.../<layer>/unit-<n>/index.md``. A unit folder holds PNG renders, the activation strip
``photos.jpg`` and the example crops ``top-<j>.jpg`` and ``bottom-<j>.jpg``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ...errors import FeatgenError
from ...files import atomic_write, check_own_folder
from ...images import grid, load_image, save_image
from ..render.cache import WRITE_ERRORS, RenderCache, write_error
from ..render.entries import job_arrays
from ..render.examples import jpeg_at
from ..render.jobs import RenderJob
from ..render.plan import LayerPlan, ModelInfo, Plan
from .navigation import compare_units, layer_nav, shared_layers, unit_links
from .reproduce import reproduction
from .templating import slug, write_page
from .verdict import unit_extras

GALLERIES = "galleries"


@dataclass
class PageStats:
    layers: int = 0
    units: int = 0
    rerendered: int = 0  # entries found corrupt while writing, rendered again through ``rerender``
    numerics: dict[str, int] = field(default_factory=dict)  # entries per numerics they were rendered with


def numerics_label(numerics: dict[str, Any] | None) -> str:
    """``"torch 2.13.0 on cpu (1 thread, avx512)"``: what an entry's float rounding came from."""
    if not numerics:
        return "unrecorded"
    threads = numerics.get("threads")
    cpu = f" ({threads} thread{'s' * (threads != 1)}, {numerics.get('isa')})" if threads is not None else ""
    return f"{numerics.get('framework')} on {numerics.get('device')}{cpu}"


class _CurvePlot:
    """One small figure reused for every unit's objective curve (a new figure and a tight layout per
    unit cost more than the rest of its page). Plain ``Figure`` and Agg canvas: no pyplot state."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(4, 2.4), dpi=80)
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot()
        (self.line,) = self.ax.plot([], [], color="#3f51b5")
        self.ax.set_xlabel("step")
        self.ax.set_ylabel("objective (mean activation)")
        self.fig.subplots_adjust(left=0.2, right=0.96, top=0.95, bottom=0.2)

    def save(self, curve: np.ndarray, path: Path) -> None:
        y = np.nan_to_num(np.asarray(curve, np.float64))
        self.line.set_data(np.arange(len(y)), y)
        self.ax.relim()
        self.ax.autoscale_view()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fig.savefig(path, dpi=80)


_CURVE: list[_CurvePlot] = []


def _loss_plot(curve: np.ndarray, path: Path) -> None:
    if not _CURVE:
        _CURVE.append(_CurvePlot())
    _CURVE[0].save(curve, path)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _examples(ph: dict[str, np.ndarray], i: int, udir: Path) -> dict[str, Any]:
    """Write unit ``i``'s top and bottom example crops (``top-j.jpg``, ``bottom-j.jpg``); return, for the
    page, per kind a list of ``file`` and ``activation`` (the unit's peak on that photo)."""
    out: dict[str, Any] = {}
    for kind in ("top", "bottom"):
        k = ph[f"{kind}_file"].shape[1]
        rows = []
        for j in range(k):
            _write_bytes(udir / f"{kind}-{j}.jpg", jpeg_at(ph[f"{kind}_jpeg"], ph[f"{kind}_offsets"], i * k + j))
            rows.append({"file": str(ph["files"][int(ph[f"{kind}_file"][i, j])]),
                         "activation": float(ph[f"{kind}_value"][i, j])})  # fmt: skip
        out[kind] = rows
    out["scanned"] = len(ph["files"])
    return out


def _view_arrays(jobs: tuple[RenderJob, ...], cache: RenderCache, rerender: Callable | None,
                 stats: PageStats, input_size: int) -> dict[str, np.ndarray]:  # fmt: skip
    """The view's arrays over all its chunks, each checked against its job, concatenated in unit order."""
    parts = []
    for job in jobs:
        expect = job_arrays(job, input_size)
        found = cache.read(job.key, expect)
        if found is None and rerender is not None:
            rerender([job])
            stats.rerendered += 1
            found = cache.read(job.key, expect)
        if found is None and job.key in cache.quarantined:
            raise FeatgenError(f"the cache's render of {job.label()} was bad ({cache.quarantined[job.key]}): "
                               "run `python -m featgen.site render` (or build) with this profile to render it again.")  # fmt: skip
        if found is None:
            raise FeatgenError(f"the cache has no render of {job.label()}: run `python -m featgen.site render` "
                               "(or build) with this profile first, or copy the cache that has it.")  # fmt: skip
        meta, arrays = found
        numerics = meta.get("numerics") if isinstance(meta, dict) else None
        label = numerics_label(numerics if isinstance(numerics, dict) else None)
        stats.numerics[label] = stats.numerics.get(label, 0) + 1
        parts.append(arrays)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


REPRODUCE_KEYS = ("backend", "precision", "method", "size", "steps", "seed", "lr", "param", "decorrelate", "transforms")


def _settings(lp: LayerPlan) -> dict[str, dict[str, Any]]:
    """Each view's settings (as the job keys them), for pages that show how to reproduce a render."""
    return {view: dict(jobs[0].key_settings(), units=list(lp.units)) for view, jobs in lp.jobs.items()}


def _reproducible(lp: LayerPlan) -> dict[str, Any]:
    """The regularized render's settings as ``featgen.visualize`` takes them: the model spec that loads
    it (a state dict's with its ``arch``) and the gallery's layer name (which the model resolves),
    every number stated."""
    job = lp.jobs["regularized"][0]
    return {"model": job.model, "layer": lp.layer, **{k: job.options[k] for k in REPRODUCE_KEYS if k in job.options}}


def write_layer(lp: LayerPlan, info: ModelInfo, cache: RenderCache, layer_dir: Path, photos: list[str],
                rerender: Callable | None = None, stats: PageStats | None = None,
                layer_names: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write one layer's unit pages from the cache; return the layer page's context (the page itself
    is written once the torch | TensorFlow pairs are known)."""
    from ...maps import kernel_tiles

    stats = stats or PageStats()
    views = {view: _view_arrays(jobs, cache, rerender, stats, info.input_size) for view, jobs in lp.jobs.items()}
    reg, naive, neg = views["regularized"], views.get("naive"), views.get("negative")
    div, ph = views.get("diversity"), views.get("photos")
    k = lp.gallery.diversity if div is not None else 0
    kernels = info.kernels if lp.native in info.stem else None
    g = lp.gallery
    units = list(lp.units)
    units_ctx = []
    for i, u in enumerate(units):
        udir = layer_dir / f"unit-{u}"
        save_image(reg["images"][i], udir / "regularized.png")
        stat: dict[str, Any] = {"start": float(reg["start"][i]), "final": float(reg["final"][i])}
        if naive is not None:
            save_image(naive["images"][i], udir / "naive.png")
            stat.update(naive_start=float(naive["start"][i]), naive_final=float(naive["final"][i]))
            if "valid_final" in naive:
                stat["naive_valid_final"] = float(naive["valid_final"][i])
        if neg is not None:  # its objective is minus the unit: the unit's activation is minus the objective
            save_image(neg["images"][i], udir / "negative.png")
            stat.update(negative_start=-float(neg["start"][i]), negative_final=-float(neg["final"][i]))
        if div is not None:
            for j in range(k):
                save_image(div["images"][i * k + j], udir / f"diversity-{j}.png")
            stat["diversity_final"] = [float(v) for v in div["final"][i * k : (i + 1) * k]]
        examples = _examples(ph, i, udir) if ph is not None and "files" in ph else None
        strip = ph is not None and "strip_jpeg" in ph
        if strip:
            _write_bytes(udir / "photos.jpg", jpeg_at(ph["strip_jpeg"], ph["strip_offsets"], i))
            stat["photo_peaks"] = [float(v) for v in ph["peaks"][i]]
        if kernels is not None:
            save_image(kernel_tiles(kernels[..., u : u + 1], scale=16), udir / "kernel.png")
        _loss_plot(reg["losses"][i], udir / "curve.png")
        ctx = {
            "model": lp.model, "backend": lp.backend, "layer": lp.layer, "unit": u, "shape": lp.info.shape,
            "start": stat["start"], "final": stat["final"], "naive_final": stat.get("naive_final"),
            **({"naive_valid_final": stat["naive_valid_final"]} if "naive_valid_final" in stat else {}),
            "naive": naive is not None, "negative": neg is not None, "diversity": k, "examples": examples,
            "kernel": kernels is not None, "photos": photos if strip else [],
            **unit_links(units, u),
            "steps": g.steps, "size": g.size, "naive_steps": g.naive_steps, "stats": stat,
        }  # fmt: skip
        if naive is not None:  # the verdict compares the render with naive ascent
            ctx.update(unit_extras(ctx, stat.get("negative_final"), lp.info.type))
        ctx["reproduce"] = reproduction(_reproducible(lp), u, out="regularized.png")
        write_page("unit.md.j2", udir / "index.md", **ctx, settings=_settings(lp))
        units_ctx.append(ctx)
    save_image(grid(reg["images"], margin=4), layer_dir / "grid.png")
    lctx = {"model": lp.model, "backend": lp.backend, "layer": lp.layer, "type": lp.info.type, "shape": lp.info.shape,
            "channels": lp.info.channels, "units": units_ctx, "native": lp.native, "settings": _settings(lp),
            **layer_nav(layer_names or [lp.layer], lp.layer),
            "reproduce": reproduction(_reproducible(lp), units, out="grid.png")}  # fmt: skip
    stats.layers += 1
    stats.units += len(units)
    return lctx


def write_compare_pages(root: Path, galleries: dict[str, list[dict[str, Any]]]) -> None:
    """One torch | TensorFlow page per layer rendered in both backends, with the correlation of each
    unit's two regularized images, read back from the pages' PNGs one layer at a time (so memory
    stays flat on the full plan); its layer contexts gain ``compare``, each backend ``compared``."""
    for name, backends in galleries.items():
        by_backend = {b["backend"]: [lay["layer"] for lay in b["layers"]] for b in backends}
        units_of = {(b["backend"], lay["layer"]): [u["unit"] for u in lay["units"]] for b in backends for lay in b["layers"]}
        compared = []
        for layer in shared_layers(by_backend):
            theirs = set(units_of[("tensorflow", layer)])
            units = [u for u in units_of[("torch", layer)] if u in theirs]
            a, b = (np.stack([load_image(root / slug(name) / slug(bk) / slug(layer) / f"unit-{u}" / "regularized.png")
                              for u in units]) for bk in ("torch", "tensorflow"))  # fmt: skip
            rows = compare_units(a, b, units)
            write_page("compare.md.j2", root / slug(name) / "compare" / slug(layer) / "index.md", model=name, layer=layer,
                       rows=rows, layers=shared_layers(by_backend))  # fmt: skip
            compared.append({"layer": layer, "median": float(np.nanmedian([r["correlation"] for r in rows]))})
            for bk in backends:
                for lay in bk["layers"]:
                    if lay["layer"] == layer:
                        lay["compare"] = True
        for bk in backends:
            bk["compared"] = compared


def write_index_pages(root: Path, galleries: dict[str, list[dict[str, Any]]], profile: Any) -> None:
    """The galleries index, one page per model (its backends) and per model and backend (its layers).

    ``galleries`` maps a model name to one entry per backend: ``backend``, ``source``, ``input_size``,
    ``layers`` (layer page contexts), ``table`` (``LayerInfo`` rows) and ``aliases`` (native -> alias).
    """
    for name, backends in galleries.items():
        for b in backends:
            others = [o["backend"] for o in backends if o is not b]
            write_page("backend.md.j2", root / slug(name) / slug(b["backend"]) / "index.md", model=name, **b, others=others)
        write_page("model.md.j2", root / slug(name) / "index.md", model=name, backends=backends)
    write_page("index.md.j2", root / "index.md", galleries=galleries, profile=profile)


MANIFEST = ".featgen-manifest.json"  # in DOCS/galleries: the files featgen wrote there
MANIFEST_KIND = "featgen-galleries-1"
MAX_MANIFEST_BYTES = 64 << 20  # the full profile's pages list in a few MB
FEATGEN_NAMES = (".featgen-build.lock", GALLERIES, "tutorials")  # what featgen itself puts in a docs folder


def check_docs(docs: str | os.PathLike, flag: str = "--docs") -> Path:
    """``docs`` if it can be a project's docs folder, creating nothing; else one line.

    The rule: not the filesystem root nor the home folder; and a new or empty folder, a folder
    that holds only what featgen writes there (``galleries/``, ``tutorials/``, its lock), or a mkdocs
    docs folder: one with an ``index.md``, or with a ``mkdocs.yml`` beside it. ``DOCS/galleries`` must
    be a plain folder, not a link out of it.
    """
    path = check_own_folder(docs, "project's docs folder", flag, "your mkdocs docs folder")
    if path.is_dir():
        names = [e.name for e in path.iterdir()]
        ours = all(n in FEATGEN_NAMES or n.startswith(f".{GALLERIES}.") for n in names)
        mkdocs = (path / "index.md").is_file() or any((path.parent / n).is_file() for n in ("mkdocs.yml", "mkdocs.yaml"))
        if not (ours or mkdocs):
            raise FeatgenError(f"{str(path)!r} is not a project's docs folder (no index.md in it, no mkdocs.yml beside it): "
                               f"pass {flag} with your mkdocs docs folder, or with a new or empty folder.")  # fmt: skip
    out = path / GALLERIES
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise FeatgenError(f"{str(out)!r} is a link or a file: featgen writes pages only into a folder there; move it away.")
    return path


def _relative(text: Any) -> str:
    """A manifest entry: a plain relative path inside the galleries folder, else ValueError."""
    p = PurePosixPath(text) if isinstance(text, str) else None
    if p is None or not text or p.is_absolute() or ".." in p.parts or str(p) != text or "\\" in text:
        raise ValueError(f"{text!r} is no path inside the folder")
    return text


def read_manifest(out: Path) -> list[str]:
    """The files the last build wrote into ``out`` (``DOCS/galleries``); [] if it has no manifest.
    A manifest that is not featgen's is one line: trusting it could delete a user's files."""
    path = out / MANIFEST
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return []
    try:
        if not stat.S_ISREG(mode):
            raise ValueError("it is not a regular file")
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_MANIFEST_BYTES:
                raise ValueError(f"it is over {MAX_MANIFEST_BYTES >> 20} MB")
            data = json.loads(f.read())
        if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND or not isinstance(data.get("files"), list):
            raise ValueError(f"not an object of kind {MANIFEST_KIND}")
        return [_relative(f) for f in data["files"]]
    except (OSError, ValueError) as exc:
        raise FeatgenError(f"{str(path)!r} is not featgen's list of its pages ({exc}): move it away; featgen then "
                           "replaces only the files it writes and deletes none.") from None  # fmt: skip


def _write_manifest(out: Path, files: list[str]) -> None:
    atomic_write(out / MANIFEST, json.dumps({"kind": MANIFEST_KIND, "files": sorted(files)}, indent=0).encode())


def _plain_parents(out: Path, rel: str) -> bool:
    """Whether every folder between ``out`` and ``out/rel`` is a plain folder or absent (no link):
    a write or a delete there stays inside ``out``. Raises one line for a file in the way."""
    folder = out
    for part in PurePosixPath(rel).parts[:-1]:
        folder = folder / part
        try:
            mode = folder.lstat().st_mode
        except FileNotFoundError:
            return True
        if stat.S_ISLNK(mode):
            return False
        if not stat.S_ISDIR(mode):
            raise FeatgenError(f"{str(folder)!r} is a file where featgen writes a folder of pages: move it away.")
    return True


def install(staging: Path, out: Path) -> None:
    """Move the pages in ``staging`` into ``out`` and delete the files of the last build (as its
    manifest lists them) that this one did not write. The manifest is written first with both
    lists, then with the new one: a build cut anywhere leaves no file of featgen's unlisted."""
    new = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    old = read_manifest(out) if out.is_dir() else []
    for rel in new:  # every target checked before anything moves
        if not _plain_parents(out, rel):
            raise FeatgenError(f"a folder on the way to {str(out / rel)!r} is a link: featgen writes pages only inside "
                               f"{str(out)!r}; replace the link by a folder.")  # fmt: skip
        if (out / rel).is_dir() and not (out / rel).is_symlink():
            raise FeatgenError(f"{str(out / rel)!r} is a folder where featgen writes a page: move it away.")
    out.mkdir(exist_ok=True)
    _write_manifest(out, sorted(set(old) | set(new)))
    for rel in new:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, out / rel)  # replaces a link itself, never what it points to
    for rel in sorted(set(old) - set(new)):
        target = out / rel
        if _plain_parents(out, rel) and (target.is_symlink() or target.is_file()):
            target.unlink()
            for folder in list(target.parents)[: len(PurePosixPath(rel).parts) - 1]:  # emptied folders, up to out
                try:
                    folder.rmdir()
                except OSError:
                    break
    _write_manifest(out, new)


def clean_staging(docs: Path) -> None:
    """Remove staging and old trees that an interrupted build left (call with the docs lock held)."""
    for old in list(docs.glob(f".{GALLERIES}.tmp*")) + list(docs.glob(f".{GALLERIES}.old*")):
        shutil.rmtree(old, ignore_errors=True)


def write_pages(plan: Plan, cache: RenderCache, docs: str | os.PathLike,
                rerender: Callable[[list[RenderJob]], Any] | None = None) -> PageStats:  # fmt: skip
    """Write every page of ``plan`` under ``docs/galleries`` from ``cache`` alone.

    ``rerender(jobs)`` is called for an entry found corrupt while reading (it should render it into
    the cache); without it, a missing entry is a one-line error naming the job.
    """
    docs = Path(docs)
    stats = PageStats()
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{GALLERIES}.tmp-", dir=docs))
    except OSError as exc:
        raise write_error(exc, f"the docs folder {str(docs)!r}", "--docs") from None
    try:
        galleries: dict[str, list[dict[str, Any]]] = {}
        layer_dirs: list[tuple[Path, dict[str, Any]]] = []
        photos = list(plan.profile.photos)
        for key, info in plan.models.items():
            model, backend = key
            layers = [lp for lp in plan.layers if (lp.model, lp.backend) == key]
            names = [lp.layer for lp in layers]
            layers_ctx = []
            for lp in layers:
                layer_dir = staging / slug(model) / slug(backend) / slug(lp.layer)
                lctx = write_layer(lp, info, cache, layer_dir, photos, rerender, stats, names)
                layers_ctx.append(lctx)
                layer_dirs.append((layer_dir, lctx))
            inverse = {native: alias for alias, native in info.aliases.items()}
            galleries.setdefault(model, []).append({
                "backend": backend, "source": info.source, "input_size": info.input_size, "layers": layers_ctx,
                "table": list(info.table), "aliases": inverse,
            })  # fmt: skip
        write_compare_pages(staging, galleries)
        for layer_dir, lctx in layer_dirs:  # now that each knows whether it has a torch | TensorFlow page
            write_page("layer.md.j2", layer_dir / "index.md", **lctx)
        write_index_pages(staging, galleries, plan.profile)
        install(staging, docs / GALLERIES)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise write_error(exc, f"the docs folder {str(docs)!r}", "--docs") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return stats


__all__ = ["write_pages", "write_layer", "write_index_pages", "write_compare_pages", "PageStats", "clean_staging",
           "check_docs", "install", "read_manifest"]
