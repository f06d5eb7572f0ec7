"""The gallery generator: safe names, escaped templates, the render cache, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from featgen.errors import FeatgenError
from featgen.site.mkdocs.tutorials import invalidate_stale_tutorials
from featgen.site.pages.templating import render, slug
from featgen.site.render.cache import RenderCache
from featgen.site.render.config import get_profile
from featgen.site.render.jobs import cache_key


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", "<script>alert(1)</script>", "x\\y", "  "])
def test_slug_cannot_escape_or_inject(name, tmp_path):
    s = slug(name)
    assert "/" not in s and "\\" not in s and ".." not in s and "<" not in s and s not in ("", ".", "..")
    target = (tmp_path / s).resolve()
    assert target.parent == tmp_path.resolve()


EVIL = "</title><script>alert(1)</script>/../[x](javascript:y)"


def _layer_ctx(model, backend, layer, native):
    return {"model": model, "backend": backend, "layer": layer, "type": "Conv2d", "shape": (4, 4, 2), "channels": 2,
            "units": [{"unit": 0, "start": 0.1, "final": 1.2}], "native": native}  # fmt: skip


def _unit_ctx(layer, **kw):
    ctx = dict(model="m", backend="torch", layer=layer, unit=0, shape=(4, 4, 2), start=0.1, final=1.0, naive_final=0.5,
               naive=True, negative=True, diversity=4, kernel=True,
               examples={"top": [{"file": f"a/{j}.png", "activation": 3.0 - j} for j in range(3)],
                         "bottom": [{"file": f"b/{j}.png", "activation": -j} for j in range(3)], "scanned": 9}, photos=["chelsea", "coffee"], prev=None, next=1,
               steps=48, size=96, naive_steps=30)  # fmt: skip
    return {**ctx, **kw}


@pytest.mark.parametrize(
    "field,name,escaped",
    [("layer", '<img src=x onerror="alert(1)">', "&#60;img src=x"),
     ("layer", "conv\n# injected heading\n\n- item\n```", "conv&#10;&#35; injected heading&#10;&#10;- item&#10;&#96;&#96;&#96;"),
     ("model", "a\r\nb", "a&#13;&#10;b")],
)  # fmt: skip
def test_layer_page_escapes_hostile_names(field, name, escaped):
    """Markup and line breaks in a name become entities: no tag, no new markdown block, no extra line."""
    ctx = _layer_ctx("m", "torch", "conv", "conv")
    page = render("layer.md.j2", **{**ctx, field: name, **({"native": name} if field == "layer" else {})})
    assert escaped in page
    assert "<img src=x" not in page
    assert not any(line.startswith(("# injected", "- item", "```")) for line in page.splitlines())
    assert page.count("\n") == render("layer.md.j2", **ctx).count("\n")


def test_unit_page_shows_every_view():
    html = render("unit.md.j2", **_unit_ctx("blocks.4"))
    for src in ["regularized.png", "naive.png", "negative.png", "kernel.png", "curve.png", "photos.jpg"]:
        assert f'src="{src}"' in html
    assert all(f'src="diversity-{j}.png"' in html for j in range(4))
    assert all(f'src="top-{j}.jpg"' in html and f'src="bottom-{j}.jpg"' in html for j in range(3))
    assert "a/2.png · 1.00" in html.replace("&#95;", "_") and "of 9 scanned photos" in html
    assert html.index("regularized.png") < html.index("naive.png")  # the large one first
    assert 'width="384"' in html.split("regularized.png")[1].split(">")[0]
    plain = render("unit.md.j2", **_unit_ctx("blocks.4", kernel=False, negative=False, diversity=0, naive=False,
                                             photos=[], examples=None))  # fmt: skip
    for src in ["kernel.png", "negative.png", "diversity-0", "naive.png", "photos.jpg", "top-0", "bottom-0"]:
        assert src not in plain, src


def test_pages_with_two_backends_and_hostile_layer_names(tmp_path):
    from featgen.models.base import LayerInfo
    from featgen.site.pages.templating import write_page as _write
    from featgen.site.pages.write import write_index_pages

    table = [LayerInfo("features.0", "Conv2d", (224, 224, 64), 64), LayerInfo(EVIL, "Conv2d", (4, 4, 2), 2),
             LayerInfo("pool", "MaxPool2d", (7, 7, 512), None)]  # fmt: skip
    galleries = {"vgg16_hed": [
        {"backend": "torch", "source": "torch source", "input_size": 224, "table": table, "aliases": {"features.0": "block1_conv1"},
         "layers": [_layer_ctx("vgg16_hed", "torch", "block1_conv1", "features.0"), _layer_ctx("vgg16_hed", "torch", EVIL, EVIL)]},
        {"backend": "tensorflow", "source": "keras source", "input_size": 224, "aliases": {},
         "table": [LayerInfo("block1_conv1", "Conv2D", (224, 224, 64), 64)],
         "layers": [_layer_ctx("vgg16_hed", "tensorflow", "block1_conv1", "block1_conv1")]},
    ]}  # fmt: skip
    write_index_pages(tmp_path, galleries, get_profile("quick"))
    layer_dir = tmp_path / "vgg16_hed" / "torch" / slug(EVIL)
    _write("layer.md.j2", layer_dir / "index.md", **_layer_ctx("vgg16_hed", "torch", EVIL, EVIL))
    _write("unit.md.j2", layer_dir / "unit-0" / "index.md", **_unit_ctx(EVIL))
    pages = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.md")}
    assert set(pages) == {"index.md", "vgg16_hed/index.md", "vgg16_hed/torch/index.md", "vgg16_hed/tensorflow/index.md",
                          f"vgg16_hed/torch/{slug(EVIL)}/index.md", f"vgg16_hed/torch/{slug(EVIL)}/unit-0/index.md"}  # fmt: skip
    for name, text in pages.items():
        head, body = text.split("\n---\n", 1) if text.startswith("---") else ("", text)
        assert "<script" not in body and "</title" not in body and "](javascript" not in body, name
        if head:  # the front-matter title: quoted, with no character that could become markup
            assert head.startswith('---\ntitle: "') and not set("<>&") & set(head), head
    index, model = pages["index.md"], pages["vgg16_hed/index.md"]
    assert 'class="grid cards" markdown' in index and "(vgg16_hed/torch/index.md)" in index
    assert "(vgg16_hed/tensorflow/block1_conv1/index.md)" in index
    assert "(torch/index.md)" in model and "(tensorflow/index.md)" in model
    torch_page = pages["vgg16_hed/torch/index.md"]
    assert "also in [tensorflow](../tensorflow/index.md)" in torch_page
    assert "- [**block1&#95;conv1**](block1_conv1/index.md) — Conv2d, 4 × 4 × 2" in torch_page  # clickable list
    assert f"]({slug(EVIL)}/index.md)" in torch_page and "| pool | MaxPool2d | 7 × 7 × 512 | – |" in torch_page


def test_slugs_of_different_names_differ():
    assert slug("blocks.4") == "blocks.4" and slug("block1_conv1") == "block1_conv1"
    assert len({slug(n) for n in ["a/b", "a_b", "a\\b", "a<b", "a..b", "a_.b"]}) == 6


def test_cache_keys_and_entry_bytes_repeat(tmp_path, monkeypatch):
    import time

    settings = {"model": "m", "layer": "l", "units": [0, 1], "steps": 3}
    key = cache_key(settings)
    assert key == cache_key(dict(reversed(list(settings.items()))))  # order-independent
    assert key != cache_key({**settings, "steps": 4})
    cache = RenderCache(tmp_path)
    arrays = {"images": np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3), "final": np.ones(1, np.float32)}
    cache.put(key, arrays, settings)
    first = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    now, localtime = time.time, time.localtime  # a write a day later must not change the bytes (zip timestamps)
    monkeypatch.setattr(time, "time", lambda: now() + 86400)
    monkeypatch.setattr(time, "localtime", lambda secs=None: localtime(now() + 86400 if secs is None else secs))
    cache.put(key, arrays, settings)
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == first


@pytest.mark.parametrize(
    "corruption,reason",
    [("a flipped data byte", "checksum"), ("[1, 2]", "sha256"), ('"text"', "sha256"), ("{}", "sha256"), ("{", "Expecting")],
)
def test_a_corrupt_cache_entry_is_detected_removed_and_rewritten(tmp_path, corruption, reason):
    """A flipped byte in data.npz fails the checksum; meta.json that is no object with a checksum
    (a list, a string, an empty object, broken JSON) makes the entry corrupt too."""
    cache = RenderCache(tmp_path)
    key = cache_key({"model": "m", "layer": "l", "units": [0, 1]})
    data = {"images": np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)}
    cache.put(key, data, {"view": "naive"})
    np.testing.assert_array_equal(cache.get(key)["images"], data["images"])
    entry = tmp_path / key[:2] / key
    if corruption == "a flipped data byte":
        raw = bytearray((entry / "data.npz").read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (entry / "data.npz").write_bytes(bytes(raw))
    else:
        (entry / "meta.json").write_text(corruption)
    assert cache.get(key) is None
    assert len(cache.corrupt) == 1 and key in cache.corrupt[0] and reason in cache.corrupt[0], cache.corrupt
    assert not entry.exists()  # removed, so the next build renders it again
    cache.put(key, data, {"view": "naive"})
    np.testing.assert_array_equal(cache.get(key)["images"], data["images"])


def test_unknown_profile_names_key_and_suggests():
    with pytest.raises(FeatgenError, match="unknown gallery profile 'quik'.*quick"):
        get_profile("quik")


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


@pytest.mark.slow
def test_full_profile_plan_counts_every_conv_layer(tmp_path, request):
    from featgen.site.render.plan import plan

    shared = {("efficientnet_lite0", "torch"): "lite0", ("vgg16_hed", "torch"): "hed_torch",
              ("efficientnet_lite0", "tensorflow"): "lite0_tf", ("vgg16_hed", "tensorflow"): "hed_tf"}  # fmt: skip

    def loader(spec, backend, device, precision):  # the session's models: layer shapes do not depend on the device
        assert precision == "float32", precision
        return request.getfixturevalue(shared[spec, backend])

    p = plan("full", RenderCache(tmp_path), loader=loader)
    rows = [(lp.model, lp.backend, len(lp.units), lp.info.channels) for lp in p.layers]
    lite = [r for r in rows if r[0] == "efficientnet_lite0"]
    assert len(lite) > 40 and all(n == c for _, _, n, c in rows)
    for backend in {r[1] for r in rows if r[0] == "vgg16_hed"}:  # torch, and tensorflow where configured
        vgg = sum(n for m, b, n, _ in rows if m == "vgg16_hed" and b == backend)
        assert vgg == 64 * 2 + 128 * 2 + 256 * 3 + 512 * 6, backend
    # optimization jobs are chunks of at most 64 units; the forward-only photo scan is one job per layer
    assert max(len(j.units) for j in p.jobs if j.view != "photos") == 64


def _fake_script(tmp_path):
    """The parts of mkdocs-gallery's GalleryScript that a scraper and figure_md_or_html use."""
    from types import SimpleNamespace

    images = tmp_path / "images"
    images.mkdir()
    paths = (images / f"mkd_glr_plot_x_{n:03}.png" for n in range(1, 100))
    gallery = SimpleNamespace(generated_dir=tmp_path, all_info=SimpleNamespace(mkdocs_docs_dir=tmp_path))
    return SimpleNamespace(run_vars=SimpleNamespace(image_path_iterator=paths), gallery=gallery, gallery_conf={})


