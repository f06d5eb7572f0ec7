"""Gallery pages: verdicts, reproduction, navigation, hooks (plain data; no model unless a test names one)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from featgen.site.pages.navigation import image_correlation
from featgen.site.pages.verdict import floor_of, negative_verdict, share_percent, unit_verdict
from featgen.site.views.diversity import similarity


# --- verdict ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "final", "naive", "status"),
    [
        (0.015, -0.03, 93.18, "failed"),  # efficientnet_lite0 conv_stem unit 0 at 96 px, 48 steps
        (0.015, 4.89, 91.82, "failed"),  # unit 1: 5 % of naive
        (0.0, 30.0, 91.82, "weak"),  # 33 %: between a quarter and a half
        (0.1, 60.0, 100.0, "ok"),
        (0.2, 104.195, 80.0, "ok"),  # beats naive
        (0.0, 0.0, 0.0, "dead"),  # vgg16_hed block5_conv3 unit 0: zero at the start and it stays there
        (0.5, 0.4, 0.45, "failed"),  # neither method raised it
        (0.5, 2.0, 0.4, "ok"),  # naive went nowhere, regularized did
    ],
)
def test_unit_verdict_status(start, final, naive, status):
    v = unit_verdict(start, final, naive)
    assert v.status == status, v
    assert v.label and v.detail


def test_the_verdict_is_decided_on_the_number_its_sentence_states():
    """vgg16_hed/tensorflow/block3_conv1/unit-2 said "final < 25 % of naive" at 229/885 = 26 %: the
    status now follows the one quantity the sentence gives (the share of naive ascent's gain), in
    whole percent, so a badge and its numbers cannot disagree at a threshold."""
    v = unit_verdict(0.0, 229.0, 885.0)
    assert (v.status, v.label) == ("weak", "partly converged") and "26 % of naive ascent's gain" in v.detail
    assert share_percent(0.0, 229.0, 885.0) == 26
    for final in np.linspace(0, 120, 241):  # across both thresholds, with a start
        v = unit_verdict(10.0, float(final), 100.0)
        pct = int(v.detail.split(" % of naive")[0].rsplit(" ", 1)[1])
        assert pct == round((final - 10.0) / 90.0 * 100)
        assert v.status == ("failed" if pct < 25 else "weak" if pct < 50 else "ok"), (final, v)
        assert "<" not in v.label and "%" not in v.label  # the words of the badge name no number


def test_unit_verdict_labels_state_the_threshold_and_numbers():
    v = unit_verdict(0.015, 4.89, 91.82)
    assert v.label == "did not converge"
    assert "4.89" in v.detail and "91.8" in v.detail and "5 %" in v.detail and "under 25 %" in v.detail
    assert unit_verdict(0.0, 0.0, 0.0, floor=0.0).label == "dead at the start image"


def test_unit_verdict_dead_needs_the_floor_or_zeros():
    # after a ReLU, a unit at exactly 0 everywhere is dead; a unit that regularized woke up is not
    assert unit_verdict(0.0, 0.0, 0.0, floor=0.0).status == "dead"
    assert unit_verdict(0.0, 3.0, 0.0, floor=0.0).status == "ok"
    # a linear unit at -2 that nothing moved is not "dead" (it has a gradient), it failed
    assert unit_verdict(-2.0, -2.0, -2.0).status == "failed"


def test_unit_verdict_non_finite():
    assert unit_verdict(0.0, math.nan, 3.0).status == "nan"


def test_negative_verdict_relu_floor():
    v = negative_verdict(0.0, 0.0, floor=floor_of("ReLU"))
    assert (v.status, v.label) == ("floor", "cannot go below 0 (ReLU)")
    # no type known: a unit that starts at 0 and cannot be pushed below is clipped too
    assert negative_verdict(0.0, 0.0).status == "floor"
    assert negative_verdict(0.3, -1.5).status == "ok"
    assert negative_verdict(0.3, 0.5).status == "failed"
    assert negative_verdict(-0.2, -0.1).status == "failed"


def test_floor_of_types():
    assert floor_of("ReLU6") == 0.0 and floor_of("relu") == 0.0
    assert floor_of("Conv2d") is None and floor_of(None) is None


def test_the_views_verdicts_on_a_unit():
    """The regularized verdict takes naive ascent's final on its clipped image where it has one; the
    negative verdict knows the ReLU floor; diversity measures how alike its images are."""
    from featgen.site import views

    reg, neg, div = (views.get(n) for n in ("regularized", "negative", "diversity"))
    stem = {"regularized": {"start": 0.015, "final": 15.44}, "naive": {"final": 91.82, "reference": 91.82}}
    assert reg.verdict(stem, "Conv2d").status == "failed"  # 17 % of the unclipped naive final
    stem["naive"]["reference"] = 16.33  # conv_stem unit 1: naive final on its image clipped to [0, 1]
    assert reg.verdict(stem, "Conv2d").status == "ok"
    assert reg.verdict({"regularized": {"start": 0, "final": 1}}, None) is None  # no naive: nothing to judge by
    assert neg.verdict({"negative": {"start": 0.0, "final": 0.0}}, "ReLU").label == "cannot go below 0 (ReLU)"
    flat = np.zeros((4, 8, 8, 3), np.uint8) + np.array([0, 255, 255], np.uint8)  # four solid cyan squares
    assert similarity(flat) == 1.0
    v = div.verdict({"diversity": {"similarity": similarity(flat), "count": 4}}, "ReLU")
    assert (v.status, v.label) == ("failed", "images alike") and "1.00" in v.detail
    rng = np.random.default_rng(0)
    apart = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    assert abs(similarity(apart)) < 0.2 and div.verdict({"diversity": {"similarity": similarity(apart), "count": 4}}, None).label == "pushed apart"


# --- reproduction ----------------------------------------------------------------------------------
def test_the_objective_curve_passes_within_half_a_pixel_of_each_value():
    """The curve is a relative path: its moves, summed, land within half a pixel of each (kept) value's
    place, from the first step at the left axis to the last at the right, the highest at the top."""
    import re

    from featgen.site.pages.files import curve_svg

    values = np.log1p(np.arange(512.0)) + np.random.default_rng(0).normal(0, 0.1, 512)
    svg = curve_svg(list(values))
    d = re.findall(r'<path d="(M[^"]+)" fill="none" stroke="currentColor" stroke-width', svg)[0]
    start, moves = d[1:].split("l")
    numbers = [int(n) for n in re.findall(r"-?\d+", moves)]
    points = np.cumsum([[int(n) for n in start.split()], *zip(numbers[::2], numbers[1::2])], axis=0)
    kept = np.unique(np.r_[np.linspace(0, 511, 90).round().astype(int), 511])  # every n-th step, as drawn
    assert len(points) == len(kept)
    want_x = 46 + kept / 511 * (360 - 46 - 8)
    drawn = values[kept]  # the axis spans the drawn values
    want_y = 8 + (drawn.max() - drawn) / (drawn.max() - drawn.min()) * (160 - 8 - 28)
    assert np.abs(points[:, 0] - want_x).max() <= 0.5 and np.abs(points[:, 1] - want_y).max() <= 0.5
    assert (points[0, 0], points[-1, 0]) == (46, 352) and points[:, 1].min() == 8


def test_reproduction_states_every_setting_and_a_command():
    from featgen.site.pages.reproduce import reproduction

    rep = reproduction({"model": "vgg16_hed", "backend": "tensorflow", "layer": "block1_conv1", "size": 96,
                        "steps": 48, "seed": 0}, 3)  # fmt: skip
    assert rep["command"] == ("featgen render vgg16_hed --backend tensorflow --precision float32 --layer block1_conv1 "
                              "--units 3 --method regularized --size 96 --steps 48 --seed 0 --transforms lucid")  # fmt: skip
    assert "unit-0003.png" in rep["note"]
    assert "units=[3], method='regularized', size=96, steps=48, seed=0, lr=0.05, param='fourier', " \
           "decorrelate=True, transforms='lucid')" in rep["python"]  # fmt: skip
    assert "precision='float32'" in rep["python"] and f"featgen {rep['version']}" in rep["python"]
    naive = reproduction({"model": "m", "backend": "torch", "layer": "l", "method": "naive", "size": 96}, [0, 1, 2, 3])
    assert "--units 0:4" in naive["command"] and "--transforms" not in naive["command"]
    assert "lr=10.0" in naive["python"] and "param=" not in naive["python"] and "steps=30" in naive["python"]


def test_the_command_line_states_every_recipe_setting_and_renders_it(capsys, tmp_path):
    """The first-layer recipe (pixels, plain colour, lr 0.1) as a command, run as it is: its settings
    reach the render (the sidecar records them)."""
    import json
    import shlex

    from featgen.cli import main
    from featgen.site.pages.reproduce import cli_command

    s = {"model": "efficientnet_lite0", "layer": "conv_stem", "lr": 0.1, "param": "pixel", "decorrelate": False,
         "size": 32, "steps": 2, "transforms": "none"}  # fmt: skip
    command, note = cli_command(s, 3, out=str(tmp_path / "out"))
    assert "--lr 0.1 --param pixel --no-decorrelate" in command and note == "writes unit-0003.png"
    assert main(shlex.split(command)[1:]) == 0
    recorded = json.loads((tmp_path / "out" / "render.json").read_text())["settings"]
    assert {k: recorded[k] for k in ("lr", "param", "decorrelate", "size", "steps")} == {
        "lr": 0.1, "param": "pixel", "decorrelate": False, "size": 32, "steps": 2}


def test_the_shown_python_call_gives_the_picture_of_a_batch(lite0, device, tmp_path, monkeypatch):
    """Run the page's code for one unit; its PNG is the picture that unit got in a batch of four (the
    contract: a batch of another size rounds its convolutions differently, so not the bytes). The
    page's code picks its own device: here it loads on the device under test, as the batch did."""
    import functools
    import io
    from contextlib import redirect_stdout

    import featgen

    monkeypatch.setattr(featgen, "load_model", functools.partial(featgen.load_model, device=device))
    from featgen.site.pages.reproduce import python_call

    settings = {"model": "efficientnet_lite0", "backend": "torch", "layer": "blocks.1", "size": 32, "steps": 3,
                "seed": 5, "transforms": "none"}  # fmt: skip
    batch = featgen.visualize(lite0, "blocks.1", units=[0, 1, 2, 3], method="regularized", size=32, steps=3, seed=5,
                              transforms="none", progress=False)  # fmt: skip
    featgen.save_image(batch.images[2], tmp_path / "batch.png")
    out = tmp_path / "alone.png"
    code = python_call(settings, 2, out=str(out))
    with redirect_stdout(io.StringIO()):
        exec(compile(code, "<page>", "exec"), {})  # noqa: S102 (the code under test is the page's)
    alone, batch = (featgen.load_image(p) for p in (out, tmp_path / "batch.png"))
    assert np.abs(alone - batch).mean() < 2e-3 and np.abs(alone - batch).max() < 0.05
    assert image_correlation(alone, batch) >= 0.99


