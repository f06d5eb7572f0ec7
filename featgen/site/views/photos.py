"""The photos view (forward only): where each unit fires on the profile's sample photos (one
activation strip a unit), and which photos of the example scan it fires on most and least, with a
crop around its peak (:mod:`featgen.site.render.examples`)."""

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

VERSION = "photos-2"
MARGIN = 4  # px between two photos of a strip


class Photos(View):
    name = "photos"
    order = 50
    optimizes = False

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any]:
        from ..render.plan import examples_settings

        p = ctx.profile
        if "examples" not in ctx.shared:  # the scan's digest walks its folder: once per plan
            ctx.shared["examples"] = examples_settings(p)
        examples = ctx.shared["examples"]
        return {**base_settings(ctx), "kind": VERSION, "photos": list(p.photos), "crop": p.crop, "top": p.top, **examples}

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        return [units]  # a forward scan costs per photo, not per unit: one job reads the photos once per layer

    def unit_steps(self, job: RenderJob) -> int:
        return len(job.units)

    def render(self, renderer: Renderer, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        return renderer.photos(model, job)

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        from ..render.entries import JPEG_SLACK, MAX_NAMES_BYTES, Array, Expected, blob

        o = job.options
        n, photos, top = len(job.units), len(o.get("photos") or ()), int(o.get("top", 1))
        crop = min(int(o.get("crop", input_size)), input_size)
        out: dict[str, Array] = {}
        if photos:  # one strip a unit: the photos side by side, MARGIN px apart
            strip = photos * (input_size + MARGIN) ** 2 * 3 + JPEG_SLACK
            out.update(strip_jpeg=Array("u1", (None,), most=n * strip), strip_offsets=Array("i8", (n + 1,)),
                       peaks=Array("f4", (n, photos)))  # fmt: skip
        if o.get("examples"):
            out["files"] = Array("U", (None,), most=MAX_NAMES_BYTES)
            for kind in ("top", "bottom"):
                out.update({f"{kind}_jpeg": Array("u1", (None,), most=n * top * (crop * crop * 3 + JPEG_SLACK)),
                            f"{kind}_offsets": Array("i8", (None,), most=(n * top + 1) * 8),
                            f"{kind}_file": Array("i4", (n, None), most=n * top * 4),
                            f"{kind}_value": Array("f4", (n, None), most=n * top * 4)})  # fmt: skip

        def values(arrays: dict[str, np.ndarray]) -> None:
            if "strip_jpeg" in arrays:
                blob(arrays, "strip", n)
            if "files" in arrays:
                k = min(top, len(arrays["files"]))
                for kind in ("top", "bottom"):
                    index = arrays[f"{kind}_file"]
                    if index.shape != (n, k) or arrays[f"{kind}_value"].shape != (n, k):
                        raise ValueError(f"{kind}_file has shape {index.shape}, expected ({n}, {k})")
                    if index.size and (index.min() < 0 or index.max() >= len(arrays["files"])):
                        raise ValueError(f"{kind}_file points past the {len(arrays['files'])} scanned files")
                    blob(arrays, kind, n * k)

        return Expected(out, values)

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from ..render.examples import OFFLINE_PHOTOS
        from .synthetic import jpeg_blob

        o = job.options
        n, photos = len(job.units), len(o.get("photos") or ())
        out: dict[str, np.ndarray] = {}
        if photos:
            side = input_size + MARGIN
            out["strip_jpeg"], out["strip_offsets"] = jpeg_blob(rng, photos * side - MARGIN, input_size, n)
            out["peaks"] = rng.gamma(2.0, 2.0, (n, photos)).astype(np.float32)
        if o.get("examples"):
            files = np.asarray(OFFLINE_PHOTOS)
            k, crop = min(int(o["top"]), len(files)), min(int(o["crop"]), input_size)
            out["files"] = files
            for kind in ("top", "bottom"):
                out[f"{kind}_jpeg"], out[f"{kind}_offsets"] = jpeg_blob(rng, crop, crop, n * k)
                out[f"{kind}_file"] = np.stack([rng.permutation(len(files))[:k] for _ in range(n)]).astype(np.int32)
                value = np.sort(rng.gamma(2.0, 2.0, (n, k)), axis=1)
                out[f"{kind}_value"] = (value[:, ::-1] if kind == "top" else value).astype(np.float32)
        return out

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        from ..render.examples import jpeg_at

        out: dict[str, Any] = {}
        if "strip_jpeg" in arrays:
            out["strip"] = files.jpeg_as_image("photos", jpeg_at(arrays["strip_jpeg"], arrays["strip_offsets"], i))
            out["photos"] = list(settings.get("photos") or ())
            out["peaks"] = [float(v) for v in arrays["peaks"][i]]
        if "files" in arrays:  # top and bottom crops in one file: a row each
            k = arrays["top_file"].shape[1]
            rows = [[jpeg_at(arrays[f"{kind}_jpeg"], arrays[f"{kind}_offsets"], i * k + j) for j in range(k)] for kind in ("top", "bottom")]
            out["examples"] = {"image": files.jpeg_rows("examples", rows), "count": k, "scanned": len(arrays["files"]),
                               **{kind: [{"file": str(arrays["files"][int(arrays[f"{kind}_file"][i, j])]),
                                          "activation": float(arrays[f"{kind}_value"][i, j])} for j in range(k)]
                                  for kind in ("top", "bottom")}}  # fmt: skip
        return out


VIEW = Photos()
