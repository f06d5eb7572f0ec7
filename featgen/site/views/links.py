"""The links view (from the weights alone): per unit, the units of the previous gallery layer that
drive it most (its inputs) and the units of the next gallery layer it drives most (its outputs),
excitatory and inhibitory apart, by the expanded weights of :mod:`featgen.analysis.links`.

One job a layer, like the other forward-only views; it loads the model's weights and runs no image
and no optimization. The pages show each link as a thumbnail of the linked unit (from its layer's
overview sheet) that leads to its page, or, for a unit the profile does not render, as its number
with the command that renders it.
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

VERSION = "links-1"
SPAN = 3  # a link reaches at most this many convolutions on (one inverted-residual block: expand, depthwise, project)
TOP = 5  # links a row: the strongest excitatory, and the strongest inhibitory, inputs and outputs
SIDES = ("inputs", "outputs")
KINDS = ("exc", "inh")


class Links(View):
    name = "links"
    order = 60
    optimizes = False
    precision = "float32"

    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any] | None:
        before, after = ctx.neighbours()
        order = {row.name: i for i, row in enumerate(ctx.info.table)}

        def end(native: str) -> int:  # where a layer's output is made: after its last sub-layer (a block's)
            return max(i for name, i in order.items() if name == native or name.startswith(native + "."))

        def near(a: tuple[str, str] | None, b: tuple[str, str] | None) -> bool:
            """Whether ``b`` is at most SPAN convolutions after ``a``: across more, the activations taken
            as the identity are many, and the fields so wide that the measurement takes hours."""
            if a is None or b is None:
                return False
            lo, hi = end(a[1]), end(b[1])
            return sum(lo < order[c] <= hi for c in ctx.info.conv) <= SPAN

        here = (ctx.native, ctx.native)
        before = before if near(before, here) else None
        after = after if near(here, after) else None
        if before is None and after is None:
            return None  # no gallery layer close enough to link to

        def side(layer: tuple[str, str] | None) -> list[Any] | None:
            return None if layer is None else [layer[0], layer[1], int(ctx.info.row(layer[1]).channels or 0)]

        return {**base_settings(ctx), "kind": VERSION, "top": TOP, "inputs": side(before), "outputs": side(after),
                "channels": int(ctx.info.row(ctx.native).channels or 0)}  # fmt: skip

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        return [units]  # one measurement a layer pair: every unit's row of it in one entry

    def unit_steps(self, job: RenderJob) -> int:
        return 0

    def render(self, renderer: Renderer, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        from ...analysis import top_links

        o = job.options
        units = np.asarray(job.units)
        out: dict[str, np.ndarray] = {}
        if o.get("inputs"):  # rows: this layer's units, from the previous layer's
            rows = renderer.expanded(model, o["inputs"][1], o["layer"], (o["inputs"][2], o["channels"])).signed[units]
            out.update({f"inputs_{k}": v for k, v in top_links(rows, int(o["top"])).items()})
        if o.get("outputs"):  # columns: from this layer's units, to the next layer's
            rows = renderer.expanded(model, o["layer"], o["outputs"][1], (o["channels"], o["outputs"][2])).signed[:, units].T
            out.update({f"outputs_{k}": v for k, v in top_links(rows, int(o["top"])).items()})
        return out

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        from ..render.entries import Array, Expected

        o = job.options
        n, k = len(job.units), int(o["top"])
        out: dict[str, Array] = {}
        for side in SIDES:
            if o.get(side):
                for kind in KINDS:
                    out[f"{side}_{kind}_unit"] = Array("i4", (n, k))
                    out[f"{side}_{kind}_weight"] = Array("f4", (n, k))

        def values(arrays: dict[str, np.ndarray]) -> None:
            for side in SIDES:
                if o.get(side):
                    channels = int(o[side][2])
                    for kind in KINDS:
                        u = arrays[f"{side}_{kind}_unit"]
                        if u.size and (u.min() < -1 or u.max() >= channels):
                            raise ValueError(f"{side}_{kind}_unit points outside the {channels} units of {o[side][0]}")

        return Expected(out, values)

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        o = job.options
        n, k = len(job.units), int(o["top"])
        out: dict[str, np.ndarray] = {}
        for side in SIDES:
            if o.get(side):
                channels = int(o[side][2])
                for kind, sign in zip(KINDS, (1.0, -1.0)):
                    picks = np.stack([rng.permutation(channels)[:k] for _ in range(n)]).astype(np.int32)
                    if picks.shape[1] < k:
                        picks = np.pad(picks, ((0, 0), (0, k - picks.shape[1])), constant_values=-1)
                    weight = -np.sort(-rng.gamma(2.0, 0.1, (n, k)), axis=1)
                    out[f"{side}_{kind}_unit"] = picks
                    out[f"{side}_{kind}_weight"] = np.where(picks >= 0, sign * weight, 0).astype(np.float32)
        return out

    def page_inputs(self, site: Any, lp: Any) -> Any:
        return site.link_context(lp.model, lp.backend, lp.layer)  # the linked layers' units (and recipes)

    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side in SIDES:
            if settings.get(side):
                rows = {}
                for kind in KINDS:
                    units, weights = arrays[f"{side}_{kind}_unit"][i], arrays[f"{side}_{kind}_weight"][i]
                    rows[kind] = [{"unit": int(u), "weight": float(w)} for u, w in zip(units, weights) if u >= 0]
                out[side] = {"layer": settings[side][0], **rows}
        return out


VIEW = Links()