def test_resolved_defaults_match_what_visualize_records(lite0):
    import featgen
    from featgen.site.pages.reproduce import resolve

    for method in ("regularized", "naive"):
        r = featgen.visualize(lite0, "blocks.0", units=[0], method=method, size=32, steps=1, transforms="none",
                              progress=False)  # fmt: skip
        mine = resolve({"model": "efficientnet_lite0", "layer": "blocks.0", "method": method, "size": 32, "steps": 1,
                        "transforms": "none"})  # fmt: skip
        for k in ("lr", "param", "decorrelate", "precision", "backend", "seed"):
            assert mine.get(k) == r.settings[k], (method, k)


# --- the early-layer recipe --------------------------------------------------------------------------
# Early layers respond to pixel-scale patterns (conv_stem has stride 2: its best image alternates every
# pixel) that jitter and the 1/f Fourier scale wash out within the quick budget; plain pixels without
# transforms reach them. These are visualize's own arguments; the galleries use them for these layers.
EARLY_LAYER_RECIPE = {"param": "pixel", "decorrelate": False, "transforms": "none", "lr": 0.1}


def _naive_on_valid_image(model, layer, units, size, monkeypatch):
    """The naive final measured on its image clipped to [0, 1] (naive ascent leaves that range: its raw
    pixels reach about -4 and 5, so its reported final is out of reach of any real image)."""
    import numpy as np

    import featgen
    import featgen.vis.render as render_mod
    from featgen.vis import objectives

    raw = {}
    keep = render_mod.deprocess
    monkeypatch.setattr(render_mod, "deprocess", lambda x, crop=25: (raw.setdefault("x", np.asarray(x)), keep(x, crop))[1])
    naive = featgen.visualize(model, layer, units=units, method="naive", size=size, steps=30, progress=False)
    monkeypatch.setattr(render_mod, "deprocess", keep)
    be, name = model.backend, model.resolve_layer(layer)
    o = objectives.channel(name, units, border=2)  # the naive objective: no 2-pixel border
    with be.no_grad():
        out = be.forward(model, be.asarray(np.clip(raw["x"], 0, 1).astype(np.float32)), capture=o.layers)
        valid = be.to_numpy(o(be, out.activations, out.logits))
    # what the gallery shows as "naive, final on its image clipped to [0, 1]" is that same number
    np.testing.assert_allclose(naive.valid_final_activation, valid, rtol=1e-4, atol=1e-4)
    return naive.final_activation, valid


