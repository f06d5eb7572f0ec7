"""``plan --estimate``: time a short calibration on the chosen device and project the plan's duration.

For each gallery and view, the first chunk of the gallery's middle layer is rendered twice, with a
few and with more steps (on a CPU, with at most 16 units, by one thread as a local worker renders; on
a GPU, the first batch a worker would render there: several jobs of that layer, as many units as the
GPU's memory holds, and steps past the redirected ones and the CUDA graph's capture).
The difference gives the cost of one unit-step, the rest a per-job overhead (start and final
evaluations, transfers); the projection is ``Σ jobs (overhead + unit-steps × cost)``, shared among
the local executor's workers. Deeper layers cost more than the middle one and shallower less, so the
projection is a rough figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from .cache import RenderCache
from .jobs import RenderJob
from .plan import Plan, parse_device

STEPS = (2, 6)
# on a GPU: past Lucid's 16 redirected steps and the CUDA graph's capture, so that the difference is
# the cost of the steps that make most of a render (replayed ones)
GPU_STEPS = (20, 28)


@dataclass
class Estimate:
    rows: list[tuple[str, str, int, float, float]] = field(default_factory=list)  # gallery, view, jobs, rate, seconds
    device: str = "auto"
    missing_only: bool = False
    workers: int = 1  # local workers that share the jobs

    @property
    def seconds(self) -> float:
        return sum(r[4] for r in self.rows) / self.workers

    def lines(self) -> list[str]:
        out = [f"{g:<34} {v:<12} {n:>6} jobs {f'{rate:,.0f} unit-steps/s' if rate else '':>20}  {_hms(s):>9}"
               for g, v, n, rate, s in self.rows]  # fmt: skip
        what = "the jobs not in the cache" if self.missing_only else "the whole plan"
        who = "one local worker" if self.workers == 1 else f"{self.workers} local workers"
        out.append(f"estimate on {self.device}: {_hms(self.seconds)} for {what} with {who} "
                   "(calibrated on each gallery's middle layer)")  # fmt: skip
        return out


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02}:{s % 60:02}"


def _timed(renderer, job: RenderJob) -> float:
    t0 = time.perf_counter()
    renderer.run(job, one_batch=True)
    return time.perf_counter() - t0


def estimate(plan: Plan, device: str | None = None, cache: RenderCache | None = None, renderer=None) -> Estimate:
    """Calibrate each (gallery, view) of ``plan`` and project the duration of its jobs (those missing
    from ``cache`` if given) on ``device``, with ``renderer`` (a new one by default)."""
    from ...backends import resolve_device
    from .. import views
    from .executors.local import worker_slots
    from .renderer import Renderer

    devices = parse_device(device)
    todo = [j for j in plan.jobs if cache is None or not cache.has(j.key)]
    for_device = [replace(j, device=devices.get(j.backend, devices.get("*", j.device))) for j in todo]
    workers, threads = worker_slots(for_device, None, None, None) if todo else (1, None)
    renderer = renderer or Renderer(threads=threads)
    est = Estimate(device=device or "each gallery's device", missing_only=cache is not None, workers=workers)
    galleries: dict[tuple[str, str], list] = {}
    for lp in plan.layers:
        galleries.setdefault((lp.model, lp.backend), []).append(lp)
    for (model, backend), layers in galleries.items():
        mid = layers[len(layers) // 2]
        dev = devices.get(backend, devices.get("*", mid.gallery.device))
        cpu = resolve_device(backend, dev) == "cpu"
        for view, jobs in mid.jobs.items():
            first = replace(jobs[0], device=dev)
            # a CPU worker renders a job in batches of at most 16 (enough to time); a GPU one batch of its pack
            units = first.units[:16] if cpu else tuple(u for j in renderer.pack(first) for u in j.units)
            base = replace(first, units=units, siblings=())
            todo = [j for lp in layers for j in lp.jobs.get(view, ()) if cache is None or not cache.has(j.key)]
            if not todo:
                continue
            v = views.get(view)
            if v.scanned:  # its cost is the scan's: timed on a few images of the first missing shard
                est.rows += _scan_rows(plan, renderer, first, cache)
                continue
            renderer.run(v.with_steps(base, 1), one_batch=True)  # warm-up: model load, first-call costs
            if not v.optimizes:
                per_job = _timed(renderer, base) / len(base.units)
                est.rows.append((f"{model} ({backend})", view, len(todo), 0.0, sum(per_job * len(j.units) for j in todo)))
                continue
            steps = STEPS if cpu else GPU_STEPS
            t1, t2 = (_timed(renderer, v.with_steps(base, s)) for s in steps)
            per_image = base.unit_steps // max(int(base.options["steps"]), 1)
            step_cost = max(t2 - t1, 1e-9) / ((steps[1] - steps[0]) * per_image)
            overhead = max(t1 - steps[0] * per_image * step_cost, 0.0) / per_image  # per image
            seconds = sum(j.unit_steps * step_cost + overhead * j.unit_steps / max(int(j.options["steps"]), 1) for j in todo)
            est.rows.append((f"{model} ({backend})", view, len(todo), 1.0 / step_cost, seconds))
    return est


def _scan_rows(plan: Plan, renderer: Any, job: RenderJob, cache: RenderCache | None) -> list[tuple]:
    """The estimate of a model's dataset-example scan: one row, from the time of a few images."""
    import time

    shards = [s for s in plan.scans if (s.model, s.backend) == (job.model, job.backend)]
    missing = [s for s in shards if cache is None or not cache.has(s.key)]
    if not missing:
        return []
    probe = replace(missing[0], stop=min(missing[0].start + 8, missing[0].stop), device=job.device)
    renderer.scan(probe)  # warm-up: model load, first-call costs
    t0 = time.perf_counter()
    renderer.scan(probe)
    per_image = (time.perf_counter() - t0) / len(probe.units)
    images = sum(len(s.units) for s in missing)
    return [(f"{job.model} ({job.backend})", "scan", len(missing), 0.0, per_image * images)]
