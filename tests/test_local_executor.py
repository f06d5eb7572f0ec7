"""The local executor: single-threaded worker processes, one per core, and what reaches the user when a
worker fails or dies."""

from __future__ import annotations

import os

import pytest

from featgen.errors import FeatgenError
from featgen.site.render.cache import RenderCache
from featgen.site.render.executors import run_jobs
from featgen.site.render.executors.local import worker_slots
from featgen.site.render.jobs import RenderJob
from featgen.site.render.renderer import RENDER_THREADS

pytestmark = pytest.mark.slow  # worker processes import torch and load a model


def _job(unit: int, device: str = "cpu", **settings) -> RenderJob:
    base = {"model": "vgg16_hed", "backend": "torch", "precision": "float32", "layer": "features.1", "method": "naive",
            "size": 32, "steps": 1, "seed": 0, "lr": 10.0, "objective": "channel", "start": "noise"}  # fmt: skip
    return RenderJob("vgg16_hed", "torch", device, "float32", "block1_conv1", (unit,), "naive", {**base, **settings})


def test_worker_slots_one_single_threaded_worker_per_core_on_a_cpu(monkeypatch):
    from featgen.site.render.executors import local

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(local, "available_memory", lambda: 64 * local.WORKER_MEMORY)
    assert worker_slots([_job(u) for u in range(64)], None, None, None) == (min(cores, 64), RENDER_THREADS)
    assert worker_slots([_job(0)], None, None, None) == (1, RENDER_THREADS)  # never more workers than jobs
    assert worker_slots([_job(u) for u in range(8)], 3, 2, None) == (3, 2)
    assert worker_slots([_job(u, device="cuda") for u in range(8)], None, None, None) == (1, None)  # one holds the GPU
    monkeypatch.setattr(local, "available_memory", lambda: 1.5 * local.WORKER_MEMORY)
    assert worker_slots([_job(u) for u in range(64)], None, None, None) == (1, RENDER_THREADS)  # as many as memory holds
    with pytest.raises(FeatgenError, match="--workers must be 1 or more, not 0"):
        worker_slots([_job(0)], 0, None, None)
    with pytest.raises(FeatgenError, match="--threads must be 1 or more, not 0"):
        worker_slots([_job(0)], None, 0, None)


class _ExitOnArrival:
    """A setting whose unpickling ends the process that receives it, as a worker killed mid-job would end."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_worker_that_dies_is_one_line_and_finished_entries_stay(tmp_path):
    cache = RenderCache(tmp_path)
    good, doomed = _job(0), _job(1, doom=_ExitOnArrival())
    with pytest.raises(FeatgenError) as err:
        run_jobs([good, doomed], cache, quiet=True, workers=1)
    message = str(err.value)
    assert message.startswith(f"{doomed.label()}: its render worker died (exit code 3; out of memory?)")
    assert "\n" not in message and "--workers 1" in message
    assert cache.has(good.key) and not cache.has(doomed.key)
    meta = cache.meta(good.key)
    assert meta["numerics"]["threads"] == RENDER_THREADS and meta["numerics"]["device"] == "cpu"


def test_an_error_in_a_worker_names_its_job(tmp_path):
    job = _job(0, weights_digest="not-these-weights")
    with pytest.raises(FeatgenError, match=r"vgg16_hed/torch/block1_conv1/naive\[0\]: the weights of vgg16_hed \(torch\) "
                                           "changed since the plan was made"):  # fmt: skip
        run_jobs([job], RenderCache(tmp_path), quiet=True)
    assert not RenderCache(tmp_path).has(job.key)