@pytest.mark.parametrize(("fixture", "layer"), [("lite0", "conv_stem"), ("hed_torch", "block1_conv1")])
@pytest.mark.slow
def test_early_layer_recipe_reaches_half_of_naive(fixture, layer, request, monkeypatch):
    import featgen

    model = request.getfixturevalue(fixture)
    units, size = [0, 1, 2, 3], 48
    naive_raw, naive_valid = _naive_on_valid_image(model, layer, units, size, monkeypatch)
    r = featgen.visualize(model, layer, units=units, method="regularized", size=size, steps=48, progress=False,
                          **EARLY_LAYER_RECIPE)  # fmt: skip
    assert (naive_valid < naive_raw).all()  # the clipped image is the fair reference
    assert (r.final_activation >= 0.5 * naive_valid).all(), (r.final_activation, naive_valid, naive_raw)


# --- navigation and the pages built from plain data ----------------------------------------------------
def test_neighbours_and_pairs():
    from featgen.site.pages.navigation import neighbours, shared_layers

    layers = ["block1_conv1", "block3_conv1", "block5_conv3"]
    assert neighbours(layers, "block1_conv1") == (None, "block3_conv1")
    assert neighbours(layers, "block3_conv1") == ("block1_conv1", "block5_conv3")
    assert neighbours([0, 1, 2, 3], 3) == (2, None)
    assert shared_layers({"torch": layers, "tensorflow": ["block5_conv3", "block1_conv1"]}) == ["block1_conv1", "block5_conv3"]
    assert shared_layers({"torch": layers}) == []


