"""The diversity view: ``k`` images per unit optimized together, each for the unit, with a term that
pushes them apart. Whether they did is measured: the mean pairwise correlation of their pixels."""

from __future__ import annotations

import functools
import inspect
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from ..pages.files import GAP
from .base import Option
from .optimized import OptimizedView, recipe

if TYPE_CHECKING:
    from ..pages.files import UnitFiles
    from ..pages.verdict import Verdict
    from ..render.config import Gallery
    from ..render.jobs import RenderJob
    from .base import PlanContext

WEIGHT = 0.5  # the diversity term's weight against the channel objective
COLLAPSED = 0.9  # mean pairwise correlation at or above which the images count as one picture
SHOWN = 144  # px: the height a page shows the images at


def similarity(images: np.ndarray) -> float:
    """The mean pairwise Pearson correlation of uint8 ``images``' pixels (all channels). Two flat
    images count as 1 if their pixels agree within 2 levels (their correlation is undefined, and
    they are one picture), else 0."""
    from ..pages.navigation import image_correlation

    pairs = []
    for a, b in combinations(np.asarray(images, np.float64), 2):
        r = image_correlation(a, b)
        if np.isnan(r):  # a flat image: the same picture if the pixels agree
            r = 1.0 if np.abs(a - b).mean() <= 2.0 else 0.0
        pairs.append(r)
    return float(np.mean(pairs)) if pairs else float("nan")


@functools.cache
def diversity_batches() -> bool:
    """Whether the engine's diversity term takes ``groups`` (so diversity images of many units batch)."""
    from ...vis import objectives

    return "groups" in inspect.signature(objectives.diversity).parameters


class Diversity(OptimizedView):
    name = "diversity"
    order = 40
    options = (Option("diversity", 4, limit="diversity"),)

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any]:
        return {**recipe(g, ctx, "custom"), "diversity": g.diversity, "diversity_weight": WEIGHT}

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        from ..render.jobs import chunks

        # an engine whose diversity term cannot tell units apart renders one unit per job
        return chunks(units, size if diversity_batches() else 1)

    def per_unit(self, job: RenderJob) -> int:
        return int(job.options["diversity"])

    def objective(self, job: RenderJob) -> tuple[list[int], Any]:
        from ...vis import objectives

        layer, k = job.options["layer"], self.per_unit(job)
        units = [u for u in job.units for _ in range(k)]  # unit-major: k images of each unit
        return units, objectives.channel(layer, units) + WEIGHT * objectives.diversity(layer, groups=units)

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        k = int(settings["diversity"])
        images = arrays["images"][i * k : (i + 1) * k]
        side = int(images.shape[1])
        width = round((k * side + (k - 1) * GAP) * SHOWN / side)  # shown SHOWN px tall, with square pixels
        return {"image": files.strip("diversity", images), "count": k, "side": side, "width": width, "height": SHOWN, "gap": GAP,
                "finals": [float(v) for v in arrays["final"][i * k : (i + 1) * k]], "similarity": similarity(images)}  # fmt: skip

    def verdict(self, fields: dict[str, dict[str, Any]], layer_type: str | None) -> Verdict | None:
        from ..pages.verdict import diversity_verdict

        mine = fields[self.name]
        return diversity_verdict(mine["similarity"], mine["count"], COLLAPSED)

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = super().synthetic(job, input_size, rng)
        k = self.per_unit(job)
        for i, u in enumerate(job.units):
            if u % 50 == 1:  # now and then a collapsed unit: its k images one picture
                out["images"][i * k : (i + 1) * k] = out["images"][i * k]
        return out


VIEW = Diversity()
