"""The local executor: jobs in worker processes on this machine (the default, and what CI runs).

Each worker is a spawned process with a :class:`~featgen.site.render.renderer.Renderer`, which loads each model
once. On a CPU every worker renders with ``RENDER_THREADS`` threads, as a Ray actor does, and there is
one worker per core: a convolution's rounding depends on its thread count, so this is what makes a job
give the same bytes whichever executor ran it, and single-threaded workers side by side also render
faster than one process with every core. On a GPU one worker holds the device. The driver (this
process) writes each result into the cache as it arrives, so a build killed at any point keeps every
finished entry.

Worker processes are started with ``spawn``: a script that calls :func:`featgen.site.build.build`
needs the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any

from ....errors import FeatgenError
from ..cache import RenderCache
from ..jobs import RenderJob
from . import store, tasks

WORKER_MEMORY = 3 * 2**30  # what one worker may hold: both frameworks and a few models


def _exit(*_: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second stop must not break the exit under way
    sys.exit(0)


def _serve(conn: Connection, threads: int | None, device: str | None) -> None:
    """A worker: render each job received until the driver closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    # stopped by the driver: exit as Python does, so multiprocessing releases what the worker holds
    # (a semaphore left behind makes its resource tracker warn on the user's terminal)
    signal.signal(signal.SIGTERM, _exit)
    from ..renderer import Renderer

    renderer = Renderer(threads=threads, device=device)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the driver is done, or gone
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already on the way out
            return
        try:
            reply: tuple = ("ok", renderer.entries(task))
        except Exception as exc:  # noqa: BLE001 (sent to the driver, which raises it)
            reply = ("error", exc if isinstance(exc, FeatgenError) else None, traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def available_memory() -> int | None:
    """Bytes of memory new processes can take (Linux's MemAvailable), or None where it is not known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def worker_slots(jobs: list[RenderJob], workers: int | None, threads: int | None,
                 device: str | None) -> tuple[int, int | None]:  # fmt: skip
    """``(workers, threads)``: on a CPU, one ``RENDER_THREADS`` worker per core (at most one per job,
    and as many as memory holds); where a job runs on a GPU, one worker with the framework's threads."""
    from ....backends import resolve_device
    from ..renderer import RENDER_THREADS

    if workers is not None and workers < 1:
        raise FeatgenError(f"--workers must be 1 or more, not {workers}.")
    if threads is not None and threads < 1:
        raise FeatgenError(f"--threads must be 1 or more, not {threads}.")
    gpu = any(resolve_device(j.backend, device or j.device) != "cpu" for j in jobs)
    if gpu:
        return workers or 1, threads
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        memory = available_memory()
        fit = max(1, memory // WORKER_MEMORY) if memory else cores
        workers = max(1, min(cores // (threads or RENDER_THREADS), len(jobs), fit))
    return workers, threads or RENDER_THREADS


def execute(jobs: list[RenderJob], cache: RenderCache, progress: Any, workers: int | None = None,
            threads: int | None = None, device: str | None = None) -> None:  # fmt: skip
    """Run ``jobs`` in worker processes; each entry is written to ``cache`` as soon as it is done.

    Args:
        workers: worker processes (None: one per core on a CPU, one on a GPU).
        threads: CPU threads per worker (None: ``RENDER_THREADS`` on a CPU; renders made with another
            count differ in rounding, which the entries' ``numerics`` record).
        device: overrides each job's device.
    """
    n, threads = worker_slots(jobs, workers, threads, device)
    ctx = multiprocessing.get_context("spawn")
    procs, conns = [], []
    try:
        for i in range(n):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs, threads, device), name=f"featgen-render-{i}", daemon=True)
            proc.start()
            theirs.close()
            procs.append(proc)
            conns.append(mine)
        _drive(jobs, cache, progress, procs, conns)
    finally:
        for conn in conns:
            conn.close()  # an idle worker reads EOF and exits
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def _drive(jobs: list[RenderJob], cache: RenderCache, progress: Any, procs: list, conns: list[Connection]) -> None:
    """Give each idle worker the next task (a job, or a GPU batch's jobs: :func:`tasks`); store results
    as they come."""
    todo = deque(tasks(jobs))
    busy: dict[int, list[RenderJob]] = {}
    label = (lambda i: f"w{i}") if len(procs) > 1 else (lambda i: "local")

    def feed(i: int) -> None:
        if todo:
            busy[i] = todo.popleft()
            conns[i].send(busy[i])

    for i in range(len(procs)):
        feed(i)
    while busy:
        ready = set(wait([conns[i] for i in busy] + [procs[i].sentinel for i in busy]))
        for i in list(busy):
            task = busy[i]
            job = task[0]
            if conns[i] not in ready and procs[i].sentinel not in ready:
                continue
            try:
                status, *rest = conns[i].recv()
            except (EOFError, OSError):  # it ended without a reply
                procs[i].join()
                raise FeatgenError(f"{job.label()}: its render worker died (exit code {procs[i].exitcode}; out of "
                                   "memory?); finished renders stay in the cache: run again, with --workers 1 if "
                                   "memory is short.") from None  # fmt: skip
            del busy[i]
            if status == "error":
                exc, trace = rest
                if exc is not None:
                    raise FeatgenError(f"{job.label()}: {exc}")
                raise RuntimeError(f"rendering {job.label()} failed in a worker:\n{trace}")
            store(cache, rest[0], task, progress, label(i))
            feed(i)