def test_image_correlation_numbers():
    import numpy as np

    from featgen.site.pages.navigation import compare_units, image_correlation

    rng = np.random.default_rng(0)
    a = rng.random((8, 8, 3))
    assert image_correlation(a, a) == pytest.approx(1.0)
    assert image_correlation(a, 1.0 - a) == pytest.approx(-1.0)
    assert image_correlation(a, 0.5 * a + 0.2) == pytest.approx(1.0)
    b = a + rng.normal(0, a.std(), a.shape)  # noise of equal variance: r = 1/sqrt(2) in expectation
    assert image_correlation(a, b) == pytest.approx(2**-0.5, abs=0.1)
    assert math.isnan(image_correlation(np.zeros((4, 4, 3)), a[:4, :4]))
    with pytest.raises(ValueError, match="differ in size"):
        image_correlation(a, a[:4])
    rows = compare_units(np.stack([a, a]), np.stack([a, 1 - a]), [5, 9])
    assert [r["unit"] for r in rows] == [5, 9] and rows[1]["correlation"] == pytest.approx(-1.0)


# --- the pages of a tiny synthetic gallery ---------------------------------------------------------------
def _write(proj: dict, **kw):
    from featgen.site.pages.write import write_pages

    kw.setdefault("workers", 1)  # one process: a worker's start costs more than these tiny layers
    return write_pages(proj["plan"], proj["cache"], proj["docs"], pages_dir=kw.pop("pages_dir", proj["pages"]),
                       synthetic=kw.pop("synthetic", True), **kw)  # fmt: skip


def _page(root, rel: str) -> str:
    return (root / rel).read_text()


def _visible(page: str) -> str:
    """The text a reader sees: no tags, scripts or styles, entities decoded."""
    import html
    import re

    body = page.split("<body", 1)[-1]
    body = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_a_layer_written_in_parts_is_the_layer_written_whole(tmp_path, monkeypatch):
    """Workers write a layer's units in parts (a rebuild of one layer uses every core); the parts,
    each with its own overview sheets, give the bytes of the layer written in one go."""
    from site_data import project

    from featgen.site.pages import layer
    from featgen.site.pages.write import _site

    proj = project(tmp_path / "p", units=5)
    monkeypatch.setattr(layer, "SHEET_COLUMNS", 2)  # sheets of 2 units, so that 5 units make 3 parts
    monkeypatch.setattr(layer, "SHEET_UNITS", 2)
    monkeypatch.setattr(layer, "PREVIEW", 2)  # the units of the preview strip: the first part's
    lp = proj["plan"].layers[0]
    info = proj["plan"].models[(lp.model, lp.backend)]
    site = _site(proj["plan"], proj["docs"], True)
    whole = layer.write_layer(lp, info, proj["cache"], tmp_path / "whole", site)
    ranges = layer.unit_parts(lp, 1)
    assert ranges == [(0, 2), (2, 4), (4, 5)]
    parts = [layer.write_units(lp, info, proj["cache"], tmp_path / "parts", site, a, b) for a, b in ranges]
    split = layer.finish_layer(lp, tmp_path / "parts", site, parts)
    assert sorted(split.files) == sorted(whole.files) and "sheet-2.webp" in whole.files
    assert (split.summary, split.numerics) == (whole.summary, whole.numerics)
    assert sum(whole.numerics.values()) == sum(len(jobs) for jobs in lp.jobs.values())  # each entry counted once
    for rel in whole.files:
        assert (tmp_path / "parts" / rel).read_bytes() == (tmp_path / "whole" / rel).read_bytes(), rel


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from site_data import project

    proj = project(tmp_path_factory.mktemp("tiny"))
    stats = _write(proj, workers=2)
    return proj, stats, proj["pages"] / "galleries"


