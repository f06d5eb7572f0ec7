"""Class activation maps: numbers against pytorch-grad-cam, class discrimination, hooks, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import featgen
from featgen.errors import FeatgenError
from featgen.images import resize

REFERENCE = {"GradCAM": "gradcam", "HiResCAM": "hirescam", "GradCAMPlusPlus": "gradcam++", "XGradCAM": "xgradcam",
             "LayerCAM": "layercam", "EigenCAM": "eigencam"}  # fmt: skip


@pytest.fixture(scope="module")
def reference(lite0):
    """pytorch-grad-cam on a copy of the same weights (it needs gradients through the weights)."""
    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net = copy.deepcopy(lite0.module).requires_grad_(True)
    modules = dict(net.named_modules())

    def run(name, image, layer, target, size=None, eigen_smooth=False):
        x = lite0.preprocess(image, size).contiguous()
        return getattr(pgc, name)(model=net, target_layers=[modules[layer]])(
            input_tensor=x, targets=[ClassifierOutputTarget(target)], eigen_smooth=eigen_smooth
        )[0]

    return run


def eigencam_reference_with_fixed_sign(lite0, image, layer, theirs, size):
    """Deliberate difference: an SVD's sign is arbitrary, and pytorch-grad-cam keeps whatever it gets,
    so its EigenCAM is sometimes the ReLU of the negated component (an empty or inverted map). We
    flip the component to correlate with the activation mean. The reference, sign-fixed the same way:"""
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    acts = featgen.activations(lite0, image, layer, size=size)
    proj = get_2d_projection(np.transpose(acts, (2, 0, 1))[None])[0]
    # on featgen's activations the same SVD gives the reference's own sign: its map, reproduced
    np.testing.assert_allclose(scale_cam_image(np.maximum(proj, 0)[None], (size, size))[0], theirs, atol=0.02)
    mean = acts.mean(-1)
    if ((proj - proj.mean()) * (mean - mean.mean())).sum() < 0:
        proj = -proj
    return scale_cam_image(np.maximum(proj, 0)[None], (size, size))[0]


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.slow
@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
@pytest.mark.parametrize("layer", ["bn2", "blocks.5"])
@pytest.mark.parametrize("target", [285, 967])
def test_gradient_methods_match_pytorch_grad_cam(lite0, reference, photo, layer, target):
    image, size = featgen.sample_image(photo), 160  # bn2 is 5 x 5 at 160 px, blocks.5 10 x 10
    for ref_name, ours in REFERENCE.items():
        theirs = reference(ref_name, image, layer, target, size=size)
        if ref_name == "EigenCAM":
            theirs = eigencam_reference_with_fixed_sign(lite0, image, layer, theirs, size)
        mine = featgen.cam(lite0, image, ours, layer=layer, target=target, size=size)[0]
        assert mine.shape == (size, size)
        assert corr(theirs, mine) >= 0.99, (ref_name, photo, layer, target, corr(theirs, mine))


@pytest.mark.slow
@pytest.mark.parametrize("ref_name", ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM"])
def test_eigen_smooth_matches_pytorch_grad_cam(lite0, reference, chelsea, ref_name):
    """eigen_smooth projects each method's own weighted activations (LayerCAM: ReLU(g)·A). An SVD's
    sign is arbitrary and pytorch-grad-cam keeps whichever it gets, while we sign the component to
    agree with the unsmoothed map; so the reference must match our projection or its negation."""
    from featgen.cam import methods as M
    from featgen.cam.api import LAYER_METHODS, LayerInputs
    from featgen.cam.gradients import class_score_fn

    key, layer, target = REFERENCE[ref_name], "blocks.5", 285
    theirs = reference(ref_name, chelsea, layer, target, size=128, eigen_smooth=True)
    be = lite0.backend
    x = lite0.prepare(chelsea, 128)
    acts, grads, _ = be.activations_and_gradients(lite0, be.asarray(x), [layer], class_score_fn(lite0, [target], 1000))
    A, G = be.to_numpy(acts[layer]), be.to_numpy(grads[layer])
    raw = M.combine(A, LAYER_METHODS[key](LayerInputs(lite0, x, layer, A, G, [target], lite0.logits(x), 1000)), True)
    mine = featgen.cam(lite0, chelsea, key, layer=layer, target=target, size=128, eigen_smooth=True)[0]
    np.testing.assert_allclose(mine, M.finalize(raw, (128, 128))[0], atol=1e-5)  # the raw map is cam's own
    assert max(corr(theirs, M.finalize(sign * raw, (128, 128))[0]) for sign in (1, -1)) >= 0.99
    if key in ("gradcam++", "xgradcam"):  # projecting A·G, as before, gave a different map for these
        old = M.projection(A * G)
        assert max(corr(M.finalize(sign * old, (128, 128))[0], mine) for sign in (1, -1)) < 0.99


@pytest.mark.slow
@pytest.mark.parametrize("layer,photo,target", [("blocks.3", "chelsea", 285), ("blocks.3", "coffee", 967)])
def test_scorecam_matches_reference(lite0, reference, layer, photo, target):
    image, size = featgen.sample_image(photo), 160  # blocks.3 is 10 x 10 at 160 px
    theirs = reference("ScoreCAM", image, layer, target, size=size)
    assert corr(theirs, featgen.cam(lite0, image, "scorecam", layer=layer, target=target, size=size)) >= 0.99


@pytest.fixture(scope="module")
def ablation_reference(lite0):
    """pytorch-grad-cam's AblationCAM, given the network from ``layer``'s output on.

    AblationCAM replaces the layer's output and runs the model once per channel; 1.5.7 reruns the
    whole model for each, so on Lite0's bn2 (1280 channels) it made 1280 full forward passes. The
    reference's math is the same when its model is the part after the layer (timm's own modules,
    behind an identity it ablates) and its input the layer's activations, computed once here on the
    same weights: the channel weights are identical. Its map then comes at the layer's resolution,
    and pytorch-grad-cam's own ``scale_cam_image`` brings it to the image size, as it does inside."""
    import torch

    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()
    from pytorch_grad_cam import AblationCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class After(torch.nn.Module):
        def __init__(self, net, rest):
            super().__init__()
            self.ablated, self.rest, self.net = torch.nn.Identity(), torch.nn.Sequential(*rest), net

        def forward(self, z):
            return self.net.forward_head(self.rest(self.ablated(z)))

    net = copy.deepcopy(lite0.module)
    after = {"bn2": After(net, []), "blocks.3": After(net, [*net.blocks[4:], net.conv_head, net.bn2])}

    def run(image, layer, target, size):
        seen = {}

        def keep(module, inputs, output):
            seen["z"] = output

        hook = dict(net.named_modules())[layer].register_forward_hook(keep)
        with torch.no_grad():
            full = net(lite0.preprocess(image, size).contiguous())
        hook.remove()
        model = after[layer].eval()
        with torch.no_grad():  # the split model is the model: same logits
            torch.testing.assert_close(model(seen["z"]), full, rtol=1e-4, atol=1e-4)
        cam = AblationCAM(model=model, target_layers=[model.ablated])(input_tensor=seen["z"].contiguous(),
                                                                      targets=[ClassifierOutputTarget(target)])  # fmt: skip
        return scale_cam_image(cam, (size, size))[0]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("photo,target", [("chelsea", 285), ("coffee", 967)])
