"""Executors run the jobs that the cache lacks and write their arrays into it.

``run_jobs(jobs, cache, executor="local", **options)`` diffs the jobs against the cache (the cache is
the only checkpoint: a rerun submits only what is missing), shows one progress bar for the whole run
and hands the missing jobs to an executor module, ``featgen.site.render.executors.<name>``, loaded lazily.

An executor module defines ``execute(jobs, cache, progress, **options) -> None``: it hands out the
jobs as :func:`tasks` groups them, runs each task (``Renderer.entries``), stores each entry that comes
back and the cache lacks with ``cache.put(job.key, arrays, meta)`` and calls ``progress.advance(job,
worker)`` once per finished job. ``local`` runs them in worker processes; ``ray`` on Ray actors.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any

from ....errors import FeatgenError, suggest
from ....progress import bar
from ..cache import RenderCache
from ..jobs import RenderJob

EXECUTORS = ("local", "ray")

__all__ = ["run_jobs", "missing_jobs", "RunStats", "RunProgress", "EXECUTORS"]


@dataclass
class RunStats:
    """What a run did: jobs in the plan, found in the cache, rendered; units rendered; seconds."""

    jobs: int = 0
    cached: int = 0
    rendered: int = 0
    units: int = 0  # units rendered (a unit counts once per view)
    unit_steps: int = 0  # optimization steps times images, over the rendered jobs
    seconds: float = 0.0
    workers: dict[str, int] = field(default_factory=dict)  # jobs finished per worker
    corrupt: list[str] = field(default_factory=list)  # cache entries found bad (and rendered again)


class RunProgress:
    """One progress bar for a whole run: units done of the total, units/s and ETA (tqdm's), and, when
    jobs come from several workers, the jobs each finished. Counts are kept with the bar off too.

    ``done`` starts at the units already in the cache, so the bar shows the whole plan.
    """

    def __init__(self, total_units: int, done_units: int = 0, desc: str = "galleries", quiet: bool = False, unit: str = "unit"):
        self.total = total_units
        self.units = 0
        self.unit_steps = 0
        self.workers: dict[str, int] = {}
        self._bar = bar(total=total_units, desc=desc, quiet=quiet, unit=unit, initial=done_units, smoothing=0.05)

    def advance(self, job: RenderJob, worker: str | None = None) -> None:
        """Count one finished job (from ``worker``, e.g. ``"local"`` or a Ray actor's name)."""
        self.units += len(job.units)
        self.unit_steps += job.unit_steps
        name = worker or "local"
        self.workers[name] = self.workers.get(name, 0) + 1
        if len(self.workers) > 1:
            self._bar.set_postfix_str(" ".join(f"{w}:{n}" for w, n in sorted(self.workers.items())), refresh=False)
        self._bar.update(len(job.units))

    def write(self, message: str) -> None:
        """Print a line above the bar."""
        self._bar.write(message)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def tasks(jobs: list[RenderJob]) -> list[list[RenderJob]]:
    """The jobs as executors hand them out: a job with ``siblings`` (a GPU renders several jobs of a
    layer and view in one batch) goes with the others of its layer and view, so that one worker renders
    each batch once; any other job goes alone. Order is kept, task by task."""
    groups: dict[tuple, list[RenderJob]] = {}
    out: list[list[RenderJob]] = []
    for job in jobs:
        if len(job.siblings) < 2:
            out.append([job])
            continue
        key = (job.model, job.backend, job.device, job.precision, job.layer, job.view, job.settings, job.siblings)
        if key not in groups:
            groups[key] = []
            out.append(groups[key])
        groups[key].append(job)
    return out


def store(cache: RenderCache, entries: list, task: list[RenderJob], progress: Any, worker: str) -> None:
    """Write the entries of a finished task that the cache lacks (a GPU batch brings back its other jobs
    too, which a resumed run may hold already), and count the task's jobs as done."""
    for job, arrays, meta in entries:
        if not cache.has(job.key):
            cache.put(job.key, arrays, meta)
    for job in task:
        progress.advance(job, worker)


def missing_jobs(jobs: list[RenderJob], cache: RenderCache) -> list[RenderJob]:
    """The jobs (one per key, in order) whose entry the cache lacks."""
    seen: dict[str, RenderJob] = {}
    for j in jobs:
        seen.setdefault(j.key, j)
    return [j for k, j in seen.items() if not cache.has(k)]


def run_jobs(jobs: list[RenderJob], cache: RenderCache, executor: str = "local", quiet: bool = False,
             desc: str = "galleries", unit: str = "unit", **options: Any) -> RunStats:  # fmt: skip
    """Render every job whose entry ``cache`` lacks, with ``executor`` (``"local"`` or ``"ray"``).

    ``options`` go to the executor (local: ``threads``, ``device``; see each module); ``unit``: what
    a job's ``units`` count on the progress bar (a scan shard's are images). Returns counts.
    """
    if executor not in EXECUTORS:
        raise FeatgenError(f"unknown executor {executor!r}: choose {', '.join(EXECUTORS)}.{suggest(executor, EXECUTORS)}")
    t0 = time.perf_counter()
    unique = list({j.key: j for j in jobs}.values())
    todo = missing_jobs(unique, cache)
    stats = RunStats(jobs=len(unique), cached=len(unique) - len(todo))
    if todo:
        try:
            module = importlib.import_module(f"{__name__}.{executor}")
        except ImportError as exc:
            if executor == "ray" and exc.name and exc.name.startswith("ray"):
                raise FeatgenError("the ray executor needs Ray: pip install 'featgen[ray]'.") from None
            raise
        total = sum(len(j.units) for j in unique)
        with RunProgress(total, total - sum(len(j.units) for j in todo), desc=desc, quiet=quiet, unit=unit) as progress:
            module.execute(todo, cache, progress, **options)
        stats.rendered, stats.units, stats.unit_steps = sum(progress.workers.values()), progress.units, progress.unit_steps
        stats.workers = dict(progress.workers)
    stats.corrupt = list(cache.corrupt)
    stats.seconds = round(time.perf_counter() - t0, 2)
    return stats
