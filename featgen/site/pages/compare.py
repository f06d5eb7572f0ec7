"""The torch | TensorFlow pages: one per layer rendered in both backends of a model, each unit's two
primary images side by side and labelled, with the Pearson correlation of their pixels (computed on
the cache's images, not on the pages' encoded copies)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import views
from ..render.cache import RenderCache
from ..render.jobs import RenderJob
from ..render.plan import LayerPlan
from .layer import Site, primary_images, read_view
from .navigation import compare_units, neighbours
from .templating import slug


def compare_digest_jobs(left: LayerPlan, right: LayerPlan, cache: RenderCache) -> list[tuple[str, str | None]]:
    """The entries a compare page is made from, each by its key and stamp (its digest includes them)."""
    name = views.primary().name
    return [(j.key, cache.stamp(j.key)) for lp in (left, right) for j in lp.jobs[name]]


def write_compare(left: LayerPlan, right: LayerPlan, input_sizes: tuple[int, int], cache: RenderCache, folder: Path,
                  site: Site, rerender: Callable[[list[RenderJob]], Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write the compare page of one layer into ``folder``; return its summary (``median`` r)."""
    name = views.primary().name
    a, b = (primary_images(read_view(lp.jobs[name], cache, size, rerender)) for lp, size in zip((left, right), input_sizes))
    theirs = {u: i for i, u in enumerate(right.units)}
    mine = [(i, u) for i, u in enumerate(left.units) if u in theirs]
    units = [u for _, u in mine]
    rows = compare_units(np.stack([a[i] for i, _ in mine]), np.stack([b[theirs[u]] for u in units]), units)
    for r in rows:
        r["image"] = f"{name}.webp"
    shared = [x for x in site.layers[(left.model, left.backend)] if site.compared(left.model, x)]
    prev, nxt = neighbours(shared, left.layer)
    related = [{"label": f"{left.layer} in {left.backend}", "href": f"../../{slug(left.backend)}/{slug(left.layer)}/"},
               {"label": f"{left.layer} in {right.backend}", "href": f"../../{slug(right.backend)}/{slug(left.layer)}/"}]  # fmt: skip
    if prev is not None:
        related.insert(0, {"label": f"← {prev}", "href": f"../{slug(prev)}/", "rel": "prev"})
    if nxt is not None:
        related.append({"label": f"{nxt} →", "href": f"../{slug(nxt)}/", "rel": "next"})
    correlations = [r["correlation"] for r in rows if np.isfinite(r["correlation"])]
    median = float(np.median(correlations)) if correlations else float("nan")
    html = site.page("compare.html.j2", "../../../..", f"{left.layer} · {left.backend} | {right.backend} · {left.model}",
                     (left.model, None, None), model=left.model, layer=left.layer, layer_slug=slug(left.layer),
                     left=left.backend, right=right.backend, left_slug=slug(left.backend), right_slug=slug(right.backend),
                     rows=rows, median=median, related=related)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(html)
    return {"model": left.model, "layer": left.layer, "slug": slug(left.layer), "median": median,
            "title": f"{left.backend} | {right.backend}"}  # fmt: skip