def test_pages_of_a_gallery_link_neighbours_twins_and_both_backends(built):
    proj, stats, out = built
    assert (stats.layers, stats.units, stats.written) == (4, 12, 4)
    unit = _page(out, "vgg16_hed/torch/block1_conv1/unit-1/index.html")
    for href in ('href="../unit-0/" rel="prev"', 'href="../unit-2/" rel="next"', 'href="../../block5_conv3/"',
                 'href="../../../tensorflow/block1_conv1/unit-1/"', 'href="../../../compare/block1_conv1/#unit-1"'):  # fmt: skip
        assert href in unit, href
    assert "<title>block1_conv1 · unit 1 · vgg16_hed (torch) - tiny</title>" in unit
    assert '<link rel="next" href="../unit-2/">' in unit  # the theme's keyboard navigation ("n")
    # the sidebar: every model and backend, and the layers of this one, this layer marked
    assert 'href="../../block5_conv3/">block5_conv3</a>' in unit and 'aria-current="page">block1_conv1</a>' in unit
    assert "featgen.visualize(model, &#39;block1_conv1&#39;, units=[1]" in unit
    layer = _page(out, "vgg16_hed/tensorflow/block5_conv3/index.html")
    assert 'href="../block1_conv1/" rel="prev"' in layer and 'href="../../compare/block5_conv3/"' in layer
    assert 'href="../../torch/block5_conv3/"' in layer and "--units 0:3" in layer
    for name in ("index.md", "vgg16_hed/index.md", "vgg16_hed/torch/index.md", "vgg16_hed/tensorflow/index.md"):
        assert (proj["docs"] / "galleries" / name).is_file(), name
    backend = (proj["docs"] / "galleries/vgg16_hed/torch/index.md").read_text()
    assert 'href="block5_conv3/"' in backend and 'src="block5_conv3/preview.webp"' in backend


def test_compare_pages_show_each_pair_side_by_side_and_label_both(built):
    """A compare page said "torch on the left, TensorFlow on the right" over pairs stacked vertically
    with no label: each pair is now one row of two linked images, each labelled with its backend."""
    import re

    _, _, out = built
    page = _page(out, "vgg16_hed/compare/block5_conv3/index.html")
    pairs = re.findall(r'<figure class="fg-pair" id="unit-(\d+)"><div class="fg-pair-images">(.*?)</div><figcaption>unit \d+: r = ([-\d.]+)', page)
    assert [u for u, _, _ in pairs] == ["0", "1", "2"]
    for u, images, r in pairs:
        assert re.findall(r'<span class="fg-side">(\w+)</span>', images) == ["torch", "tensorflow"]
        assert images.index(f"../../torch/block5_conv3/unit-{u}/regularized.webp") < images.index(f"../../tensorflow/block5_conv3/unit-{u}/")
        assert -1 <= float(r) <= 1
    css = (Path(__file__).resolve().parents[1] / "docs/css/featgen.css").read_text()
    assert ".fg-pair-images { display: flex; flex-wrap: nowrap;" in css


def test_a_unit_whose_diversity_images_are_one_picture_says_so(built):
    """vgg16_hed block1_conv1 units 1 and 2 showed four identical squares under "pushed apart from
    each other": the images' mean pairwise correlation is measured and shown as a verdict."""
    _, _, out = built
    alike = _visible(_page(out, "vgg16_hed/torch/block1_conv1/unit-1/index.html"))  # synthetic: unit 1 collapses
    assert "images alike" in alike and "mean pairwise correlation 1.00" in alike and "pushed apart" not in alike
    apart = _visible(_page(out, "vgg16_hed/torch/block1_conv1/unit-0/index.html"))
    assert "pushed apart" in apart and "images alike" not in apart
    layer = _visible(_page(out, "vgg16_hed/torch/block1_conv1/index.html"))
    assert "diversity: images alike: 1" in layer


def test_badges_state_the_number_they_decide_on_and_layers_use_the_same_words(built):
    import re

    from featgen.site.pages.verdict import share_percent

    _, _, out = built
    for page in sorted(out.glob("vgg16_hed/*/*/unit-*/index.html")):
        html = page.read_text()
        text = _visible(html)
        stats = dict(re.findall(r"<tr><td>([^<]+)</td><td>([-\d.]+)</td></tr>", html))
        label = re.search(r'<p class="fg-verdict"><span class="fg-badge fg-(\w+)">([^<]+)</span>', html)
        if "% of naive ascent's gain" in text:
            said = int(re.search(r"reached (-?\d+) % of naive ascent's gain", text).group(1))
            naive = float(stats.get("naive, final on its image clipped to [0, 1]", stats["naive, final"]))
            assert said == share_percent(float(stats["start image"]), float(stats["regularized, final"]), naive), page
            assert label.group(1) == ("failed" if said < 25 else "weak" if said < 50 else "ok"), page
        layer = (page.parent.parent / "index.html").read_text()
        unit = page.parent.name.split("-")[1]
        tile = re.search(rf'href="unit-{unit}/" class="fg-tile[^"]*" title="([^"]+)"', layer).group(1)
        assert tile == f"unit {unit}: {label.group(2)}", (tile, label.group(2))  # one vocabulary