def test_ablationcam_matches_reference_on_a_post_relu_layer(lite0, ablation_reference, photo, target):
    image = featgen.sample_image(photo)
    theirs = ablation_reference(image, "bn2", target, 224)
    assert corr(theirs, featgen.cam(lite0, image, "ablationcam", layer="bn2", target=target)) >= 0.99


@pytest.mark.slow
def test_ablationcam_zeroes_channels_where_the_reference_uses_minus_1e7(lite0, ablation_reference):
    """Deliberate difference: on a layer with negative activations (blocks.3, a linear bottleneck)
    pytorch-grad-cam 1.5.7 ablates a channel to min(A) - 1e7 instead of 0, an input far outside what
    the network saw. We zero the channel, as the AblationCAM paper does, so the maps disagree there.
    Our weights are checked against the paper's definition, (y - y_k) / y, with full forward passes."""
    from featgen.cam.scores import ablationcam

    image = featgen.sample_image("chelsea")
    theirs = ablation_reference(image, "blocks.3", 285, 128)
    ours = featgen.cam(lite0, image, "ablationcam", layer="blocks.3", target=285, size=128)[0]
    assert corr(theirs, ours) < 0.9
    be = lite0.backend
    xs = lite0.prepare(image, 128)
    acts = featgen.activations(lite0, image, "blocks.3", size=128)[None]
    y = lite0.logits(xs)[0, 285]
    weights = ablationcam(lite0, xs, "blocks.3", acts, [285], np.array([y]), 1000)[0]
    for k in range(3):
        ablated = acts.copy()
        ablated[..., k] = 0.0
        with be.no_grad():
            y_k = be.to_numpy(be.forward(lite0, be.asarray(xs), replace={"blocks.3": be.asarray(ablated)}).logits)[0, 285]
        assert weights[k] == pytest.approx((y - y_k) / y, rel=1e-3, abs=1e-5)


