"""The photos view (forward only): where each unit fires on the profile's sample photos (one
activation strip a unit), with the receptive field of each photo's peak outlined. The dataset
examples are their own view (:mod:`.examples`)."""

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

VERSION = "photos-3"  # 3: the dataset examples moved to their own view; each peak's field outlined
MARGIN = 4  # px between two photos of a strip


class Photos(View):
    name = "photos"
    order = 50
    optimizes = False

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any]:
        p = ctx.profile
        return {**base_settings(ctx), "kind": VERSION, "photos": list(p.photos)}

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        return [units]  # a forward pass costs per photo, not per unit: one job reads the photos once per layer

    def unit_steps(self, job: RenderJob) -> int:
        return len(job.units)

    def render(self, renderer: Renderer, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        return renderer.photos(model, job)

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        from ..render.entries import JPEG_SLACK, Array, Expected, blob

        o = job.options
        n, photos = len(job.units), len(o.get("photos") or ())
        out: dict[str, Array] = {}
        if photos:  # one strip a unit: the photos side by side, MARGIN px apart
            strip = photos * (input_size + MARGIN) ** 2 * 3 + JPEG_SLACK
            out.update(strip_jpeg=Array("u1", (None,), most=n * strip), strip_offsets=Array("i8", (n + 1,)),
                       peaks=Array("f4", (n, photos)))  # fmt: skip

        def values(arrays: dict[str, np.ndarray]) -> None:
            if "strip_jpeg" in arrays:
                blob(arrays, "strip", n)

        return Expected(out, values)

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from .synthetic import jpeg_blob

        o = job.options
        n, photos = len(job.units), len(o.get("photos") or ())
        out: dict[str, np.ndarray] = {}
        if photos:
            side = input_size + MARGIN
            out["strip_jpeg"], out["strip_offsets"] = jpeg_blob(rng, photos * side - MARGIN, input_size, n)
            out["peaks"] = rng.gamma(2.0, 2.0, (n, photos)).astype(np.float32)
        return out

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        from ..render.examples import jpeg_at

        out: dict[str, Any] = {}
        if "strip_jpeg" in arrays:
            out["strip"] = files.jpeg_as_image("photos", jpeg_at(arrays["strip_jpeg"], arrays["strip_offsets"], i))
            out["photos"] = list(settings.get("photos") or ())
            out["peaks"] = [float(v) for v in arrays["peaks"][i]]
        return out


VIEW = Photos()