def test_the_first_layer_kernel_is_drawn_in_the_networks_channel_order(built):
    """vgg16_hed reads blue, green, red: its first kernels are reordered before they are drawn in
    RGB (the torch block1_conv1 unit 1 swatch was yellow over a cyan image)."""
    import re

    proj, _, out = built
    kernels = proj["plan"].models[("vgg16_hed", "torch")].kernels
    page = _page(out, "vgg16_hed/torch/block1_conv1/unit-2/index.html")
    fills = re.findall(r'<rect x="0" y="0" width="16" height="16" fill="#([0-9a-f]{6})"/>', page)
    k = kernels[..., 2].astype(np.float64)[..., ::-1]  # the unit's kernel, blue-green-red reordered
    expected = np.clip(np.round((0.5 + 0.5 * k / np.abs(k).max())[0, 0] * 255), 0, 255).astype(int)
    assert fills == ["".join(f"{v:02x}" for v in expected)]
    assert "reads blue, green, red" in _visible(page)
    assert "fg-kernel" not in _page(out, "vgg16_hed/torch/block5_conv3/unit-2/index.html")  # not a first layer


def test_page_text_says_what_each_render_did(built):
    """No literal backticks in what a reader sees; the curve's caption mentions random transforms
    only where the render used them."""
    _, _, out = built
    for page in sorted(out.rglob("*.html")):
        assert "`" not in _visible(page.read_text()), page
    plain = _visible(_page(out, "vgg16_hed/torch/block1_conv1/unit-0/index.html"))  # transforms: none
    assert "uses no transforms" in plain and "random transforms" not in plain
    lucid = _visible(_page(out, "vgg16_hed/torch/block5_conv3/unit-0/index.html"))
    assert "measured under that step's random transforms" in lucid


def test_unit_page_layout_keeps_rows_and_captions_apart(built):
    """The native-size copy sat alone inside the hero's caption, and the 3 example crops broke 2 + 1:
    the copy is a figure of its own, the crops one image per row with a caption per column."""
    import re

    _, _, out = built
    page = _page(out, "vgg16_hed/torch/block1_conv1/unit-0/index.html")
    for caption in re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S):
        assert "<img" not in caption
    rows = re.findall(r'<div class="fg-examples" style="--n: (\d+)">(.*?)</div>', page, re.S)
    assert [kind for _, body in rows for kind in re.findall(r'class="fg-ex-(\w+)"', body)] == ["top", "bottom"]
    assert all(body.count("<small>") == int(n) == 2 for n, body in rows)
    assert 'src="examples.webp"' in page and "top.webp" not in page


def test_units_are_found_by_model_backend_layer_and_number(built):
    import json

    from featgen.site.pages.publish import search_entries

    proj, _, out = built
    rows = json.loads((out / "units.json").read_text())
    assert {(r["model"], r["backend"], r["layer"]) for r in rows} == {("vgg16_hed", b, x) for b in ("torch", "tensorflow")
                                                                   for x in ("block1_conv1", "block5_conv3")}  # fmt: skip
    assert all(r["units"] == [[0, 2]] and r["path"].endswith(f"/{r['layer']}/") for r in rows)
    entries = search_entries(proj["docs"])
    assert {e["title"] for e in entries} >= {"block5_conv3 · vgg16_hed · tensorflow", "block1_conv1 · vgg16_hed · torch"}
    assert all(e["location"].startswith("galleries/vgg16_hed/") for e in entries)
    js = (Path(__file__).resolve().parents[1] / "docs/js/featgen-search.js").read_text()
    assert "${r.model} · ${r.backend} · ${r.layer} · unit ${r.unit}" in js


def test_the_same_cache_gives_the_same_pages(built, tmp_path):
    """What repeats: the same cache gives the same pages, byte for byte (same Pillow), whether one
    process writes the layers or several side by side."""
    import shutil

    proj, _, out = built
    docs = tmp_path / "docs"
    shutil.copytree(proj["docs"], docs, ignore=shutil.ignore_patterns("galleries", ".*"))
    shutil.copy(proj["docs"].parent / "mkdocs.yml", tmp_path / "mkdocs.yml")
    _write({**proj, "docs": docs}, pages_dir=tmp_path / "pages", workers=1)
    again = tmp_path / "pages" / "galleries"
    mine = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    theirs = {p.relative_to(again).as_posix(): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert mine.keys() == theirs.keys() and all(mine[k] == theirs[k] for k in mine)


def test_a_rebuild_after_one_layer_changed_writes_only_that_layer(tmp_path):
    from site_data import CONFIG, project, replan

    from featgen.site.render import synthetic

    proj = project(tmp_path)
    assert _write(proj).written == 4
    out = proj["pages"] / "galleries"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".featgen-manifest.json"}
    assert _write(proj).written == 0  # nothing changed: nothing is read or written
    config = CONFIG.replace("layer_options: {{block1_conv1:", "layer_options: {{block5_conv3: {{steps: 7}}, block1_conv1:", 1)
    (tmp_path / "galleries.yml").write_text(config.format(units=3, views="[regularized, naive, negative, diversity, photos, examples]"))
    proj["plan"] = replan(tmp_path, proj["cache"])
    synthetic.fill(proj["plan"], proj["cache"])
    assert _write(proj).written == 1
    changed = {p.relative_to(out).as_posix() for p, t in before.items() if p.stat().st_mtime_ns != t}
    assert changed and all(c.startswith(("vgg16_hed/torch/block5_conv3/", "vgg16_hed/compare/block5_conv3/")) for c in changed)
    assert "vgg16_hed/compare/block5_conv3/index.html" in changed


