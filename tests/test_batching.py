"""Batches sized for the device: how many images a step holds, and on a GPU several jobs of a layer in
one batch, with each job's entry fixed by the plan and the device, not by which jobs still had to run."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from featgen.site.render.cache import RenderCache
from featgen.site.render.jobs import RenderJob
from featgen.vis.batching import GIB, activation_values, budget, images_that_fit, pack


def test_activation_values_count_leaves_up_to_the_layer_and_its_sublayers():
    row = lambda name, shape: SimpleNamespace(name=name, shape=shape)  # noqa: E731
    table = [row("stem", (8, 8, 4)), row("blocks", (2, 2, 16)), row("blocks.0", (4, 4, 8)), row("blocks.0.conv", (4, 4, 8)),
             row("blocks.0.act", (4, 4, 8)), row("blocks.1", (2, 2, 16)), row("head", (10,))]  # fmt: skip
    # stem, and blocks.0's two leaves (blocks and blocks.0 are containers: their output is a child's)
    assert activation_values(table, "blocks.0", 8, 8) == 8 * 8 * 4 + 2 * 4 * 4 * 8
    assert activation_values(table, "blocks.0", 16, 8) == 4 * (8 * 8 * 4 + 2 * 4 * 4 * 8)  # twice the side
    assert activation_values(table, "head", 8, 8) == 8 * 8 * 4 + 2 * 4 * 4 * 8 + 2 * 2 * 16 + 10
    with pytest.raises(ValueError):
        activation_values(table, "nope", 8, 8)


def test_a_gpu_step_takes_a_share_of_free_memory_in_whole_gib_capped_by_the_units():
    assert budget(None) == 3e9  # a CPU: a fixed budget
    assert budget(100 * GIB + 12345) == 70 * GIB == budget(100 * GIB + 7 * 2**20)  # MBs more or less: the same
    per_image = 11.2e6  # VGG16-HED block4_conv3 at a 142-px input
    on_h200 = images_that_fit(per_image, budget(135 * GIB), 4096)  # 94 GiB / (6 bytes x 11.2e6 values)
    assert on_h200 == 1501 and images_that_fit(per_image, budget(135 * GIB), 512) == 512
    assert images_that_fit(per_image, 1.0, 512) == 1


def test_packs_are_consecutive_chunks_that_fit():
    chunks = [(0, 1), (2, 3), (4, 5), (6,)]
    assert pack(chunks, 4) == [[0, 1], [2, 3]]
    assert pack(chunks, 6) == [[0, 1, 2], [3]]
    assert pack(chunks, 100) == [[0, 1, 2, 3]]
    assert pack(chunks, 1) == [[0], [1], [2], [3]]  # a chunk larger than a batch goes alone


class _AsGpu:
    """A CPU backend as the renderer sees a GPU's: not ``cpu``, with ``free`` bytes free."""

    device = "cuda"

    def __init__(self, be, free: int):
        self._be, self._free = be, free

    def memory_free(self) -> int:
        return self._free

    def __getattr__(self, name):
        return getattr(self._be, name)


@pytest.fixture(scope="module")
def gpu_renderer(lite0):
    """A renderer whose Lite0 stands for one on a GPU whose free memory holds 4 images of ``conv_stem``
    at 32 px (a 32-px render without transforms: the network sees 32 px)."""
    from featgen.site.render.renderer import Renderer
    from featgen.vis.batching import BYTES_PER_VALUE

    renderer = Renderer()
    per_image = activation_values(lite0.layer_table, "conv_stem", 32, lite0.input_size) * BYTES_PER_VALUE
    model = replace(lite0, backend=_AsGpu(lite0.backend, 64 * GIB), runtime={})
    renderer._models[("efficientnet_lite0", "torch", "cpu", "float32")] = model
    renderer._budgets[id(model)] = 4.5 * per_image  # as if budget() had made that of the free memory
    return renderer


