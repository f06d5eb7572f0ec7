"""The gallery generator: safe names, escaped templates, the render cache, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from featgen.errors import FeatgenError
from featgen.site.build import env, invalidate_stale_tutorials, slug
from featgen.site.cache import RenderCache, key_of
from featgen.site.config import get_profile


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", "<script>alert(1)</script>", "x\\y", "  "])
def test_slug_cannot_escape_or_inject(name, tmp_path):
    s = slug(name)
    assert "/" not in s and "\\" not in s and ".." not in s and "<" not in s and s not in ("", ".", "..")
    target = (tmp_path / s).resolve()
    assert target.parent == tmp_path.resolve()


def test_templates_escape_names():
    evil = '<img src=x onerror="alert(1)">'
    html = env().get_template("layer.md.j2").render(
        model="m", backend="torch", layer=evil, slug="x", type="Conv2d", shape=(4, 4, 2), channels=2, native=evil,
        units=[{"unit": 0, "start": 0.0, "final": 1.0}],
    )  # fmt: skip
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_cache_roundtrip_and_corruption_is_detected(tmp_path):
    cache = RenderCache(tmp_path)
    settings = {"model": "m", "layer": "l", "units": [0, 1], "steps": 3}
    key = key_of(settings)
    assert key == key_of(dict(reversed(list(settings.items()))))  # order-independent
    assert key != key_of({**settings, "steps": 4})
    data = {"images": np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)}
    cache.put(key, data, settings)
    np.testing.assert_array_equal(cache.get(key)["images"], data["images"])
    npz = next(tmp_path.rglob("data.npz"))
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    assert cache.get(key) is None
    assert cache.corrupt and key in cache.corrupt[0] and "checksum" in cache.corrupt[0]
    assert not npz.exists()  # removed, so the next build re-renders it


def test_unknown_profile_names_key_and_suggests():
    with pytest.raises(FeatgenError, match="unknown gallery profile 'quik'.*quick"):
        get_profile("quik")


def test_unknown_layer_in_config(lite0):
    from featgen.site.build import _layers
    from featgen.site.config import ModelGallery

    with pytest.raises(FeatgenError, match="no layer 'blocks.44'.*blocks.4"):
        _layers(lite0, ModelGallery("efficientnet_lite0", "torch", ("blocks.44",), 2))


def test_engine_change_invalidates_tutorial_checksums(tmp_path):
    gallery = tmp_path / "tutorials"
    gallery.mkdir()
    (gallery / "plot_a.py.md5").write_text("abc")
    assert invalidate_stale_tutorials(gallery)  # first time: no stamp yet
    assert not (gallery / "plot_a.py.md5").exists()
    (gallery / "plot_a.py.md5").write_text("abc")
    assert not invalidate_stale_tutorials(gallery)  # same engine: kept
    assert (gallery / "plot_a.py.md5").exists()
    (gallery / ".featgen-engine-hash").write_text("old")
    assert invalidate_stale_tutorials(gallery)
    assert not (gallery / "plot_a.py.md5").exists()


def test_full_profile_plan_counts_every_conv_layer():
    from featgen.site.build import plan

    rows = plan("full")
    lite = [r for r in rows if r["model"] == "efficientnet_lite0"]
    assert len(lite) > 40 and all(r["units"] == r["channels"] for r in rows)
    assert sum(r["units"] for r in rows if r["model"] == "vgg16_hed") == 64 * 2 + 128 * 2 + 256 * 3 + 512 * 6
