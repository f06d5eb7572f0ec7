"""The regularized view: the image that maximizes the unit under the gallery's recipe (Fourier or
pixel parameterization, colour decorrelation, random transforms). Every gallery renders it: its
image is the unit's tile, and its verdict compares it with naive ascent where that was rendered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .optimized import OptimizedView, recipe

if TYPE_CHECKING:
    from ..pages.files import UnitFiles
    from ..pages.verdict import Verdict
    from ..render.config import Gallery
    from .base import PlanContext


class Regularized(OptimizedView):
    name = "regularized"
    order = 10
    primary = True

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any]:
        return recipe(g, ctx, "channel")

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        image = arrays["images"][i]
        return {"image": files.image("regularized", image, hero=True), "side": int(image.shape[0]),
                "start": float(arrays["start"][i]), "final": float(arrays["final"][i]),
                "curve": [float(v) for v in arrays["losses"][i]],
                "transforms": settings.get("transforms") not in (None, "none")}  # fmt: skip

    def verdict(self, fields: dict[str, dict[str, Any]], layer_type: str | None) -> Verdict | None:
        from ..pages.verdict import floor_of, unit_verdict

        mine, naive = fields[self.name], fields.get("naive")
        if naive is None:  # the reference is naive ascent: without it there is nothing to judge against
            return None
        return unit_verdict(mine["start"], mine["final"], naive["reference"], floor_of(layer_type))

    def stats(self, fields: dict[str, Any]) -> list[tuple[str, float]]:
        return [("start image", fields["start"]), ("regularized, final", fields["final"])]


VIEW = Regularized()
