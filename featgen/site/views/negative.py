"""The negative view: the image that most decreases the unit (the regularized recipe, minimizing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .optimized import OptimizedView, recipe

if TYPE_CHECKING:
    from ..pages.files import UnitFiles
    from ..pages.verdict import Verdict
    from ..render.config import Gallery
    from ..render.jobs import RenderJob
    from .base import PlanContext


class Negative(OptimizedView):
    name = "negative"
    order = 30

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any]:
        return recipe(g, ctx, "custom")

    def objective(self, job: RenderJob) -> tuple[list[int], Any]:
        from ...vis import objectives

        return list(job.units), -objectives.channel(job.options["layer"], list(job.units))

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        # the objective is minus the unit: the unit's activation is minus the objective
        return {"image": files.image("negative", arrays["images"][i]), "start": -float(arrays["start"][i]),
                "final": -float(arrays["final"][i])}  # fmt: skip

    def verdict(self, fields: dict[str, dict[str, Any]], layer_type: str | None) -> Verdict | None:
        from ..pages.verdict import floor_of, negative_verdict

        mine = fields[self.name]
        return negative_verdict(mine["start"], mine["final"], floor_of(layer_type))

    def stats(self, fields: dict[str, Any]) -> list[tuple[str, float]]:
        return [("negative, final", fields["final"])]


VIEW = Negative()
