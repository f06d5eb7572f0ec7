"""The gallery views, registered in page order: each is one module that declares its settings, how it
renders, its cache arrays, its verdict and its part of a unit page (:class:`~.base.View`).

Stages iterate :func:`all_views` and look views up with :func:`get`; no other module names a view.
A new view is one module in this package whose ``VIEW`` is an object of a :class:`~.base.View`
subclass (found and registered on import, in the order of ``VIEW.order``), plus its template block
(``pages/templates/views/<name>.html.j2``, or inline as ``View.block``). :func:`register` adds a
view defined elsewhere at run time.
"""

from __future__ import annotations

from ...errors import FeatgenError, suggest
from .base import Option, PlanContext, View

_REGISTRY: dict[str, View] = {}


def register(view: View) -> View:
    """Add ``view`` to the registry (after those already there: pages show views in this order)."""
    if not view.name or view.name in _REGISTRY:
        raise ValueError(f"a view needs a new name, got {view.name!r}")
    if view.primary and any(v.primary for v in _REGISTRY.values()):
        raise ValueError(f"view {view.name!r}: there is already a primary view ({primary().name})")
    taken = {o.name for v in _REGISTRY.values() for o in v.options}
    if any(o.name in taken for o in view.options):
        raise ValueError(f"view {view.name!r} declares an option another view has")
    _REGISTRY[view.name] = view
    return view


def unregister(name: str) -> None:
    """Remove a view (a test's toy view); the built-in ones stay."""
    _REGISTRY.pop(name, None)


def get(name: str) -> View:
    """The registered view ``name``; one line with a suggestion if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FeatgenError(f"unknown view {name!r}: choose {', '.join(_REGISTRY)}.{suggest(name, list(_REGISTRY))}") from None


def names() -> tuple[str, ...]:
    """The registered views' names, in page order."""
    return tuple(_REGISTRY)


def all_views() -> tuple[View, ...]:
    """The registered views, in page order."""
    return tuple(_REGISTRY.values())


def primary() -> View:
    """The view every gallery renders (its image is a unit's tile and its verdict the unit's badge)."""
    return next(v for v in _REGISTRY.values() if v.primary)


def options() -> dict[str, Option]:
    """Every option the views add to a gallery, by name."""
    return {o.name: o for v in _REGISTRY.values() for o in v.options}


SUPPORT = ("base", "optimized", "synthetic")  # modules of this package that are no view


def _register_builtins() -> None:
    """Every module of this package with a ``VIEW`` registers it, in the order of ``VIEW.order``: a
    new view is one new module here (and its template block)."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name not in SUPPORT:
            view = getattr(importlib.import_module(f"{__name__}.{info.name}"), "VIEW", None)
            if isinstance(view, View):
                found.append(view)
    for view in sorted(found, key=lambda v: (v.order, v.name)):
        register(view)


def ensure(registered: list[View]) -> None:
    """Register the views of ``registered`` that this process lacks (a worker process gets its
    parent's registry this way, views registered at run time included)."""
    for view in registered:
        if view.name not in _REGISTRY:
            register(view)


_register_builtins()

__all__ = ["View", "Option", "PlanContext", "register", "unregister", "ensure", "get", "names", "all_views", "primary", "options"]
