"""The gallery generator: safe names, escaped templates, the render cache, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from featgen.errors import FeatgenError
from featgen.site.mkdocs.tutorials import invalidate_stale_tutorials
from featgen.site.pages.templating import slug
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


HOSTILE = ['<img src=x onerror="alert(1)">', "conv\n# injected heading\n\n- item\n```", EVIL.replace("[x]", "x")]  # no glob


def test_pages_escape_hostile_layer_names(tmp_path):
    """Markup and line breaks in a layer name stay text: in the HTML pages (escaped), in the markdown
    index pages (entities: no tag, no new block), in titles, and in folder names (slugs)."""
    import json

    from site_data import CONFIG, TABLE, project

    from featgen.models.base import LayerInfo
    from featgen.site.pages.write import write_pages

    table = TABLE + [LayerInfo(name, "ReLU", (2, 2, 4), 4) for name in HOSTILE]
    config = CONFIG.replace("layers: [block1_conv1, block5_conv3]", "layers: " + json.dumps(["block1_conv1", *HOSTILE]))
    proj = project(tmp_path, units=1, config=config, table=table)
    write_pages(proj["plan"], proj["cache"], proj["docs"], pages_dir=proj["pages"], synthetic=True, workers=1)
    pages = [*proj["pages"].rglob("*.html"), *(proj["docs"] / "galleries").rglob("*.md")]
    assert len(pages) > 12
    for page in pages:
        text = page.read_text()
        assert "<img src=x" not in text and "<script>alert" not in text and "</title><script" not in text, page
        if page.suffix == ".md":  # a name can start no markdown block
            assert not any(line.startswith(("# injected", "- item", "```")) for line in text.splitlines()), page
    for name in HOSTILE:
        assert (proj["pages"] / "galleries" / "vgg16_hed" / "torch" / slug(name) / "unit-0" / "index.html").is_file()
    backend = (proj["docs"] / "galleries/vgg16_hed/torch/index.md").read_text()
    head = backend.split("\n---\n", 1)[0]
    assert head.startswith('---\ntitle: "') and not set("<>&") & set(head)
    assert f'href="{slug(HOSTILE[2])}/"' in backend and "| pool1 | MaxPooling2D | 16 × 16 × 64 | – |" in backend
    unit = (proj["pages"] / "galleries/vgg16_hed/torch" / slug(HOSTILE[0]) / "unit-0/index.html").read_text()
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; · unit 0" in unit


def test_unit_pages_show_each_rendered_view_and_no_other(tmp_path):
    from site_data import project

    from featgen.site.pages.write import write_pages

    for views, files in (("[regularized, naive, negative, diversity, photos, examples]",
                          {"regularized", "naive", "negative", "diversity", "photos", "examples"}), ("[regularized]", {"regularized"})):  # fmt: skip
        root = tmp_path / views.strip("[]").replace(", ", "-")
        proj = project(root, units=1, views=views)
        write_pages(proj["plan"], proj["cache"], proj["docs"], pages_dir=proj["pages"], synthetic=True, workers=1)
        unit = proj["pages"] / "galleries/vgg16_hed/torch/block1_conv1/unit-0"
        assert {p.stem for p in unit.glob("*.webp")} == files
        html = (unit / "index.html").read_text()
        for name in ("regularized", "naive", "negative", "diversity", "photos", "examples"):
            assert (f'src="{name}.webp"' in html) == (name in files), (views, name)
        assert 'class="fg-kernel"' in html  # the first layer shows its kernels whatever the views
        assert html.index('src="regularized.webp"') < html.index("</figure>")  # the hero first


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
    # optimization jobs are chunks of at most 64 units; forward-only and weights-only views take a layer a job
    from featgen.site import views

    assert max(len(j.units) for j in p.jobs if views.get(j.view).optimizes) == 64


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