def _jobs(view: str = "naive") -> list[RenderJob]:
    chunks = ((0, 1), (2, 3), (4, 5))
    settings = {"model": "efficientnet_lite0", "backend": "torch", "precision": "float32", "layer": "conv_stem",
                "method": "naive", "size": 32, "steps": 3, "seed": 0, "lr": 10.0, "objective": "channel",
                "start": "noise", "transforms": None}  # fmt: skip
    return [RenderJob("efficientnet_lite0", "torch", "cpu", "float32", "conv_stem", c, view, settings, chunks)
            for c in chunks]  # fmt: skip


def test_on_a_gpu_the_jobs_of_a_layer_render_in_packs_that_the_plan_and_memory_fix(gpu_renderer):
    from featgen.site.render.executors import tasks
    from featgen.vis import visualize

    jobs = _jobs()
    assert [len(t) for t in tasks(jobs)] == [3]  # one worker gets the layer's jobs
    assert [[j.units for j in gpu_renderer.pack(job)] for job in jobs] == [[(0, 1), (2, 3)]] * 2 + [[(4, 5)]]
    everything = {j.key: (a, m) for j, a, m in gpu_renderer.entries(jobs)}
    assert set(everything) == {j.key for j in jobs}
    # the second job alone brings back its pack: the first job too, with the same bytes
    alone = gpu_renderer.entries([jobs[1]])
    assert [j.units for j, _, _ in alone] == [(0, 1), (2, 3)]
    for job, arrays, meta in alone:
        want, want_meta = everything[job.key]
        assert all(arrays[k].tobytes() == want[k].tobytes() for k in want) and meta == want_meta
        assert meta["numerics"]["batch"] == 4
    assert everything[jobs[2].key][1]["numerics"]["batch"] == 2
    # a pack is one render of its units
    r = visualize(gpu_renderer._models[("efficientnet_lite0", "torch", "cpu", "float32")], "conv_stem",
                  units=[0, 1, 2, 3], method="naive", size=32, steps=3, batch_size=4, progress=False)  # fmt: skip
    images = np.concatenate([everything[j.key][0]["start"] for j in jobs[:2]])
    np.testing.assert_array_equal(images, r.start_activation)


def test_diversity_packs_count_its_images_and_a_cpu_packs_nothing(gpu_renderer, lite0):
    from featgen.site.render.renderer import Renderer

    div = [replace(j, view="diversity", settings={**j.options, "method": "regularized", "diversity": 2,
                                                  "param": "fourier", "decorrelate": True, "transforms": "none"})
           for j in _jobs()]  # fmt: skip
    assert [len(gpu_renderer.pack(j)) for j in div] == [1, 1, 1]  # 2 units of 2 images fill 4
    cpu = Renderer()
    cpu._models[("efficientnet_lite0", "torch", "cpu", "float32")] = lite0
    assert [len(cpu.pack(j)) for j in _jobs()] == [1, 1, 1]


def test_the_plan_gives_siblings_only_to_the_views_that_render_on_a_gpu(tmp_path, monkeypatch):
    import featgen.backends
    from featgen.site.render.config import parse_config
    from featgen.site.render.plan import plan

    config = {"profiles": {"p": {"chunk": 2, "galleries": [{"model": "efficientnet_lite0", "layers": ["conv_stem"],
                                                            "units": 5, "views": ["regularized", "photos"]}]}}}  # fmt: skip
    profile = parse_config(config)["p"]
    cache = RenderCache(tmp_path / "renders")
    on_cpu = plan(profile, cache, device="cpu")  # caches the model's info: the second plan loads nothing
    assert all(j.siblings == () for j in on_cpu.jobs)
    monkeypatch.setattr(featgen.backends, "resolve_device", lambda backend, device: "cuda")
    monkeypatch.setattr(featgen.backends, "resolve_precision", lambda backend, device, precision: "float32")
    on_gpu = plan(profile, cache, device="cuda")
    regularized = [j for j in on_gpu.jobs if j.view == "regularized"]
    assert [j.siblings for j in regularized] == [((0, 1), (2, 3), (4,))] * 3
    assert [j.siblings for j in on_gpu.jobs if j.view == "photos"] == [()]
    assert [j.key for j in on_gpu.jobs] == [j.key for j in on_cpu.jobs]  # siblings are no part of the key
