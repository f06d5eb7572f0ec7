"""Gallery pages: verdicts, reproduction, navigation, hooks (plain data; no model unless a test names one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from featgen.site.pages.navigation import image_correlation
from featgen.site.pages.verdict import floor_of, negative_verdict, unit_extras, unit_verdict


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


def test_unit_verdict_labels_state_the_threshold_and_numbers():
    v = unit_verdict(0.015, 4.89, 91.82)
    assert v.label == "regularized did not converge (final < 25 % of naive)"
    assert "4.89" in v.detail and "91.8" in v.detail and "5 %" in v.detail
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


def test_unit_extras_for_a_page_context():
    ctx = {"start": 0.0, "final": 0.0, "naive_final": 0.0}
    out = unit_extras(ctx, negative_final=0.0, layer_type="ReLU")
    assert out["verdict"]["status"] == "dead"
    assert out["negative_verdict"]["label"] == "cannot go below 0 (ReLU)"
    assert "negative_verdict" not in unit_extras({"start": 1.0, "final": 9.0, "naive_final": 10.0})
    # conv_stem unit 1 with the early-layer recipe: 15.44 against naive 91.82 unclipped, 16.33 clipped
    stem = {"start": 0.015, "final": 15.44, "naive_final": 91.82}
    assert unit_extras(stem)["verdict"]["status"] == "failed"
    assert unit_extras({**stem, "naive_valid_final": 16.33})["verdict"]["status"] == "ok"


# --- reproduction ----------------------------------------------------------------------------------
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
def test_neighbours_strip_and_pairs():
    from featgen.site.pages.navigation import layer_nav, neighbours, planned_pairs, shared_layers, unit_links

    layers = ["block1_conv1", "block3_conv1", "block5_conv3"]
    assert neighbours(layers, "block1_conv1") == (None, "block3_conv1")
    nav = layer_nav(layers, "block3_conv1")
    assert (nav["prev_layer"], nav["next_layer"]) == ("block1_conv1", "block5_conv3")
    assert [s["current"] for s in nav["strip"]] == [False, True, False] and nav["strip"][2]["index"] == 3
    assert unit_links([0, 1, 2, 3], 3) == {"prev": 2, "next": None}
    assert shared_layers({"torch": layers, "tensorflow": ["block5_conv3", "block1_conv1"]}) == ["block1_conv1", "block5_conv3"]
    assert shared_layers({"torch": layers}) == []
    rows = [{"model": "m", "backend": b, "layer": n} for b, n in [("torch", "a"), ("torch", "b"), ("tensorflow", "b")]]
    assert planned_pairs(rows, "m") == ["b"] and planned_pairs(rows, "other") == []


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


def fake_galleries(root, photos=("chelsea",)):
    """Write a whole gallery tree (2 backends × 2 layers × 3 units) from plain data, as the build does,
    with random PNGs; returns the page contexts by (backend, layer)."""
    import numpy as np

    from featgen.images import save_image
    from featgen.models.base import LayerInfo
    from featgen.site.pages.navigation import layer_nav, planned_pairs
    from featgen.site.pages.reproduce import reproduction
    from featgen.site.pages.templating import slug
    from featgen.site.pages.templating import write_page as _write
    from featgen.site.pages.verdict import unit_extras
    from featgen.site.pages.write import write_compare_pages, write_index_pages
    from featgen.site.render.config import get_profile

    rng = np.random.default_rng(0)
    layers, units = ["block1_conv1", "block5_conv3"], [0, 1, 2]
    stats = {0: (0.1, 9.0, 10.0, -3.0), 1: (0.0, 0.0, 0.0, 0.0), 2: (0.01, 0.5, 90.0, -1.0)}
    galleries = {"vgg16_hed": []}
    plan_rows = [{"model": "vgg16_hed", "backend": b, "layer": n} for b in ("torch", "tensorflow") for n in layers]
    for backend in ("torch", "tensorflow"):
        lctxs = []
        for layer in layers:
            ldir = root / "vgg16_hed" / backend / slug(layer)
            uctxs = []
            for i, u in enumerate(units):
                start, final, naive, neg = stats[u]
                ctx = dict(model="vgg16_hed", backend=backend, layer=layer, unit=u, shape=(32, 32, 64), start=start,
                           final=final, naive_final=naive, negative=True, diversity=2, crops=0, kernel=False,
                           photos=list(photos), prev=units[i - 1] if i else None,
                           next=units[i + 1] if i + 1 < len(units) else None, steps=4, size=32, naive_steps=3)  # fmt: skip
                ctx.update(unit_extras(ctx, neg, "ReLU"))
                ctx["reproduce"] = reproduction({"model": "vgg16_hed", "backend": backend, "layer": layer, "size": 32,
                                                 "steps": 4, "seed": 0}, u, out="regularized.png")  # fmt: skip
                for name in ["regularized", "naive", "negative", "diversity-0", "diversity-1", "curve", "photos"]:
                    same = name == "regularized" and u == 0  # unit 0 looks the same in both backends
                    save_image((np.random.default_rng(7) if same else rng).random((32, 32, 3)), ldir / f"unit-{u}" / f"{name}.png")
                _write("unit.md.j2", ldir / f"unit-{u}" / "index.md", **ctx)
                uctxs.append(ctx)
            lctx = dict(model="vgg16_hed", backend=backend, layer=layer, type="Conv2D", shape=(32, 32, 64), channels=64,
                        units=uctxs, native=layer, **layer_nav(layers, layer))  # fmt: skip
            lctx["compare"] = layer in planned_pairs(plan_rows, "vgg16_hed")
            lctx["reproduce"] = reproduction({"model": "vgg16_hed", "backend": backend, "layer": layer, "size": 32,
                                              "steps": 4, "seed": 0}, units, out="grid.png")  # fmt: skip
            _write("layer.md.j2", ldir / "index.md", **lctx)
            lctxs.append(lctx)
        table = [LayerInfo(n, "Conv2D", (32, 32, 64), 64) for n in layers]
        galleries["vgg16_hed"].append({"backend": backend, "source": f"{backend} source", "input_size": 32,
                                       "layers": lctxs, "table": table, "aliases": {}})  # fmt: skip
    write_compare_pages(root, galleries)
    write_index_pages(root, galleries, get_profile("quick"))
    return galleries


def test_pages_link_neighbours_pairs_verdicts_and_reproduction(tmp_path):
    import html

    fake_galleries(tmp_path)
    layer = html.unescape((tmp_path / "vgg16_hed/torch/block1_conv1/index.md").read_text())
    assert 'rel="next" href="../block5_conv3/"' in layer and 'rel="prev"' not in layer
    assert "[torch | TensorFlow side by side](../../compare/block1_conv1/index.md)" in layer
    assert layer.count('class="fg-badge') == 2  # the dead unit 1 and the failed unit 2; unit 0 converged
    assert "featgen render vgg16_hed --backend torch" in layer and "--units 0:3" in layer
    late = html.unescape((tmp_path / "vgg16_hed/torch/block5_conv3/index.md").read_text())
    assert 'rel="prev" href="../block1_conv1/"' in late and 'rel="next"' not in late
    dead = html.unescape((tmp_path / "vgg16_hed/torch/block1_conv1/unit-1/index.md").read_text())
    assert "dead at the start image" in dead and "cannot go below 0 (ReLU)" in dead
    assert '<link rel="prev" href="../unit-0/">' in dead and '<link rel="next" href="../unit-2/">' in dead
    assert "featgen.visualize(model, 'block1_conv1', units=[1]" in dead
    assert "Regularized (fourier parameterization, decorrelated colour, transforms lucid, lr 0.05, 4 steps)" in dead
    failed = html.unescape((tmp_path / "vgg16_hed/tensorflow/block5_conv3/unit-2/index.md").read_text())
    assert "regularized did not converge (final < 25 % of naive)" in failed
    compare = html.unescape((tmp_path / "vgg16_hed/compare/block5_conv3/index.md").read_text())
    assert compare.count("r = ") == 3 and "../../tensorflow/block5_conv3/unit-2/regularized.png" in compare
    assert "unit 0: r = 1.000" in compare  # the same picture; independent noise is near 0
    assert abs(float(compare.split("unit 1: r = ")[1].split("<")[0])) < 0.1
    model = html.unescape((tmp_path / "vgg16_hed/index.md").read_text())
    assert "compare/block1_conv1/index.md" in model and model.count('width="64"') == 12  # 2 backends × 2 layers × 3
    backend = html.unescape((tmp_path / "vgg16_hed/torch/index.md").read_text())
    assert "block5_conv3/unit-2/regularized.png" in backend and "fg-flagged" in backend


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