def _steps_changed(tmp_path, proj):
    """The tiny project with block5_conv3 (torch and TensorFlow) rendered with one more step: its
    regularized, negative and diversity entries are new; its naive, photos and examples are not."""
    from site_data import CONFIG, VIEWS, replan

    from featgen.site.render import synthetic

    config = CONFIG.replace("layer_options: {{block1_conv1:", "layer_options: {{block5_conv3: {{steps: 7}}, block1_conv1:")
    (tmp_path / "galleries.yml").write_text(config.format(units=3, views=VIEWS))
    proj["plan"] = replan(tmp_path, proj["cache"])
    synthetic.fill(proj["plan"], proj["cache"])


def test_a_layer_written_again_links_the_images_of_its_unchanged_views(tmp_path):
    """Its naive, photos and examples entries did not change, so their images are the last build's
    files (linked, not encoded again); the others are new; the bytes are a fresh build's. An old
    image that is now a link is not followed: that one is made again."""
    import shutil

    from site_data import project

    proj = project(tmp_path)
    _write(proj)
    unit = proj["pages"] / "galleries/vgg16_hed/torch/block5_conv3/unit-1"
    before = {p.name: p.stat().st_ino for p in unit.iterdir()}
    (tmp_path / "elsewhere.webp").write_bytes(b"theirs")
    other = proj["pages"] / "galleries/vgg16_hed/torch/block5_conv3/unit-2/photos.webp"
    other.unlink()
    other.symlink_to(tmp_path / "elsewhere.webp")
    _steps_changed(tmp_path, proj)
    assert _write(proj, workers=2).written == 2  # a worker and this process, one layer each
    after = {p.name: p.stat().st_ino for p in unit.iterdir()}
    assert before.keys() == after.keys()
    assert {n for n in after if after[n] == before[n]} == {"naive.webp", "photos.webp", "examples.webp"}
    assert not other.is_symlink() and (tmp_path / "elsewhere.webp").read_bytes() == b"theirs"
    fresh = tmp_path / "fresh"
    shutil.copytree(proj["docs"], fresh / "docs", ignore=shutil.ignore_patterns("galleries", ".*"))
    shutil.copy(proj["docs"].parent / "mkdocs.yml", fresh / "mkdocs.yml")  # the same theme
    _write({**proj, "docs": fresh / "docs"}, pages_dir=fresh / "pages")
    mine, theirs = proj["pages"] / "galleries", fresh / "pages" / "galleries"
    files = sorted(p.relative_to(theirs).as_posix() for p in theirs.rglob("*") if p.is_file() and p.name != ".featgen-manifest.json")
    assert files == sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*") if p.is_file() and p.name != ".featgen-manifest.json")
    assert all((mine / f).read_bytes() == (theirs / f).read_bytes() for f in files)


