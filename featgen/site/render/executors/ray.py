"""The Ray executor: jobs on Ray Core actors, one per worker slot, each loading each model once.

The driver (this process) keeps at most ``max_in_flight`` jobs queued on each actor and feeds them
from a ``ray.wait`` loop. A job's arrays come back through Ray's object store and the driver writes
them into the cache, so the workers need no shared filesystem; with ``shared_cache`` the workers write
straight into the cache folder instead (it must be the same path on every node).

A worker that dies mid-job is restarted and its queued jobs run again (``max_restarts``,
``max_task_retries``); an entry is written once, when its job finishes. If the driver dies, the
entries it wrote stay, and a rerun submits only the jobs the cache lacks.

``address`` joins a running cluster (``"auto"``, ``"ray://host:10001"``); without one a local
cluster starts with this machine's cores and GPUs. Every node needs featgen (with ``featgen[ray]``)
at the driver's version.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections import deque
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from ....errors import FeatgenError
from ..cache import RenderCache
from ..jobs import RenderJob
from ..renderer import RENDER_THREADS
from . import store, tasks

DEFAULT_RETRIES = 3  # tries of a job whose worker died, after the first


class RenderWorker:
    """One worker slot: a ``Renderer`` whose models stay loaded from one job to the next.

    With ``cache`` set (shared-cache mode) it writes each job's entry itself and returns None; a job
    run again after its worker died finds the entry its first run wrote and writes nothing.
    """

    def __init__(self, threads: int | None, device: str | None, cache: RenderCache | None = None):
        from ..renderer import Renderer

        self.renderer = Renderer(threads=threads, device=device)
        self.cache = cache

    def run(self, task: list[RenderJob]) -> list | None:
        """The task's entries (:meth:`Renderer.entries`), or None once written to the shared cache."""
        if self.cache is None:
            return self.renderer.entries(task)
        missing = [job for job in task if not self.cache.has(job.key)]
        for job, arrays, meta in self.renderer.entries(missing) if missing else []:
            if not self.cache.has(job.key):
                self.cache.put(job.key, arrays, meta)
        return None


def connect(address: str | None = None) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local one; True if this call connected.

    A process already connected (``ray.init`` called by the caller) keeps its connection.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    client = address is not None and "://" in address  # Ray Client forwards options to the server's ray.init
    options = {} if client else {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FeatgenError(f"could not connect to {where} ({first}); check --address, or leave it out to start one here.") from None
    return True


def worker_slots(workers: int | None, num_gpus: float | None, device: str | None,
                 jobs: list[RenderJob]) -> tuple[int, float]:  # fmt: skip
    """How many actors to start and the GPUs each holds, from the options and the cluster's resources.

    ``num_gpus`` (per actor) None: 1 where the cluster has GPUs and some job may use one, else 0.
    ``workers`` None: as many as fit (GPUs / num_gpus, or one per CPU), at most one per job.
    """
    res = ray.cluster_resources()
    cpus, gpus = int(res.get("CPU", 0)), float(res.get("GPU", 0))
    wants_gpu = device != "cpu" and any(j.device != "cpu" for j in jobs)
    if num_gpus is None:
        num_gpus = 1.0 if gpus and wants_gpu else 0.0
    if num_gpus < 0:
        raise FeatgenError(f"--gpus-per-worker must be 0 or more, not {num_gpus}.")
    if workers is not None and workers < 1:
        raise FeatgenError(f"--workers must be 1 or more, not {workers}.")
    fit = cpus if not num_gpus else min(cpus, math.floor(gpus / num_gpus + 1e-9))
    if workers is None:
        workers = max(1, min(fit, len(jobs)))
    elif workers > fit:
        raise FeatgenError(
            f"the Ray cluster has {cpus} CPUs and {gpus:g} GPUs: {workers} workers with {num_gpus:g} GPUs "
            f"and 1 CPU each do not fit; pass --workers {max(fit, 1)} or fewer."
        )
    return workers, num_gpus


def execute(jobs: list[RenderJob], cache: RenderCache, progress: Any, address: str | None = None,
            workers: int | None = None, num_gpus: float | None = None, max_in_flight: int = 2,
            shared_cache: bool = False, threads: int | None = None, device: str | None = None,
            retries: int = DEFAULT_RETRIES) -> None:  # fmt: skip
    """Run ``jobs`` on Ray actors and write each job's entry into ``cache`` once, as it finishes.

    Args:
        address: a cluster to join (``"auto"``, ``"ray://host:port"``); None starts a local one.
        workers: actors to start (None: as many as the cluster's GPUs, or CPUs, allow).
        num_gpus: GPUs each actor holds (``--gpus-per-worker``); fractions share a GPU (None: 1 if the
            cluster has GPUs).
        max_in_flight: jobs queued on each actor at once (one runs, the others wait their turn).
        shared_cache: workers write entries into ``cache`` themselves (a folder every node sees).
        threads: CPU threads per actor for the frameworks (None: ``RENDER_THREADS`` on a CPU actor, as
            the local executor's workers, the node's CPUs shared out on a GPU actor).
        device: overrides each job's device (``cpu``, ``cuda``, ...).
        retries: runs of a job whose worker died, after the first.
    """
    if max_in_flight < 1:
        raise FeatgenError(f"--max-in-flight must be 1 or more, not {max_in_flight}.")
    started = connect(address)
    actors: list[Any] = []
    try:
        n, gpus = worker_slots(workers, num_gpus, device, jobs)
        if threads is None:
            threads = RENDER_THREADS if not gpus else max(1, int(ray.cluster_resources().get("CPU", 1)) // n)
        remote = ray.remote(RenderWorker).options(num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=retries)
        actors = [remote.remote(threads, device, _absolute(cache) if shared_cache else None) for _ in range(n)]
        _drive(jobs, cache, progress, actors, max_in_flight, retries)
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()


def _absolute(cache: RenderCache) -> RenderCache:
    """The cache with an absolute root: workers need not share the driver's working folder."""
    shared = copy.copy(cache)
    shared.root = Path(cache.root).resolve()
    return shared


def _drive(jobs: list[RenderJob], cache: RenderCache, progress: Any, actors: list[Any], max_in_flight: int,
           retries: int) -> None:  # fmt: skip
    """The driver loop: keep each actor's queue full, and store results in the order they finish."""
    todo = deque(tasks(jobs))
    running: dict[Any, tuple[list[RenderJob], int]] = {}  # object ref -> (task, actor slot)
    load = [0] * len(actors)

    def feed(slot: int) -> None:
        while todo and load[slot] < max_in_flight:
            task = todo.popleft()
            running[actors[slot].run.remote(task)] = (task, slot)
            load[slot] += 1

    for slot in range(len(actors)):
        feed(slot)
    while running:
        done, _ = ray.wait(list(running), num_returns=1)
        for ref in done:
            task, slot = running.pop(ref)
            job = task[0]
            load[slot] -= 1
            try:
                entry = ray.get(ref)
            except RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, FeatgenError) else None
                if cause is not None:
                    raise FeatgenError(f"{job.label()}: {cause}") from None
                raise
            except RayActorError:
                raise FeatgenError(
                    f"{job.label()}: its Ray worker died {retries + 1} times (out of memory?); "
                    "see the worker logs in the Ray session folder, and try fewer --workers."
                ) from None
            store(cache, entry or [], task, progress, f"w{slot}")
            del entry  # frees the object in the store
            feed(slot)
