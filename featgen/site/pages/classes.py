"""The class pages of a classifier's gallery: one per class that the collection's images are predicted
as, listing the units of the gallery's last layer that push the network towards it and away from it,
and an index of those classes (``galleries/<model>/<backend>/classes/``).

A unit's contribution to class ``c`` is its weight to the logit (the classes view's entry) times its
mean activation over the collection (the examples view's entry, or the offline photos where the
gallery scans no collection): :mod:`featgen.site.views.classes`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..render.cache import RenderCache
from ..render.jobs import RenderJob
from ..render.plan import LayerPlan, ModelInfo
from .layer import Site, read_view
from .templating import slug

CLASSES = "classes"  # the folder of a backend's class pages
VIEW = "classes"  # the view whose entry holds the weights
TOP_UNITS = 12  # units a class page shows each way
INDEX_UNITS = 3  # units the index names per class


def class_layer(layers: list[LayerPlan]) -> LayerPlan | None:
    """The layer of ``layers`` (one model and backend) whose units link to classes, if any."""
    return next((lp for lp in layers if VIEW in lp.jobs), None)


def digest_jobs(lp: LayerPlan, cache: RenderCache) -> list[tuple[str, str | None]]:
    """The entries the class pages are made from, each by its key and stamp."""
    return [(j.key, cache.stamp(j.key)) for name in (VIEW, "examples") for j in lp.jobs.get(name, ())]


def read_classes(lp: LayerPlan, info: ModelInfo, cache: RenderCache,
                 rerender: Callable[[list[RenderJob]], Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The layer's ``weights`` (classes × units), ``mean`` activations, ``predicted`` counts, the
    ``images`` they were measured on and their ``source``."""
    own = read_view(lp.jobs[VIEW], cache, info.input_size, rerender)
    if lp.jobs[VIEW][0].options["means"] == "scan" and "examples" in lp.jobs:
        ex = read_view(lp.jobs["examples"], cache, info.input_size, rerender)
        return {"weights": own["weights"], "mean": ex["mean"], "predicted": ex["predicted"][: len(info.labels)],
                "images": int(ex["counts"][0]), "source": "collection"}  # fmt: skip
    return {"weights": own["weights"], "mean": own["mean"], "predicted": own["predicted"],
            "images": int(own["predicted"].sum()), "source": "offline photos"}  # fmt: skip


def predicted(data: dict[str, Any]) -> dict[int, int]:
    """Class index -> how many images are predicted as it (only classes with some)."""
    return {int(c): int(data["predicted"][c]) for c in np.flatnonzero(data["predicted"])}


def write_classes(lp: LayerPlan, info: ModelInfo, data: dict[str, Any], folder: Path, site: Site) -> list[str]:
    """Write the class pages of ``lp``'s model and backend into ``folder`` (its ``classes`` folder);
    return the files written, relative to ``folder``."""
    units = np.asarray(lp.units)
    counts = predicted(data)
    rows = []
    files = []
    for c, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        contribution = data["weights"][c].astype(np.float64) * data["mean"].astype(np.float64)
        order = np.argsort(-contribution, kind="stable")
        push = [i for i in order[:TOP_UNITS] if contribution[i] > 0]
        pull = [i for i in order[::-1][:TOP_UNITS] if contribution[i] < 0]
        label = info.labels[c]
        picked = {kind: [{"unit": int(units[i]), "contribution": float(contribution[i]),
                          "at": site.locate(lp.model, lp.backend, lp.layer, int(units[i]))} for i in idx]
                  for kind, idx in (("push", push), ("pull", pull))}  # fmt: skip
        related = [{"label": "all classes", "href": "../"}, {"label": f"layer {lp.layer}", "href": f"../../{slug(lp.layer)}/"}]
        html = site.page("class.html.j2", "../../../../..", f"{label} · class {c} · {lp.model} ({lp.backend})",
                         (lp.model, lp.backend, None), model=lp.model, backend=lp.backend, layer=lp.layer, label=label,
                         index=c, count=count, images=data["images"], source=data["source"], rows=picked, related=related,
                         partial=len(units) < (lp.info.channels or 0), rendered=len(units))  # fmt: skip
        (folder / str(c)).mkdir(parents=True, exist_ok=True)
        (folder / str(c) / "index.html").write_text(html)
        files.append(f"{c}/index.html")
        rows.append({"label": label, "href": f"{c}/", "count": count, "top": [r["unit"] for r in picked["push"][:INDEX_UNITS]]})
    html = site.page("classes.html.j2", "../../../..", f"classes · {lp.model} ({lp.backend})", (lp.model, lp.backend, None),
                     model=lp.model, backend=lp.backend, layer=lp.layer, layer_slug=slug(lp.layer), classes=rows,
                     images=data["images"], source=data["source"])  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(html)
    return files + ["index.html"]
