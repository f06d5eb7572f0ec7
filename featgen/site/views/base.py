"""What a gallery view is: its settings, how it renders, what its cache entry holds, and what its
part of a unit page shows.

A view is one object of a :class:`View` subclass, registered in :mod:`featgen.site.views`. The stages
read it and nothing else: the config checks its options, the plan makes its jobs (:meth:`View.settings`,
:meth:`View.chunks`), the render stage calls :meth:`View.render`, the cache checks an entry against
:meth:`View.expected`, and the page stage asks :meth:`View.unit_fields` for its part of each unit page,
which its template block (``pages/templates/views/<name>.html.j2``, or :attr:`View.block`) shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..pages.files import UnitFiles
    from ..pages.verdict import Verdict
    from ..render.config import Gallery, Profile
    from ..render.entries import Expected
    from ..render.jobs import RenderJob
    from ..render.plan import ModelInfo
    from ..render.renderer import Renderer


@dataclass(frozen=True)
class Option:
    """A key that a view adds to a gallery in ``galleries.yml``.

    ``limit`` names the integer bounds in :data:`featgen.limits.LIMITS`; without it the value is a
    positive number. ``per_layer``: it may also be set under a gallery's ``layer_options``."""

    name: str
    default: Any
    limit: str | None = None
    per_layer: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid setting of this option, or None."""
        from ... import limits

        if self.limit is not None:
            return limits.out_of_range(self.limit, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            return f"must be a positive number, got {limits.short(value)}"
        return None


@dataclass(frozen=True)
class PlanContext:
    """What a view's settings may depend on besides its gallery: the profile, the model and the layer."""

    profile: Profile
    info: ModelInfo
    native: str  # the model's own name of the layer
    shared: dict[str, Any] = field(default_factory=dict)  # what a view computes once per plan, by its own key
    layers: tuple[tuple[str, str], ...] = ()  # the gallery's layers in model order: (its name, the native name)

    def neighbours(self) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        """The gallery layers just before and just after this one, as ``(name, native)``, or None."""
        natives = [native for _, native in self.layers]
        if self.native not in natives:
            return None, None
        i = natives.index(self.native)
        return (self.layers[i - 1] if i > 0 else None), (self.layers[i + 1] if i + 1 < len(self.layers) else None)


class View:
    """One kind of picture or measurement of every unit of a layer. Subclasses set the class
    attributes and override what differs; :class:`featgen.site.views.optimized.OptimizedView` is the
    base of the views that optimize an image.

    Attributes:
        name: the name in ``galleries.yml`` (``views: [...]``), in job keys and cache entries.
        primary: the view that every gallery renders: its image is the unit's tile, its settings the
            reproduction block, its verdict the unit's badge. Exactly one view is primary.
        order: where its part of a unit page goes (and its place in the registry), lowest first.
        options: the gallery keys this view adds (:class:`Option`).
        optimizes: its jobs run an optimization of ``steps`` steps (the estimate calibrates those).
        block: the Jinja source of its unit-page block; None: ``views/<name>.html.j2``.
        scanned: its entries come from the model's dataset-example scan and its merge
            (:mod:`featgen.site.render.merge`), not from rendering its jobs one by one.
        precision: the precision its jobs compute in whatever the gallery's (a measurement that
            reduced precision would blur); None: the gallery's.
        reads: the views whose unit fields :meth:`unit_fields` reads (passed as ``before``; they come
            earlier in page order).
    """

    name: str = ""
    primary: bool = False
    order: int = 100
    options: tuple[Option, ...] = ()
    optimizes: bool = True
    block: str | None = None
    scanned: bool = False
    precision: str | None = None
    reads: tuple[str, ...] = ()

    # --- plan --------------------------------------------------------------------------------------
    def settings(self, g: Gallery, ctx: PlanContext) -> dict[str, Any] | None:
        """The job settings of this view for gallery ``g`` (already with its layer's overrides), named
        as :attr:`featgen.vis.Render.settings` names them, plus the view's own; None: the view has
        nothing to show for this layer (no jobs)."""
        raise NotImplementedError

    def chunks(self, units: tuple[int, ...], size: int) -> list[tuple[int, ...]]:
        """The units of one layer, cut into jobs of at most ``size`` units (in unit order)."""
        from ..render.jobs import chunks

        return chunks(units, size)

    def unit_steps(self, job: RenderJob) -> int:
        """A job's cost in the unit the estimate uses: optimization steps times images."""
        return len(job.units) * int(job.options.get("steps") or 0)

    def with_steps(self, job: RenderJob, steps: int) -> RenderJob:
        """The job with ``steps`` optimization steps (the estimate's calibration); itself if none."""
        from dataclasses import replace

        return replace(job, settings={**job.options, "steps": steps}) if self.optimizes else job

    # --- render ------------------------------------------------------------------------------------
    def render(self, renderer: Renderer, model: Any, job: RenderJob) -> dict[str, np.ndarray]:
        """The job's arrays, rendered with ``model`` (loaded by ``renderer``)."""
        raise NotImplementedError

    def expected(self, job: RenderJob, input_size: int) -> Expected:
        """The arrays the job's cache entry must hold (checked before any is decompressed)."""
        raise NotImplementedError

    def synthetic(self, job: RenderJob, input_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Arrays in the format of :meth:`expected` that no model made (benchmarks and tests)."""
        raise NotImplementedError

    # --- pages -------------------------------------------------------------------------------------
    def unit_fields(self, arrays: dict[str, np.ndarray], i: int, files: UnitFiles, settings: dict[str, Any]) -> dict[str, Any]:
        """The ``i``-th unit's part of its page, from its job's ``arrays`` and ``settings``: writes its
        files through ``files`` and returns the fields its template block reads (plain JSON-able data).
        A view that :attr:`reads` others gets their fields of this unit as ``before={view: fields}``."""
        raise NotImplementedError

    def verdict(self, fields: dict[str, dict[str, Any]], layer_type: str | None) -> Verdict | None:
        """A verdict on this view's render of a unit, from the unit's fields of every view (by view
        name); None if the view judges nothing."""
        return None

    def page_inputs(self, site: Any, lp: Any) -> Any:
        """What this view's block on a unit page of layer ``lp`` shows besides the layer's entries (other
        layers' units, other pages): plain data that the layer's digest includes, so that its pages are
        written again when it changes. ``site`` is the page stage's :class:`~featgen.site.pages.layer.Site`."""
        return None

    def stats(self, fields: dict[str, Any]) -> list[tuple[str, float]]:
        """Rows this view adds to the unit's table of activations: ``(label, value)``."""
        return []

    def template(self) -> str:
        """The name of the view's block template (see :attr:`block`)."""
        return f"views/{self.name}.html.j2"

    def __repr__(self) -> str:
        return f"<view {self.name}>"