def test_eigencam_sign_follows_the_activation_mean(lite0, chelsea):
    acts = featgen.activations(lite0, chelsea, "bn2").mean(-1)
    m = featgen.cam(lite0, chelsea, "eigencam", layer="bn2")[0]
    small = resize(np.repeat(m[..., None], 3, -1), acts.shape[:2])[..., 0]
    assert corr(small, acts) > 0


@pytest.fixture(scope="module")
def composite(chelsea, coffee):
    h = 224
    left = resize(chelsea, (h, int(chelsea.shape[1] * h / chelsea.shape[0])))
    right = resize(coffee, (h, int(coffee.shape[1] * h / coffee.shape[0])))
    return np.concatenate([left, right], axis=1), left.shape[1]


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigengradcam",
                                    "ablationcam", "guidedgradcam"])  # fmt: skip
@pytest.mark.slow
# scorecam passes too (0.922 / 0.886) but takes minutes at this size; fullgrad: see the next test
def test_class_discrimination_on_a_composite(lite0, composite, method):
    for share in _shares(lite0, composite, method):
        assert share >= 0.7, (method, share)


def _shares(model, composite, method: str) -> list[float]:
    """The map's share of mass on the correct half: left for "Egyptian cat", right for "espresso"."""
    image, split = composite
    shares = []
    for target, side in (("Egyptian cat", "left"), ("espresso", "right")):
        m = featgen.cam(model, image, method, target=target, size=image.shape[:2])[0]  # at its own aspect
        left = m[:, :split].sum() / m.sum()
        shares.append(float(left if side == "left" else 1 - left))
    return shares


@pytest.mark.slow
def test_fullgrad_leans_to_the_right_half_but_weakly(lite0, composite):
    """FullGrad points at the correct half for both targets, but weakly: measured 0.698 (cat) and
    0.58 (espresso), short of the 0.7 that the Grad-CAM family reaches (Grad-CAM: 0.988 / 0.941).

    Its bias terms, one per BatchNorm, are ``|b * dS/dz|``: the absolute value keeps evidence against
    the class, so most of the map follows where the network is active, whichever the target
    (per-term shares toward the cat half: 0.51-0.73 for both targets). Variants measured, all short
    of 0.7 on the espresso side: the authors' whole-tensor normalization (0.719 / 0.613), log-softmax
    or logit-minus-mean targets (≤ 0.72 / ≤ 0.615), composites 160 and 320 px high (0.667 / 0.642,
    0.729 / 0.507), a square 224 px input (0.628 / 0.591)."""
    cat, espresso = _shares(lite0, composite, "fullgrad")
    assert cat > 0.6 and espresso > 0.55, (cat, espresso)


@pytest.mark.slow
def test_no_hook_outlives_a_call_and_memory_stays_flat(lite0, chelsea):
    import gc
    import tracemalloc

    small = resize(chelsea, 64)
    featgen.cam(lite0, small, "gradcam", layer="blocks.4", size=64)  # at its own size, not the model's 224
    gc.collect()
    tracemalloc.start()
    calls = 40  # 10 to settle, 30 measured
    for i in range(calls):
        featgen.cam(lite0, small, "gradcam", layer="blocks.4", size=64)
        if i == 9:
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 22_000 * (calls - 10), grown  # under 22 kB a call (measured: about 0.2 kB)
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) for m in lite0.module.modules())
    assert hooks == 0