def test_a_build_cut_while_its_pages_move_is_written_again_by_the_next(tmp_path, monkeypatch):
    """While files move, the manifest keeps the entries of what did not change alone: the next build
    writes the changed layers again (taking no image from a folder the cut build may have replaced)."""
    import json

    from site_data import project

    from featgen.site.pages import install

    proj = project(tmp_path)
    _write(proj)
    _steps_changed(tmp_path, proj)
    moved = []

    def cut(self, entries, rel_dir):
        moved.append(rel_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr(install._Mover, "move", cut)
    with pytest.raises(KeyboardInterrupt):
        _write(proj)
    monkeypatch.undo()
    manifest = json.loads((proj["pages"] / "galleries/.featgen-manifest.json").read_text())
    assert moved and "layer:vgg16_hed/torch/block1_conv1" in manifest["entries"]
    assert "layer:vgg16_hed/torch/block5_conv3" not in manifest["entries"]
    stats = _write(proj)
    assert stats.written == 2
    unit = proj["pages"] / "galleries/vgg16_hed/torch/block5_conv3/unit-1"
    assert sorted(p.name for p in unit.iterdir()) == ["diversity.webp", "examples.webp", "index.html", "naive.webp",
                                                      "negative.webp", "photos.webp", "regularized.webp"]  # fmt: skip


def test_synthetic_entries_never_reach_pages_unless_expected(tmp_path):
    from site_data import project

    from featgen.errors import FeatgenError

    proj = project(tmp_path, units=1)
    with pytest.raises(FeatgenError, match="synthetic entries .* no site may show"):
        _write(proj, synthetic=False)
    _write(proj)
    page = _page(proj["pages"] / "galleries", "vgg16_hed/torch/block1_conv1/unit-0/index.html")
    assert '<meta name="robots" content="noindex">' in page and "Never publish them" in page


def test_the_gallery_joins_the_built_site_and_a_users_file_stays(tmp_path):
    """The hook links the manifest's files into the site; on the next build (mkdocs empties the site
    first) the layers that did not change move back whole and the changed one is linked anew."""
    import os

    from site_data import project

    from featgen.errors import FeatgenError
    from featgen.site.pages.publish import publish_pages, set_aside

    proj = project(tmp_path, units=1)
    _write(proj)
    mine = proj["pages"] / "galleries" / "vgg16_hed" / "notes.txt"
    mine.write_text("a user's file")
    _write(proj, pages_dir=proj["pages"])
    assert mine.read_text() == "a user's file"
    site = tmp_path / "site"
    n = publish_pages(proj["docs"], site)
    linked = site / "galleries/vgg16_hed/torch/block1_conv1/unit-0/index.html"
    assert n > 10 and linked.is_file() and not (site / "galleries/vgg16_hed/notes.txt").exists()
    assert os.path.samefile(linked, proj["pages"] / "galleries/vgg16_hed/torch/block1_conv1/unit-0/index.html")
    before = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in (site / "galleries").rglob("*") if p.is_file()}
    page = proj["pages"] / "galleries/vgg16_hed/torch/block5_conv3/unit-0/index.html"
    fresh = page.with_name("new.html")
    fresh.write_text(page.read_text())
    os.replace(fresh, page)  # a new page, as the page stage writes one (and its entry's new digest)
    manifest = proj["pages"] / "galleries" / ".featgen-manifest.json"
    manifest.write_text(manifest.read_text().replace('"layer:vgg16_hed/torch/block5_conv3":{"digest":"', '"layer:vgg16_hed/torch/block5_conv3":{"digest":"x'))
    set_aside(site)  # what the hook does before mkdocs empties the site
    assert not (site / "galleries").exists() and (site / ".featgen-galleries").is_dir()
    assert publish_pages(proj["docs"], site) == n and not (site / ".featgen-galleries").exists()
    after = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in (site / "galleries").rglob("*") if p.is_file()}
    untouched = {p.relative_to(site).as_posix() for p in after if before.get(p) == after[p]}  # moved with their folder
    assert len(untouched) > 10 and not any(p.startswith("galleries/vgg16_hed/torch/block5_conv3/") for p in untouched)
    assert all(p.startswith(("galleries/vgg16_hed/torch/block1_conv1/", "galleries/vgg16_hed/tensorflow/",
                             "galleries/vgg16_hed/compare/")) for p in untouched)  # fmt: skip
    assert os.path.samefile(site / "galleries/vgg16_hed/torch/block5_conv3/unit-0/index.html", page)
    set_aside(site)
    (site / "galleries/vgg16_hed/torch/block1_conv1").mkdir(parents=True)
    (site / "galleries/vgg16_hed/torch/block1_conv1/index.html").write_text("mkdocs's page")
    with pytest.raises(FeatgenError, match="both a page mkdocs built and a gallery page"):
        publish_pages(proj["docs"], site)


# --- mkdocs hooks ------------------------------------------------------------------------------------
def test_hooks_turn_roles_into_code_and_grid_tables_into_pipe_tables():
    from types import SimpleNamespace

    from featgen.site.mkdocs.hooks import on_page_content, on_page_markdown

    html = "the :class:<code>~featgen.backends.base.Backend</code> and :func:<code>featgen.cam.api.cam</code>"
    assert on_page_content(html, None, None, None) == "the <code>Backend</code> and <code>featgen.cam.api.cam</code>"
    grid = ("# Computation times\n\n**00:01** total:\n\n+--------+------+\n| [a](./a.md) (x.py) | 00:01 | 1.0 MB |\n"
            "+--------+------+\n| [b](./b.md) (y.py) | 00:02 | 2.0 MB |\n+--------+------+\n")  # fmt: skip
    page = SimpleNamespace(file=SimpleNamespace(src_uri="tutorials/mg_execution_times.md"))
    md = on_page_markdown(grid, page, None, None)
    assert "+---" not in md
    assert "| script | time | memory |\n|---|---:|---:|\n| [a](./a.md) (x.py) | 00:01 | 1.0 MB |\n| [b]" in md
    other = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    assert on_page_markdown(grid, other, None, None) == grid
