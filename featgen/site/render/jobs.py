"""The unit of work of the gallery pipeline: one ``RenderJob`` renders one view of a chunk of units.

A job is plain, frozen, picklable data. Its cache key is a hash of its settings, computed by
:func:`cache_key`, the one function that keys anything in the render cache. A job's settings use the
field names of :attr:`featgen.vis.Render.settings` (``model``, ``backend``, ``precision``, ``layer``,
``method``, ``size``, ``steps``, ``seed``, ``lr``, ``param``, ``decorrelate``, ``transforms``,
``objective``, ``weights_digest``, ``algorithm``), so a job's key is the key of the render it produces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def cache_key(settings: Mapping[str, Any]) -> str:
    """The cache key of ``settings``: a SHA-256 of their canonical JSON (key order does not matter)."""
    text = json.dumps(dict(settings), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class RenderJob:
    """One view of ``units`` of ``layer`` of one model in one backend, with its render settings.

    ``model`` is the model spec (``"efficientnet_lite0"``, ``"timm:resnet18"``, ...), ``layer`` the name
    the gallery uses for the layer (its URL), ``settings`` what the render needs besides: the
    ``Render.settings`` fields (``layer`` there is the model's own name for the layer) and, per view,
    its own (:meth:`featgen.site.views.View.settings`). ``device`` is
    where it runs and is not part of the key: a job gives the same entry wherever it ran.
    ``siblings``, not part of the key either: on a GPU, the units of every job of its layer and view in
    plan order (its own among them), which the renderer packs into batches of several jobs; empty:
    the job is its own batch.
    """

    model: str
    backend: str
    device: str
    precision: str
    layer: str
    units: tuple[int, ...]
    view: str
    settings: tuple[tuple[str, Any], ...] = field(default=())
    siblings: tuple[tuple[int, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        from .. import views

        if self.view not in views.names():
            raise ValueError(f"unknown view {self.view!r}: choose {', '.join(views.names())}")
        if isinstance(self.settings, Mapping):  # accept a dict; store it frozen (hashable), in key order
            object.__setattr__(self, "settings", tuple(sorted((k, _frozen(v)) for k, v in self.settings.items())))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        object.__setattr__(self, "siblings", tuple(tuple(int(u) for u in c) for c in self.siblings))

    @property
    def options(self) -> dict[str, Any]:
        """``settings`` as a dict."""
        return dict(self.settings)

    def key_settings(self) -> dict[str, Any]:
        """What the key hashes: the settings, the units and the view."""
        return {**self.options, "units": list(self.units), "view": self.view}

    @property
    def key(self) -> str:
        return cache_key(self.key_settings())

    @property
    def unit_steps(self) -> int:
        """Optimization steps times images: the job's cost in the unit the estimate uses (its view's)."""
        from .. import views

        return views.get(self.view).unit_steps(self)

    def meta(self) -> dict[str, Any]:
        """What the cache stores next to the arrays: enough to find and describe the entry."""
        return {"model": self.model, "backend": self.backend, "layer": self.layer, "view": self.view,
                "units": list(self.units), "settings": self.key_settings()}  # fmt: skip

    def label(self) -> str:
        u = self.units
        span = f"{u[0]}" if len(u) == 1 else f"{u[0]}..{u[-1]}"
        return f"{self.model}/{self.backend}/{self.layer}/{self.view}[{span}]"


def _frozen(value: Any) -> Any:
    """Lists become tuples (JSON writes both as arrays, so the key does not change)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def chunks(units: list[int] | tuple[int, ...], size: int) -> list[tuple[int, ...]]:
    """``units`` in consecutive chunks of at most ``size``."""
    units = tuple(units)
    return [units[i : i + size] for i in range(0, len(units), max(1, size))]