def test_targets_by_label_and_errors(lite0, chelsea):
    a = featgen.cam(lite0, chelsea, target="espresso", layer="bn2")
    b = featgen.cam(lite0, chelsea, target=967, layer="bn2")
    np.testing.assert_array_equal(a, b)
    with pytest.raises(FeatgenError, match="out of range"):
        featgen.cam(lite0, chelsea, target=1000)
    with pytest.raises(FeatgenError, match="Egyptian cat"):
        featgen.cam(lite0, chelsea, target="egyptian kat")
    with pytest.raises(FeatgenError, match="no spatial dimensions"):
        featgen.cam(lite0, chelsea, layer="classifier")
    with pytest.raises(FeatgenError, match="unknown CAM method"):
        featgen.cam(lite0, chelsea, "gradcamm")


def test_scorecam_constant_channels_give_finite_weights(lite0):
    """Checked on the weights, before the map's final nan_to_num could hide a NaN."""
    from featgen.cam.scores import scorecam

    flat = np.full((1, 64, 64, 3), 0.5, np.float32)  # a flat image: after ReLU6, most channels are constant
    A = featgen.activations(lite0, flat, "bn2", size=64)[None]
    constant = A[0].max(axis=(0, 1)) == A[0].min(axis=(0, 1))
    assert constant.sum() > 0  # the case under test is present
    w = scorecam(lite0, lite0.norm.apply(flat), A, [285], 1000)[0]
    assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.ptp(w[constant]) == 0  # every constant channel masks the input to the same black image


@pytest.mark.slow
def test_metrics_rank_a_real_map_above_a_random_one(lite0, chelsea):
    from featgen.cam.metrics import faithfulness

    good = featgen.cam(lite0, chelsea, "gradcam", target="Egyptian cat")
    rand = np.random.default_rng(0).random((224, 224)).astype(np.float32)
    f_good = faithfulness(lite0, chelsea, good, "Egyptian cat", steps=8)
    f_rand = faithfulness(lite0, chelsea, rand, "Egyptian cat", steps=8)
    assert f_good.insertion_auc > f_rand.insertion_auc
    assert f_good.average_drop < f_rand.average_drop
    assert f_good.road_morf < f_rand.road_morf


