"""The benchmark scripts' own inputs: what they hand featgen must be what featgen reads."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench_gpu(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_gpu

    yield bench_gpu
    sys.modules.pop("bench_gpu", None)


@pytest.mark.parametrize("smoke", [False, True])
def test_the_gpu_script_writes_a_gallery_config_featgen_reads(bench_gpu, tmp_path, smoke):
    """The GPU script's gallery is the full profile's torch gallery of the model, views' options
    included (a smoke run: a few units and steps of two layers)."""
    from featgen.site.render.config import get_profile

    full = get_profile("full", str(ROOT / "galleries.yml"))
    want = next(g for g in full.galleries if g.model == "vgg16_hed" and g.backend == "torch")
    got = get_profile("g", str(bench_gpu.gallery_config("vgg", tmp_path, Namespace(smoke=smoke)))).galleries[0]
    if smoke:
        assert (got.units, got.steps, got.naive_steps, got.diversity) == (4, 4, 4, 2)
        assert got.layers == ("block1_conv1", "block3_conv1")
    else:
        assert got == want