def test_scraper_writes_shown_images_and_returns_markdown(tmp_path):
    pytest.importorskip("mkdocs_gallery")
    from PIL import Image

    import featgen
    from featgen.site.mkdocs.scraper import _get_sg_image_scraper, featgen_scraper

    assert _get_sg_image_scraper() is featgen_scraper  # how mkdocs-gallery finds it by module name
    script = _fake_script(tmp_path)
    assert featgen_scraper(None, script) == ""  # nothing shown: no image, no markdown
    featgen.show_image(np.linspace(0, 1, 12 * 10).reshape(12, 10), title='ramp "1" <b>[x]</b>')
    md = featgen_scraper(None, script)
    first = tmp_path / "images" / "mkd_glr_plot_x_001.png"
    assert Image.open(first).size == (10, 12) and Image.open(first).mode == "RGB"
    assert md.startswith("![ramp &quot;1&quot; &lt;b&gt;(x)&lt;/b&gt;](./images/mkd_glr_plot_x_001.png)")
    featgen.show_image(Image.new("RGB", (5, 4), (255, 0, 0)), title="red")
    featgen.show_image(np.zeros((3, 3, 3), np.uint8))
    md = featgen_scraper(None, script)
    assert np.asarray(Image.open(tmp_path / "images" / "mkd_glr_plot_x_002.png"))[0, 0].tolist() == [255, 0, 0]
    assert (tmp_path / "images" / "mkd_glr_plot_x_003.png").exists()
    assert 'alt="red" src="../images/mkd_glr_plot_x_002.png"' in md and "mkd_glr_plot_x_003.png" in md
    assert featgen_scraper(None, script) == ""  # the queue was drained


