"""The local executor: every job in this process, one after the other (the default, and what CI runs)."""

from __future__ import annotations

from typing import Any

from ..cache import RenderCache
from ..jobs import RenderJob


def execute(jobs: list[RenderJob], cache: RenderCache, progress: Any, threads: int | None = None,
            device: str | None = None, renderer: Any = None) -> None:  # fmt: skip
    """Run ``jobs`` in order, each written to ``cache`` as soon as it is done.

    Args:
        threads: CPU threads for the frameworks (None: their default).
        device: overrides each job's device.
        renderer: a :class:`~featgen.site.render.Renderer` to reuse (its loaded models), else a new one.
    """
    from ..render import Renderer

    r = renderer or Renderer(threads=threads, device=device)
    for job in jobs:
        cache.put(job.key, r.run(job), job.meta())
        progress.advance(job, "local")
