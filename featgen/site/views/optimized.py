"""The base of the views that optimize one image per unit (or ``k``): their job settings, render
call, cache arrays and synthetic stand-ins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import PlanContext, View

if TYPE_CHECKING:
    from ..render.config import Gallery
    from ..render.entries import Expected
    from ..render.jobs import RenderJob
    from ..render.renderer import Renderer


def base_settings(ctx: PlanContext) -> dict[str, Any]:
    """What every job of a layer is keyed by: the model, backend, precision, layer and weights."""
    info = ctx.info
    return {"model": info.name, "backend": info.backend, "precision": info.precision, "layer": ctx.native,
            "weights_digest": info.weights_digest}  # fmt: skip


def recipe(g: Gallery, ctx: PlanContext, objective: str) -> dict[str, Any]:
    """The regularized recipe of gallery ``g`` (size, steps, seed, lr, parameterization, transforms)
    for an ``objective`` of ``"channel"`` (the unit) or ``"custom"`` (a view's own)."""
    from ...vis import algorithm_version

    return {**base_settings(ctx), "algorithm": algorithm_version(ctx.info.backend), "method": "regularized",
            "size": g.size, "steps": g.steps, "seed": g.seed, "lr": float(g.lr), "param": g.param,
            "decorrelate": g.decorrelate, "transforms": g.transforms, "objective": objective}  # fmt: skip


class OptimizedView(View):
    """A view whose jobs optimize images: ``images`` (N·k, S, S, 3) uint8 (S: :meth:`side`),
    ``start``, ``final`` (N·k,) and ``losses`` (N·k, steps) float32, and
    ``valid_final`` where the render measures its final on the image clipped to [0, 1]."""

    def per_unit(self, job: RenderJob) -> int:
        """Images per unit (``k``)."""
        return 1

    def side(self, job: RenderJob) -> int:
        """The side of the job's images."""
        return int(job.options["size"])

    def unit_steps(self, job: RenderJob) -> int:
        return len(job.units) * self.per_unit(job) * int(job.options.get("steps") or 0)

    def objective(self, job: RenderJob) -> tuple[list[int], Any]:
        """``(units, objective)``: the unit of each image and the objective (None: each image its unit's
        mean activation). Imports :mod:`featgen.vis` only when called (in a render worker)."""
        return list(job.units), None

    def render(self, renderer: Renderer, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        units, objective = self.objective(job)
        return renderer.optimize(model, job, units, objective)

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        from ..render.entries import Array, Expected

        n = len(job.units) * self.per_unit(job)
        steps, side = int(job.options["steps"]), self.side(job)
        return Expected({
            "images": Array("u1", (n, side, side, 3)), "start": Array("f4", (n,)),
            "final": Array("f4", (n,)), "losses": Array("f4", (n, steps)), "valid_final": Array("f4", (n,), optional=True),
        })  # fmt: skip

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from .synthetic import curves, images

        n = len(job.units) * self.per_unit(job)
        size, steps = self.side(job), int(job.options["steps"])
        start = rng.uniform(0, 0.2, n).astype(np.float32)
        final = (start + rng.gamma(2.0, 3.0, n)).astype(np.float32)
        return {"images": images(rng, n, size), "start": start, "final": final, "losses": curves(rng, start, final, steps)}
