"""The pages stage: cache → markdown pages and their images. It runs no model and imports no framework.

Everything a page shows comes out of the render stage's cache entries (images, statistics, photo
crops and activation strips) and the plan's model info (layer table, first-conv kernels). Pages are
written into a unique staging folder and swapped in at once, so readers never see half a gallery.

URLs: ``galleries/index.md``, ``<model>/index.md``, ``<model>/<backend>/index.md``,
``<model>/<backend>/<layer>/index.md`` and ``.../<layer>/unit-<n>/index.md``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FeatgenError
from ..images import grid, save_image
from .cache import RenderCache
from .jobs import RenderJob
from .plan import LayerPlan, ModelInfo, Plan
from .templating import slug, write_page

GALLERIES = "galleries"


@dataclass
class PageStats:
    layers: int = 0
    units: int = 0
    rerendered: int = 0  # entries found corrupt while writing, rendered again through ``rerender``


def _loss_plot(curves: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.4))
    ax.plot(np.nan_to_num(curves), color="#3f51b5")
    ax.set_xlabel("step")
    ax.set_ylabel("objective (mean activation)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _view_arrays(jobs: tuple[RenderJob, ...], cache: RenderCache, rerender: Callable | None,
                 stats: PageStats) -> dict[str, np.ndarray]:  # fmt: skip
    """The view's arrays over all its chunks, concatenated in unit order."""
    parts = []
    for job in jobs:
        arrays = cache.get(job.key)
        if arrays is None and rerender is not None:
            rerender([job])
            stats.rerendered += 1
            arrays = cache.get(job.key)
        if arrays is None:
            raise FeatgenError(f"the cache has no render of {job.label()}: run `python -m featgen.site render` "
                               "(or build) with this profile first, or copy the cache that has it.")  # fmt: skip
        parts.append(arrays)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _settings(lp: LayerPlan) -> dict[str, dict[str, Any]]:
    """Each view's settings (as the job keys them), for pages that show how to reproduce a render."""
    return {view: dict(jobs[0].key_settings(), units=list(lp.units)) for view, jobs in lp.jobs.items()}


def write_layer(lp: LayerPlan, info: ModelInfo, cache: RenderCache, layer_dir: Path, photos: list[str],
                rerender: Callable | None = None, stats: PageStats | None = None) -> dict[str, Any]:  # fmt: skip
    """Write one layer's page and its unit pages from the cache; return the layer page's context."""
    from ..maps import kernel_tiles

    stats = stats or PageStats()
    views = {view: _view_arrays(jobs, cache, rerender, stats) for view, jobs in lp.jobs.items()}
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
        if neg is not None:
            save_image(neg["images"][i], udir / "negative.png")
            stat.update(negative_start=float(neg["start"][i]), negative_final=float(neg["final"][i]))
        if div is not None:
            for j in range(k):
                save_image(div["images"][i * k + j], udir / f"diversity-{j}.png")
            stat["diversity_final"] = [float(v) for v in div["final"][i * k : (i + 1) * k]]
        crops = 0
        if ph is not None:
            crops = ph["crops"].shape[1]
            for j in range(crops):
                save_image(ph["crops"][i, j], udir / f"crop-{j}.png")
            save_image(ph["strips"][i], udir / "photos.png")
            stat["photo_peaks"] = [float(v) for v in ph["peaks"][i]]
            stat["crop_photos"] = [photos[int(p)] for p in ph["crop_photo"][i]]
        if kernels is not None:
            save_image(kernel_tiles(kernels[..., u : u + 1], scale=16), udir / "kernel.png")
        _loss_plot(reg["losses"][i], udir / "curve.png")
        ctx = {
            "model": lp.model, "backend": lp.backend, "layer": lp.layer, "unit": u, "shape": lp.info.shape,
            "start": stat["start"], "final": stat["final"], "naive_final": stat.get("naive_final"),
            "naive": naive is not None, "negative": neg is not None, "diversity": k, "crops": crops,
            "kernel": kernels is not None, "photos": photos if ph is not None else [],
            "prev": units[i - 1] if i else None, "next": units[i + 1] if i + 1 < len(units) else None,
            "steps": g.steps, "size": g.size, "naive_steps": g.naive_steps, "stats": stat,
        }  # fmt: skip
        write_page("unit.md.j2", udir / "index.md", **ctx, settings=_settings(lp))
        units_ctx.append(ctx)
    save_image(grid(reg["images"], margin=4), layer_dir / "grid.png")
    lctx = {"model": lp.model, "backend": lp.backend, "layer": lp.layer, "type": lp.info.type, "shape": lp.info.shape,
            "channels": lp.info.channels, "units": units_ctx, "native": lp.native}  # fmt: skip
    write_page("layer.md.j2", layer_dir / "index.md", **lctx, settings=_settings(lp))
    stats.layers += 1
    stats.units += len(units)
    return lctx


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


def _swap_in(staging: Path, out_root: Path) -> None:
    """Replace ``out_root`` by ``staging`` with two renames; the old tree is removed after."""
    old = None
    if out_root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{GALLERIES}.old-", dir=out_root.parent))
        os.replace(out_root, old / GALLERIES)
    os.replace(staging, out_root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    staging = Path(tempfile.mkdtemp(prefix=f".{GALLERIES}.tmp-", dir=docs))
    try:
        galleries: dict[str, list[dict[str, Any]]] = {}
        photos = list(plan.profile.photos)
        for key, info in plan.models.items():
            model, backend = key
            layers_ctx = []
            for lp in (lp for lp in plan.layers if (lp.model, lp.backend) == key):
                layer_dir = staging / slug(model) / slug(backend) / slug(lp.layer)
                layers_ctx.append(write_layer(lp, info, cache, layer_dir, photos, rerender, stats))
            inverse = {native: alias for alias, native in info.aliases.items()}
            galleries.setdefault(model, []).append({
                "backend": backend, "source": info.source, "input_size": info.input_size, "layers": layers_ctx,
                "table": list(info.table), "aliases": inverse,
            })  # fmt: skip
        write_index_pages(staging, galleries, plan.profile)
        _swap_in(staging, docs / GALLERIES)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return stats


__all__ = ["write_pages", "write_layer", "write_index_pages", "PageStats", "clean_staging"]
