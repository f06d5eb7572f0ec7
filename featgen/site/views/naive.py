"""The naive view: plain gradient ascent on unclipped pixels from a noisy grey start. It shows how
far the unit can be driven, and is the reference of the regularized view's verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Option
from .optimized import OptimizedView, base_settings

if TYPE_CHECKING:
    from ..pages.files import UnitFiles
    from ..render.config import Gallery
    from ..render.jobs import RenderJob
    from .base import PlanContext


class Naive(OptimizedView):
    name = "naive"
    order = 20
    options = (Option("naive_steps", 30, limit="naive_steps", per_layer=True), Option("naive_lr", 10.0, per_layer=True))

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any]:
        from ...vis import algorithm_version

        return {**base_settings(ctx), "algorithm": algorithm_version(ctx.info.backend), "method": "naive",
                "size": g.size, "steps": g.naive_steps, "seed": g.seed, "lr": float(g.naive_lr), "param": None,
                "decorrelate": None, "transforms": None, "objective": "channel", "start": "noise"}  # fmt: skip

    def side(self, job: RenderJob) -> int:
        from ...vis.render import deprocessed_side

        return deprocessed_side(int(job.options["size"]))  # naive renders lose a border to the Keras tutorial's crop

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        out = {"image": files.image("naive", arrays["images"][i]), "side": int(arrays["images"].shape[1]),
               "start": float(arrays["start"][i]), "final": float(arrays["final"][i]), "steps": int(settings["steps"])}  # fmt: skip
        if "valid_final" in arrays:  # measured on the image clipped to [0, 1]: what a real image can reach
            out["valid_final"] = float(arrays["valid_final"][i])
        # the reference of the regularized verdict: ascent leaves [0, 1], so its own final is out of
        # reach of any image the regularized render can make (5x on conv_stem)
        out["reference"] = out.get("valid_final", out["final"])
        return out

    def stats(self, fields: dict[str, Any]) -> list[tuple[str, float]]:
        rows = [("naive, final", fields["final"])]
        if "valid_final" in fields:
            rows.append(("naive, final on its image clipped to [0, 1]", fields["valid_final"]))
        return rows


VIEW = Naive()
