"""The Ray executor's options and imports, without a cluster."""

from __future__ import annotations

import subprocess
import sys

import pytest

from featgen.errors import FeatgenError
from featgen.site.render.jobs import RenderJob


def _jobs(n: int, device: str = "auto") -> list[RenderJob]:
    return [RenderJob("vgg16_hed", "torch", device, "float32", "block1_conv1", (u,), "naive", {"steps": 1}) for u in range(n)]


def test_featgen_site_does_not_import_ray():
    code = "import sys, featgen.site, featgen.site.render.executors, featgen.site.render.renderer; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_missing_ray_says_how_to_install(monkeypatch, tmp_path):
    from featgen.site.render.cache import RenderCache
    from featgen.site.render.executors import run_jobs

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    monkeypatch.delitem(sys.modules, "featgen.site.render.executors.ray", raising=False)
    with pytest.raises(FeatgenError) as err:
        run_jobs(_jobs(1), RenderCache(tmp_path), executor="ray", quiet=True)
    assert str(err.value) == "the ray executor needs Ray: pip install 'featgen[ray]'."
    assert not list(tmp_path.iterdir())  # nothing rendered


@pytest.fixture
def cluster(monkeypatch):
    """Pretend ``ray.cluster_resources()`` reports the given resources."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'featgen[ray]')")
    from featgen.site.render.executors import ray as ray_executor

    def use(**resources):
        monkeypatch.setattr(ray_executor.ray, "cluster_resources", lambda: resources)
        return ray_executor.worker_slots

    return use


def test_worker_slots_on_cpus(cluster):
    slots = cluster(CPU=8.0)
    assert slots(None, None, None, _jobs(20)) == (8, 0.0)  # one per CPU
    assert slots(None, None, None, _jobs(3)) == (3, 0.0)  # never more actors than jobs
    assert slots(2, None, None, _jobs(20)) == (2, 0.0)


def test_worker_slots_on_gpus(cluster):
    slots = cluster(CPU=16.0, GPU=2.0)
    assert slots(None, None, None, _jobs(20)) == (2, 1.0)  # one actor per GPU by default
    assert slots(None, 0.5, None, _jobs(20)) == (4, 0.5)  # fractions share a GPU
    assert slots(None, 1 / 3, None, _jobs(20)) == (6, 1 / 3)
    assert slots(None, None, "cpu", _jobs(20)) == (16, 0.0)  # --device cpu holds no GPU
    assert slots(None, None, None, _jobs(20, device="cpu")) == (16, 0.0)  # nor do CPU-only jobs


def test_worker_slots_that_do_not_fit_say_what_does(cluster):
    slots = cluster(CPU=16.0, GPU=2.0)
    with pytest.raises(FeatgenError, match=r"has 16 CPUs and 2 GPUs: 3 workers with 1 GPUs .* pass --workers 2 or fewer"):
        slots(3, 1.0, None, _jobs(20))
    with pytest.raises(FeatgenError, match="--workers must be 1 or more, not 0"):
        slots(0, None, None, _jobs(20))
    with pytest.raises(FeatgenError, match="--gpus-per-worker must be 0 or more"):
        slots(None, -1.0, None, _jobs(20))


def test_ray_options_without_the_ray_executor_are_one_line(capsys):
    from featgen.site.__main__ import main

    assert main(["render", "--profile", "quick", "--max-in-flight", "2", "--cache", "unused"]) == 2
    err = capsys.readouterr().err
    assert err == "featgen.site: error: --max-in-flight is an option of the ray executor: add --executor ray.\n"
