"""Feature visualization: activations rise, regularization smooths, seeds reproduce, errors are clear."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import featgen
from featgen.errors import FeatgenError
from featgen.vis import high_frequency_share, objectives, visualize
from featgen.vis.transforms import PRESETS

LAYER = "blocks.4"  # a middle block of EfficientNet-Lite0: 14x14x112 at 224 px


@pytest.fixture(scope="module")
def regularized(lite0):
    return visualize(lite0, LAYER, units=range(6), method="regularized", size=80, steps=40, seed=0, progress=False)


@pytest.fixture(scope="module")
def naive(lite0):
    return visualize(lite0, LAYER, units=range(6), method="naive", size=80, steps=30, seed=0, progress=False)


@pytest.mark.slow
def test_regularized_raises_every_channel(regularized):
    start, final = regularized.start_activation, regularized.final_activation
    assert regularized.images.shape == (6, 80, 80, 3)
    assert 0.0 <= regularized.images.min() and regularized.images.max() <= 1.0
    for s, f in zip(start, final):
        assert (f >= 5 * s) if s > 0 else (f > 1.0), (s, f)
    curves = regularized.losses
    assert curves.shape == (6, 40) and (curves[:, -8:].mean(1) > curves[:, :8].mean(1)).all()


@pytest.mark.slow
def test_naive_raises_every_channel(naive):
    assert (naive.final_activation > naive.start_activation + 5).all()
    # deprocess: std 0.15 around 0.5 (before clipping), 25 px cropped from 80
    assert naive.images.shape == (6, 30, 30, 3)
    assert abs(float(naive.images.mean()) - 0.5) < 0.05


@pytest.mark.slow
def test_regularized_has_less_high_frequency_energy_than_naive(regularized, naive):
    hf_reg = high_frequency_share(regularized.images)
    hf_naive = high_frequency_share(naive.images)
    assert hf_reg.mean() < 0.5 * hf_naive.mean(), (hf_reg.mean(), hf_naive.mean())


def test_high_frequency_share_measures_frequency():
    y, x = np.mgrid[:64, :64]
    slow = np.repeat(np.sin(2 * np.pi * x / 32.0)[None, ..., None], 3, -1)
    fast = np.repeat(np.sin(2 * np.pi * x / 2.5)[None, ..., None], 3, -1)
    assert high_frequency_share(slow)[0] < 0.01 and high_frequency_share(fast)[0] > 0.99


@pytest.mark.slow
def test_same_seed_same_bytes_and_batch_independence(lite0):
    kw = dict(units=[3, 7], method="regularized", size=64, steps=6, progress=False)
    a = visualize(lite0, LAYER, seed=1, **kw)
    b = visualize(lite0, LAYER, seed=1, **kw)
    c = visualize(lite0, LAYER, seed=2, **kw)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.images.tobytes() != c.images.tobytes()
    one = visualize(lite0, LAYER, seed=1, batch_size=1, **kw)  # batches of one: the same pictures,
    diff = np.abs(one.images - a.images)  # up to float reassociation in batched convolutions
    assert diff.mean() < 2e-3 and diff.max() < 0.05


@pytest.mark.slow
def test_octaves_grow_the_image(lite0):
    r = visualize(lite0, LAYER, units=[0, 1], method="octaves", size=96, steps=5, octaves=3, progress=False)
    assert r.losses.shape == (2, 15) and r.settings["octaves"] == 3
    assert (r.final_activation > r.start_activation).all()


@pytest.mark.slow
def test_maco_returns_transparency(lite0):
    r = visualize(lite0, LAYER, units=[0, 1], method="maco", size=64, steps=16, progress=False)
    assert r.alpha.shape == (2, 64, 64) and r.alpha.max() == pytest.approx(1.0) and r.alpha.min() >= 0
    assert (r.final_activation > r.start_activation).all()


@pytest.mark.slow
def test_thresholds_keep_intermediate_images(lite0):
    r = visualize(lite0, LAYER, units=[0], size=64, steps=8, thresholds=(4, 8), progress=False)
    assert sorted(r.intermediate) == [4, 8]
    np.testing.assert_array_equal(r.intermediate[8], r.images)


def test_objectives_compose(lite0):
    be = lite0.backend
    acts = {LAYER: be.asarray(np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3))}
    a = objectives.channel(LAYER, [0, 2])
    b = objectives.neuron(LAYER, [1, 1], x=0, y=0)
    combo = 2 * a - b + -a * 0.5
    got = be.to_numpy(combo(be, acts))
    raw = np.arange(96, dtype=np.float32).reshape(2, 4, 4, 3)
    va = np.array([raw[0, ..., 0].mean(), raw[1, ..., 2].mean()])
    vb = np.array([raw[0, 0, 0, 1], raw[1, 0, 0, 1]])
    np.testing.assert_allclose(got, 1.5 * va - vb, rtol=1e-6)
    assert combo.layers == (LAYER,) and not combo.needs_logits
    assert (objectives.class_logit(3) + a).needs_logits


@pytest.mark.slow
def test_class_and_diversity_objectives_render(lite0):
    r = visualize(lite0, LAYER, units=[0, 1], size=64, steps=8, progress=False,
                  objective=objectives.class_logit([285, 967]) + 0.1 * objectives.diversity(LAYER))  # fmt: skip
    assert (r.final_activation > r.start_activation).all()


@pytest.mark.slow
def test_nan_in_one_unit_spares_the_others(lite0):
    base = objectives.channel(LAYER, [0, 1])

    def poisoned(be, acts, logits):
        v = base(be, acts, logits)
        mask = be.asarray(np.array([np.nan, 0.0], np.float32))
        return v + mask  # unit 0 gets NaN, unit 1 is untouched

    obj = objectives.Objective(poisoned, (LAYER,), name="poisoned")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = visualize(lite0, LAYER, units=[0, 1], size=64, steps=6, objective=obj, progress=False)
    assert any("unit 0" in str(w.message) and "step 0" in str(w.message) for w in caught)
    assert {u for u, _ in r.nan_events} == {0}
    assert np.isfinite(r.images).all()
    clean = visualize(lite0, LAYER, units=[0, 1], size=64, steps=6, progress=False)
    np.testing.assert_allclose(r.images[1], clean.images[1], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(units=[500]), "unit 500 is out of range"),
        (dict(units=[0], steps=0), "steps must be a positive integer"),
        (dict(units=[0], size=12), "too small"),
        (dict(units=[0], method="magic"), "unknown method"),
        (dict(units=[0], transforms="lucidd"), "unknown transforms"),
    ],
)
def test_bad_input(lite0, kwargs, message):
    with pytest.raises(FeatgenError, match=message):
        visualize(lite0, LAYER, progress=False, **kwargs)


def test_channel_objective_needs_a_spatial_layer(lite0):
    with pytest.raises(FeatgenError, match="not spatial"):
        visualize(lite0, "classifier", units=[0], progress=False)


def test_fused_transform_matrix_is_identity_without_randomness(lite0):
    stack = PRESETS["none"]
    mats = stack.sample([np.random.default_rng(0)], 32)
    np.testing.assert_allclose(mats[0], [[1, 0, 0], [0, 1, 0]])
    be = lite0.backend
    img = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    out = be.to_numpy(be.warp(be.asarray(img), mats, (32, 32)))
    np.testing.assert_allclose(out, img, atol=1e-5)


@pytest.mark.slow
def test_final_activation_not_below_lucent(lite0):
    """Same model, layer, channels, size and steps: featgen reaches at least Lucent's activation."""
    pytest.importorskip("lucent", reason="torch-lucent is installed by the nox test session")
    import copy

    import torch

    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()
    from lucent.optvis import objectives as lobj
    from lucent.optvis import param, render

    class Normalized(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net((x - 0.5) / 0.5)

    net = Normalized(copy.deepcopy(lite0.module)).eval()  # Lucent leaves a hook on every module it sees
    units, size, steps = [0, 1, 2, 3], 64, 16
    obj = lobj.channel("net_blocks_4", units[0], batch=0)
    for i, u in enumerate(units[1:], start=1):
        obj = obj + lobj.channel("net_blocks_4", u, batch=i)
    torch.manual_seed(0)
    theirs = render.render_vis(net, obj, lambda: param.image(size, batch=len(units)), thresholds=(steps,),
                               show_image=False, progress=False, preprocess=False)[0]  # fmt: skip
    ours = visualize(lite0, LAYER, units=units, size=size, steps=steps, progress=False)
    be = lite0.backend
    with be.no_grad():
        out = be.forward(lite0, be.asarray(theirs.astype(np.float32)), capture=[LAYER], logits=False)
        lucent_acts = be.to_numpy(objectives.channel(LAYER, units)(be, out.activations))
    assert ours.final_activation.mean() >= lucent_acts.mean(), (ours.final_activation, lucent_acts)


@pytest.mark.slow
def test_render_cli_writes_grid_units_and_sidecar(tmp_path, capsys):
    import json

    from featgen.cli import main

    out = tmp_path / "r"
    rc = main(["render", "efficientnet_lite0", "--layer", LAYER, "--units", "0:3", "--size", "64",
               "--steps", "4", "--out", str(out)])  # fmt: skip
    assert rc == 0
    data = json.loads((out / "render.json").read_text())
    assert data["settings"]["steps"] == 4 and len(data["units"]) == 3
    assert (out / "grid.png").exists() and (out / "unit-0002.png").exists()
    assert main(["render", "efficientnet_lite0", "--layer", LAYER, "--units", "0:300"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_featgen_exports_visualize():
    assert featgen.visualize is visualize


def _gram_similarity(be, model, images: np.ndarray) -> float:
    """Mean pairwise cosine similarity of the images' Gram matrices at LAYER (what diversity lowers)."""
    with be.no_grad():
        out = be.forward(model, be.asarray(images), capture=[LAYER], logits=False)
        return -float(be.to_numpy(objectives.diversity(LAYER)(be, out.activations)).mean())


@pytest.mark.slow
def test_repeated_unit_gets_distinct_images_and_diversity_pushes_them_apart(lite0):
    kw = dict(units=[2] * 4, size=64, steps=24, seed=0, progress=False)
    plain = visualize(lite0, LAYER, **kw)
    diverse = visualize(lite0, LAYER, **kw, objective=objectives.channel(LAYER, [2] * 4)
                        + 2.0 * objectives.diversity(LAYER, groups=[2] * 4))  # fmt: skip
    for r in (plain, diverse):
        flat = r.images.reshape(4, -1)
        corr = np.corrcoef(flat)[np.triu_indices(4, 1)]
        assert corr.max() < 0.9, corr
        assert len({im.tobytes() for im in r.images}) == 4
    be = lite0.backend
    assert _gram_similarity(be, lite0, diverse.images) < _gram_similarity(be, lite0, plain.images)


def test_grouped_diversity_batches_like_each_group_alone(lite0):
    def run(units, **kw):
        o = objectives.channel(LAYER, units) + 0.5 * objectives.diversity(LAYER, groups=units)
        return visualize(lite0, LAYER, units=units, size=48, steps=4, seed=3, objective=o, progress=False, **kw)

    alone = np.concatenate([run([5, 5]).images, run([9, 9]).images])
    split = run([5, 5, 9, 9], batch_size=2)  # batches cut at group edges: each is its group alone
    assert split.images.tobytes() == alone.tobytes()
    together = run([5, 5, 9, 9])  # one batch: the same pictures, up to batched-convolution rounding
    assert np.abs(together.images - alone).max() < 0.05


def test_diversity_groups_act_only_within_a_group(lite0):
    be = lite0.backend
    rng = np.random.default_rng(0)
    acts = {LAYER: be.asarray(rng.random((5, 3, 3, 4)).astype(np.float32))}
    grouped = be.to_numpy(objectives.diversity(LAYER, groups=[0, 0, 0, 1, 1])(be, acts))
    first = be.to_numpy(objectives.diversity(LAYER)(be, {LAYER: acts[LAYER][:3]}))
    second = be.to_numpy(objectives.diversity(LAYER)(be, {LAYER: acts[LAYER][3:]}))
    np.testing.assert_allclose(grouped, np.concatenate([first, second]), rtol=1e-6)
    with pytest.raises(FeatgenError, match="contiguous"):
        objectives.diversity(LAYER, groups=[0, 1, 0])(be, {LAYER: acts[LAYER][:3]})


def test_equal_diversity_groups_are_one_batched_penalty_equal_to_each_group_alone(lite0):
    """Groups of one size (a gallery's k images per unit) take one batched product: each image's value
    is its group's alone, and the penalty runs as a few tensor operations however many groups there are."""
    be = lite0.backend
    acts = be.asarray(np.random.default_rng(1).random((12, 3, 3, 5)).astype(np.float32))
    calls: list[str] = []
    counting = type("Counting", (), {"__getattr__": lambda self, name: calls.append(name) or getattr(be, name)})()
    got = be.to_numpy(objectives.diversity(LAYER, groups=[u for u in range(4) for _ in range(3)])(counting, {LAYER: acts}))
    alone = [be.to_numpy(objectives.diversity(LAYER)(be, {LAYER: acts[i:i + 3]})) for i in range(0, 12, 3)]
    np.testing.assert_allclose(got, np.concatenate(alone), rtol=1e-6)
    many = len(calls)
    calls.clear()
    objectives.diversity(LAYER, groups=[0, 0, 0])(counting, {LAYER: acts[:3]})
    assert many == len(calls)  # four groups cost the operations of one


def test_objective_rows_follow_the_whole_call(lite0):
    """A custom objective names units for the whole call; a batch gets its own rows of it."""
    ref = visualize(lite0, LAYER, units=[1, 4, 6], size=48, steps=3, progress=False)
    obj = objectives.channel(LAYER, [1, 4, 6]) * 1.0
    got = visualize(lite0, LAYER, units=[1, 4, 6], size=48, steps=3, objective=obj, batch_size=2, progress=False)
    np.testing.assert_allclose(got.final_activation, ref.final_activation, rtol=1e-3, atol=1e-3)