def test_show_image_rejects_out_of_range_floats():
    import featgen

    with pytest.raises(FeatgenError, match=r"\[0, 1\]"):
        featgen.show_image(np.full((4, 4), 3.0))


TUTORIAL = '''"""
# Tiny

A tutorial for the build test.
"""

# %%
import numpy as np

import featgen

x = 1
featgen.show_image(np.zeros((4, 4)))
{tail}
'''


def _mkdocs(project, tail: str):
    import os
    import subprocess
    import sys

    (project / "gallery_src" / "plot_tiny.py").write_text(TUTORIAL.format(tail=tail))
    env = {**os.environ, "MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.slow
def test_failing_tutorial_fails_the_build_names_its_line_and_leaves_no_page(tmp_path):
    pytest.importorskip("mkdocs_gallery")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n")
    (tmp_path / "gallery_src").mkdir()
    (tmp_path / "gallery_src" / "README.md").write_text("# Tutorials\n")
    (tmp_path / "mkdocs.yml").write_text(f"""site_name: t
docs_dir: docs
strict: true
hooks: [{root / "featgen/site/mkdocs/hooks.py"}]
plugins:
  - gallery:
      examples_dirs: [gallery_src]
      gallery_dirs: [docs/tutorials]
      filename_pattern: "/plot_"
      abort_on_example_error: true
      image_scrapers: [matplotlib, featgen.site.mkdocs.scraper]
nav: [{{Home: index.md}}, {{Tutorials: tutorials}}]
""")
    page = tmp_path / "docs" / "tutorials" / "plot_tiny.md"
    ok = _mkdocs(tmp_path, "")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert page.exists() and "mkd_glr_plot_tiny_001.png" in page.read_text()
    assert (tmp_path / "site" / "tutorials" / "images" / "mkd_glr_plot_tiny_001.png").exists()
    bad = _mkdocs(tmp_path, 'raise ValueError("tutorial broke here")')
    assert bad.returncode != 0
    line = TUTORIAL.splitlines().index("{tail}") + 1
    assert f'{tmp_path / "gallery_src" / "plot_tiny.py"}", line {line}' in bad.stderr
    assert "ValueError: tutorial broke here" in bad.stderr
    assert not page.exists() and not list((tmp_path / "docs" / "tutorials").rglob("mkd_glr_plot_tiny_*"))


def test_kernel_shown_for_the_first_conv_and_its_relu_only(lite0, hed_torch):
    from featgen.site.render.plan import model_info

    def stem(model):
        info = model_info(model.spec, model.backend.name, "float32", None, loader=lambda *a: model)
        return info.stem, info.kernels.shape

    names, shape = stem(lite0)
    assert shape == (3, 3, 3, 32) and "conv_stem" in names and "blocks.2" not in names
    names, shape = stem(hed_torch)
    assert shape == (3, 3, 3, 64) and hed_torch.resolve_layer("block1_conv1") in names  # a Keras name: the ReLU after the conv
    assert hed_torch.resolve_layer("block1_conv2") not in names
