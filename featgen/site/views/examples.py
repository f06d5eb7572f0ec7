"""The dataset examples view: per unit, the images of a collection it fires on most (highest spatial
maximum) and least (lowest spatial mean), each cropped to the unit's receptive field around the
position of its maximum in that image. A layer that ends in an activation (a ReLU) is read before it,
so that images that leave the unit at 0 keep an order.

Its entries are not rendered job by job: one forward pass of the collection per model, in shards
(:mod:`featgen.site.render.scan`), and a merge that cuts the crops (:mod:`featgen.site.render.merge`)
make them. ``scanned = True`` tells the plan and the render stage so.
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
    from .base import PlanContext

MAX_CLASSES = 100_000  # logits of a classifier
VERSION = "examples-2"  # 2: the classes the collection is predicted as


class Examples(View):
    name = "examples"
    order = 55
    optimizes = False
    scanned = True

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any] | None:
        from ..render.plan import examples_settings

        p = ctx.profile
        if "examples" not in ctx.shared:  # the collection's digest reads every file's size: once per plan
            ctx.shared["examples"] = examples_settings(p)
        examples = ctx.shared["examples"]
        if not examples.get("examples"):
            return None  # the profile scans no collection
        from ..render.scan import SCAN_VERSION

        return {**base_settings(ctx), "precision": "float32", "kind": VERSION, "scan": SCAN_VERSION,
                "input_size": ctx.info.input_size, "top": p.top, "crop": p.crop, "classes": len(ctx.info.labels), **examples}  # fmt: skip

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        return [units]  # one entry a layer: the merge cuts every unit's crops from one read of each image

    def unit_steps(self, job: RenderJob) -> int:
        return 0

    def render(self, renderer: Any, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        raise TypeError("examples entries come from the example scan and its merge, not from a render")

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        from ..render.entries import JPEG_SLACK, MAX_NAMES_BYTES, Array, Expected, blob

        o = job.options
        n, top, crop = len(job.units), int(o["top"]), int(o["crop"])
        out: dict[str, Array] = {"files": Array("U", (None,), most=MAX_NAMES_BYTES), "counts": Array("i8", (2,)),
                                 "silent": Array("i8", (n,)), "mean": Array("f4", (n,)),
                                 "before_activation": Array("b1", (1,)),
                                 "predicted": Array("i8", (None,), most=8 * MAX_CLASSES)}  # fmt: skip
        for kind in ("top", "bottom"):
            out.update({f"{kind}_jpeg": Array("u1", (None,), most=n * top * (crop * crop * 3 + JPEG_SLACK)),
                        f"{kind}_offsets": Array("i8", (None,), most=(n * top + 1) * 8),
                        f"{kind}_file": Array("i4", (n, None), most=n * top * 4),
                        f"{kind}_value": Array("f4", (n, None), most=n * top * 4)})  # fmt: skip

        def values(arrays: dict[str, np.ndarray]) -> None:
            k = arrays["top_file"].shape[1]
            if k > top:
                raise ValueError(f"{k} examples a unit, over the {top} asked for")
            for kind in ("top", "bottom"):
                index = arrays[f"{kind}_file"]
                if index.shape != (n, k) or arrays[f"{kind}_value"].shape != (n, k):
                    raise ValueError(f"{kind}_file has shape {index.shape}, expected ({n}, {k})")
                if index.size and (index.min() < 0 or index.max() >= len(arrays["files"])):
                    raise ValueError(f"{kind}_file points past the {len(arrays['files'])} files named")
                blob(arrays, kind, n * k)

        return Expected(out, values)

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from ..render.examples import OFFLINE_PHOTOS
        from .synthetic import CROP_SLOPE, jpeg_blob

        o = job.options
        n, files = len(job.units), np.asarray(OFFLINE_PHOTOS)
        k, crop = min(int(o["top"]), len(files)), int(o["crop"])
        out: dict[str, np.ndarray] = {"files": files, "counts": np.asarray([len(files), 0], np.int64),
                                      "before_activation": np.asarray([True]),
                                      "silent": np.zeros(n, np.int64), "mean": rng.gamma(2.0, 1.0, n).astype(np.float32),
                                      "predicted": _predicted(rng, len(files), int(o.get("classes", 0)))}  # fmt: skip
        for kind in ("top", "bottom"):
            out[f"{kind}_jpeg"], out[f"{kind}_offsets"] = jpeg_blob(rng, crop, crop, n * k, CROP_SLOPE)
            out[f"{kind}_file"] = np.stack([rng.permutation(len(files))[:k] for _ in range(n)]).astype(np.int32)
            value = np.sort(rng.gamma(2.0, 2.0, (n, k)), axis=1)
            out[f"{kind}_value"] = (value[:, ::-1] if kind == "top" else value).astype(np.float32)
        return out

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        from ..render.examples import jpeg_at

        k = arrays["top_file"].shape[1]
        read, skipped = (int(c) for c in arrays["counts"])
        top = [float(v) for v in arrays["top_value"][i]]
        out: dict[str, Any] = {"count": k, "scanned": read, "skipped": skipped, "silent": int(arrays["silent"][i]),
                               "mean": float(arrays["mean"][i]), "source": settings.get("examples"),
                               "dead": bool(k) and max(top) <= 0, "before_activation": bool(arrays["before_activation"][0])}  # fmt: skip
        if k:
            rows = [[jpeg_at(arrays[f"{kind}_jpeg"], arrays[f"{kind}_offsets"], i * k + j) for j in range(k)] for kind in ("top", "bottom")]
            out["image"] = files.jpeg_rows("examples", rows)
            for kind in ("top", "bottom"):
                out[kind] = [{"file": str(arrays["files"][int(arrays[f"{kind}_file"][i, j])]),
                              "activation": float(arrays[f"{kind}_value"][i, j])} for j in range(k)]  # fmt: skip
        return out


def _predicted(rng: np.random.Generator, images: int, classes: int) -> np.ndarray:
    """Synthetic counts of ``images`` predictions over ``classes`` classes (none for no classifier)."""
    return rng.multinomial(images, np.full(classes, 1 / classes)).astype(np.int64) if classes else np.zeros(0, np.int64)


VIEW = Examples()
