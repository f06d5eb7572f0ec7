"""The classes view, for a classifier's last gallery layer: which classes each unit pushes the network
towards, and (on the class pages of :mod:`featgen.site.pages.classes`) which units push it towards each
class the collection's images are predicted as.

The logits are a linear map of the pooled last feature map, so with the network after the layer
linearized (:func:`featgen.analysis.class_weights`), unit ``u``'s contribution to class ``c`` is
``W[c, u] × mean activation of u``. The mean activation comes from the dataset-example scan of the
collection (the examples view's fields) where the gallery has one, else from the offline photos,
which this view's job then reads itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import View
from .optimized import base_settings

if TYPE_CHECKING:
    from ..pages.files import UnitFiles
    from ..render.config import Gallery
    from ..render.entries import Expected
    from ..render.jobs import RenderJob
    from ..render.renderer import Renderer
    from .base import PlanContext

VERSION = "classes-1"
TOP = 5  # classes on a unit page


class Classes(View):
    name = "classes"
    order = 65
    optimizes = False
    precision = "float32"
    reads = ("examples",)

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any] | None:
        if not ctx.info.labels or ctx.neighbours()[1] is not None:
            return None  # not a classifier, or not its last gallery layer
        scanned = bool(ctx.profile.examples) and "examples" in g.views
        return {**base_settings(ctx), "kind": VERSION, "classes": len(ctx.info.labels), "input_size": ctx.info.input_size,
                "means": "scan" if scanned else "offline"}  # fmt: skip

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        return [units]  # the class pages read every unit's weights at once

    def unit_steps(self, job: RenderJob) -> int:
        return 0

    def render(self, renderer: Renderer, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        from ...analysis import class_weights

        o = job.options
        units = list(job.units)
        out = {"weights": class_weights(model, o["layer"])[:, units]}
        if o["means"] == "offline":  # no scan to take the mean activations and predictions from
            out.update(renderer.offline_means(model, o["layer"], units))
        return out

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        from ..render.entries import Array, Expected

        o = job.options
        n, classes = len(job.units), int(o["classes"])
        out = {"weights": Array("f4", (classes, n))}
        if o["means"] == "offline":
            out.update(mean=Array("f4", (n,)), predicted=Array("i8", (classes,)))
        return Expected(out)

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        o = job.options
        n, classes = len(job.units), int(o["classes"])
        out = {"weights": rng.normal(0, 0.05, (classes, n)).astype(np.float32)}
        if o["means"] == "offline":
            out.update(mean=rng.gamma(2.0, 1.0, n).astype(np.float32), predicted=rng.multinomial(8, np.full(classes, 1 / classes)))
        return out

    def page_inputs(self, site: Any, lp: Any) -> Any:
        return site.class_pages.get((lp.model, lp.backend))  # which classes have a page to link to

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any],
                    before: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        examples = (before or {}).get("examples") or {}
        if "mean" in examples:
            mean, source = float(examples["mean"]), "collection"
        else:
            mean, source = float(arrays["mean"][i]), "offline photos"
        weights = arrays["weights"][:, i].astype(np.float64)
        contribution = weights * mean
        order = [int(c) for c in np.argsort(-contribution, kind="stable")[:TOP] if contribution[c] > 0]
        return {"mean": mean, "source": source, "classes": [{"index": c, "weight": float(weights[c]),
                                                             "contribution": float(contribution[c])} for c in order]}  # fmt: skip


VIEW = Classes()