@pytest.mark.slow
def test_cam_cli_writes_grid_and_metrics(tmp_path):
    """A layer method and fullgrad (which takes no layer) in one grid, with metrics for both."""
    import json

    from featgen.cli import main

    rc = main(["cam", "efficientnet_lite0", "sample:coffee", "--method", "gradcam,fullgrad", "--target", "espresso",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["label"] == "espresso" and set(data["metrics"]) == {"gradcam", "fullgrad"}
    assert data["metrics"]["gradcam"]["insertion_auc"] > data["metrics"]["gradcam"]["deletion_auc"]
    assert (tmp_path / "cams.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cams.png", "metrics.json"]  # no temporary files


# --- FullGrad, guided backpropagation, Guided Grad-CAM -------------------------------------------
@pytest.fixture(scope="module")
def tiny(device):
    """A seeded Conv2d+BatchNorm2d+ReLU net with plain torch types, where pytorch-grad-cam's FullGrad
    and guided backprop find every bias and every ReLU; BN statistics are random so biases matter."""
    import torch
    from torch import nn

    from featgen.backends import get_backend
    from featgen.models.torch_sources import IMAGENET_NORM, _finish

    torch.manual_seed(0)

    def block(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU()]

    net = nn.Sequential(*block(3, 8, 1), *block(8, 16, 2), *block(16, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 4))  # fmt: skip
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    return _finish(net, "tiny", "test:tiny", get_backend("torch", device), input_size=32, norm=IMAGENET_NORM,
                   labels=["a", "b", "c", "d"])  # fmt: skip


def _pgc():
    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()
    import pytorch_grad_cam as pgc

    return pgc


def test_bias_sites_complete_the_logit(tiny):
    """FullGrad's completeness on a ReLU net: logit = Σ x·∇x + Σ_sites Σ b·∂/∂z + the Linear's bias.
    This checks every effective bias and that each gradient is taken where its bias is added."""
    from featgen.cam.gradients import class_score_fn

    be = tiny.backend
    xn = tiny.norm.apply(np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32))
    sites = be.bias_sites(tiny)
    assert [n for n, _ in sites] == ["0", "1", "3", "4", "6", "7"]
    gx, gs, scores = be.input_and_layer_gradients(tiny, be.asarray(xn), [n for n, _ in sites],
                                                  class_score_fn(tiny, [2, 2], 4), normalized=True)  # fmt: skip
    total = (xn * be.to_numpy(gx)).sum(axis=(1, 2, 3))
    total += sum((be.to_numpy(gs[n]) * b).sum(axis=(1, 2, 3)) for n, b in sites)
    total += float(tiny.module[-1].bias[2])
    np.testing.assert_allclose(total, be.to_numpy(scores), rtol=1e-4, atol=1e-5)


def test_fullgrad_matches_pytorch_grad_cam_on_a_plain_net(tiny, device):
    import torch

    pgc = _pgc()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    net = copy.deepcopy(tiny.module).requires_grad_(True)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    for target in (0, 2):
        xt = torch.tensor(tiny.norm.apply(x), device=device).permute(0, 3, 1, 2).contiguous()
        theirs = pgc.FullGrad(model=net, target_layers=[])(input_tensor=xt, targets=[ClassifierOutputTarget(target)] * 2)
        mine = featgen.cam(tiny, x, "fullgrad", target=target)
        assert mine.shape == (2, 32, 32)
        for a, b in zip(theirs, mine):
            assert corr(a, b) >= 0.99, (target, corr(a, b))


@pytest.mark.slow
def test_fullgrad_on_lite0_sees_the_biases_pytorch_grad_cam_misses(lite0):
    """pytorch-grad-cam 1.5.7 selects bias layers with ``type(layer) in [Conv2d, BatchNorm2d]``, an
    exact type test: timm's BatchNormAct2d (a BatchNorm2d subclass) fails it, and Lite0's convs have
    no bias, so it finds no bias site at all and its "FullGrad" is only the |x·∇x| term. (Had it
    matched by isinstance, its forward hook would still see BatchNormAct2d's output after ReLU6.)
    We hook the norm's internal ``drop`` Identity, whose output is the pre-activation value."""
    from featgen.cam.gradients import _minmax, class_score_fn

    pgc = _pgc()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    be = lite0.backend
    sites = be.bias_sites(lite0)
    assert len(sites) == 49 and sum(n.endswith(".drop") for n, _ in sites) == 33  # 33 ReLU6 norms
    ref = pgc.FullGrad(model=copy.deepcopy(lite0.module).requires_grad_(True), target_layers=[])
    assert len(ref.bias_data) == 0
    image = featgen.sample_image("chelsea")
    theirs = ref(input_tensor=lite0.preprocess(image, 128).contiguous(), targets=[ClassifierOutputTarget(285)])[0]
    mine = featgen.cam(lite0, image, "fullgrad", target=285, size=128)[0]
    xn = lite0.norm.apply(lite0.prepare(image, 128))
    gx, gs, _ = be.input_and_layer_gradients(lite0, be.asarray(xn), ["bn1", "bn1.drop"], class_score_fn(lite0, [285], 1000),
                                             normalized=True)  # fmt: skip
    input_term = _minmax(np.abs(xn * be.to_numpy(gx)), (1, 2)).sum(-1)[0]
    assert corr(theirs, input_term) >= 0.999  # the reference is the input term alone...
    assert corr(theirs, mine) < 0.5  # ...which is not FullGrad: measured 0.25 (chelsea, 128 px)
    # the pre-activation gradient is the post-ReLU6 one, masked where 0 < z < 6
    with be.no_grad():
        z = be.to_numpy(be.forward(lite0, be.asarray(xn), capture=["bn1.drop"], normalized=True).activations["bn1.drop"])
    post, pre = be.to_numpy(gs["bn1"]), be.to_numpy(gs["bn1.drop"])
    np.testing.assert_allclose(pre, post * ((z > 0) & (z < 6)), atol=1e-7)
    assert np.abs(pre).sum() < np.abs(post).sum()


def test_guided_backprop_matches_pytorch_grad_cam_on_a_plain_net(tiny, device):
    import torch

    _pgc()
    from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
    x = np.random.default_rng(1).random((1, 32, 32, 3)).astype(np.float32)
    for target in (1, 3):
        xt = torch.tensor(tiny.norm.apply(x), device=device).permute(0, 3, 1, 2).contiguous()  # fresh: pgc accumulates .grad
        theirs = GuidedBackpropReLUModel(copy.deepcopy(tiny.module).requires_grad_(True), device=device)(xt, target)
        mine = featgen.cam.guided_backprop(tiny, x, target=target, raw=True)[0]
        assert corr(theirs, mine) >= 0.99, corr(theirs, mine)
    assert all("forward" not in vars(m) for m in tiny.module.modules())  # ReLUs restored


@pytest.mark.slow
@pytest.mark.parametrize("photo,target", [("chelsea", 285), ("coffee", 967)])
def test_guided_backprop_matches_reference_with_relu6_on_lite0(lite0, device, photo, target):
    """pytorch-grad-cam swaps only ``nn.ReLU`` modules for its guided ReLU; Lite0 has ReLU6 only, so
    as-is it returns the plain input gradient (measured corr. with guided: 0.83 chelsea, 0.62 coffee).
    We give the reference ReLU6 as min(its guided ReLU, 6), whose backward is what we implement."""
    import torch

    _pgc()
    from pytorch_grad_cam.guided_backprop import GuidedBackpropReLU, GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.find_layers import replace_all_layer_type_recursive

    class GuidedReLU6(torch.nn.Module):
        def forward(self, x):
            return torch.clamp_max(GuidedBackpropReLU.apply(x), 6.0)

    image = featgen.sample_image(photo)
    net = copy.deepcopy(lite0.module).requires_grad_(True)
    as_is = GuidedBackpropReLUModel(copy.deepcopy(net), device=device)(lite0.preprocess(image, 128).contiguous(), target)
    replace_all_layer_type_recursive(net, torch.nn.ReLU6, GuidedReLU6())
    theirs = GuidedBackpropReLUModel(net, device=device)(lite0.preprocess(image, 128).contiguous(), target)
    mine = featgen.cam.guided_backprop(lite0, image, target=target, size=128, raw=True)[0]
    assert corr(theirs, mine) >= 0.99, corr(theirs, mine)
    assert corr(as_is, mine) < 0.9
    shown = featgen.cam.guided_backprop(lite0, image, target=target, size=128)[0]
    assert shown.shape == (128, 128, 3)
    assert abs(shown.mean() - 0.5) < 0.02


def test_guided_gradcam_is_guided_backprop_times_gradcam(lite0, chelsea):
    from featgen.cam.methods import finalize

    g = featgen.cam.guided_backprop(lite0, chelsea, target=285, size=128, raw=True)
    m = featgen.cam(lite0, chelsea, "gradcam", layer="blocks.5", target=285, size=128)
    ggc = featgen.cam.guided_gradcam(lite0, chelsea, target=285, layer="blocks.5", size=128, raw=True)
    np.testing.assert_allclose(ggc, g * m[..., None], rtol=1e-5, atol=1e-8)
    as_map = featgen.cam(lite0, chelsea, "guidedgradcam", layer="blocks.5", target=285, size=128)
    np.testing.assert_allclose(as_map, finalize(np.abs(ggc).sum(-1), (128, 128)), atol=1e-6)


def test_fullgrad_and_guidedgradcam_options_and_errors(lite0, chelsea):
    assert {"fullgrad", "guidedgradcam"} <= set(featgen.cam.METHODS)
    for method in ("fullgrad", "guidedgradcam"):
        with pytest.raises(FeatgenError, match="drop eigen_smooth"):
            featgen.cam(lite0, chelsea, method, eigen_smooth=True, size=64)
        smooth = featgen.cam(lite0, chelsea, method, target=285, aug_smooth=True, size=64)
        plain = featgen.cam(lite0, chelsea, method, target=285, size=64)
        assert smooth.shape == (1, 64, 64) and not np.array_equal(smooth, plain) and corr(smooth, plain) > 0.7
    with pytest.raises(FeatgenError, match="drop layer"):
        featgen.cam(lite0, chelsea, "fullgrad", layer="bn2")


def test_a_backend_without_the_primitives_gets_a_clear_error(tiny):
    import dataclasses

    class Bare:  # a backend that predates bias_sites / input_and_layer_gradients
        name = "bare"

        def __getattr__(self, attr):
            if attr in ("bias_sites", "input_and_layer_gradients", "guided_relu"):
                raise AttributeError(attr)
            return getattr(tiny.backend, attr)

    from featgen.cam.gradients import fullgrad, guided_gradients

    bare = dataclasses.replace(tiny, backend=Bare())
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(FeatgenError, match="bare backend does not implement"):
        fullgrad(bare, x, [0], 4)
    with pytest.raises(FeatgenError, match="use backend='torch'"):
        guided_gradients(bare, x, [0], 4)
