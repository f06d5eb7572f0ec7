"""The render loop stays on the device: no host reads between thresholds, one configuration per method."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest

from featgen.vis import visualize

LAYER = "blocks.4"
READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "cpu")


class Counting:
    """The model's backend, recording host reads and gradient evaluations in order."""

    def __init__(self, be, events: list):
        self._be, self._events = be, events

    def __getattr__(self, name):
        return getattr(self._be, name)

    def to_numpy(self, t):
        self._events.append("read")
        return self._be.to_numpy(t)

    def value_and_grad(self, *args, **kwargs):
        self._events.append("grad")
        return self._be.value_and_grad(*args, **kwargs)


@pytest.fixture
def counted(lite0, monkeypatch):
    """A copy of Lite0 whose backend counts reads; torch's own host reads count too."""
    import torch

    events: list = []
    model = dataclasses.replace(lite0, backend=Counting(lite0.backend, events))
    model.layer_table, model.weights_digest  # noqa: B018 (warm the cached layer table and digest)
    for name in READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _original=original, **k):
            events.append("read")
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    events.clear()
    return model, events


def _grads_before_each_read(events: list) -> list[int]:
    out, grads = [], 0
    for e in events:
        if e == "grad":
            grads += 1
        else:
            out.append(grads)
    return out


@pytest.mark.parametrize("method,per_step", [("regularized", 1), ("naive", 1), ("maco", 2)])
def test_no_host_reads_between_thresholds(counted, method, per_step):
    model, events = counted
    steps = 6
    r = visualize(model, LAYER, units=[0, 1], method=method, size=32, steps=steps, thresholds=(3,), progress=False)
    assert events.count("grad") == steps * per_step
    reads = _grads_before_each_read(events)
    assert reads, "the end reads the results"
    # only at the threshold (after step 3) and at the end (after the last step)
    assert set(reads) <= {3 * per_step, steps * per_step}, reads
    assert 3 * per_step in reads  # the kept image
    assert r.losses.shape == (2, steps) and np.isfinite(r.losses).all()


def test_transform_draws_do_not_depend_on_batch_or_neighbours():
    from featgen.vis.transforms import PRESETS

    stack = PRESETS["lucid"]
    both = stack.sample_steps([np.random.default_rng(1), np.random.default_rng(2)], 64, 5)
    alone = stack.sample_steps([np.random.default_rng(2)], 64, 5)
    assert both.shape == (5, 2, 2, 3)
    np.testing.assert_array_equal(both[:, 1], alone[:, 0])
    assert len({m.tobytes() for m in both[:, 0]}) == 5  # a fresh draw every step


def test_bfloat16_runs_the_network_only_and_keeps_the_verified_tail(device):
    """precision='bfloat16': autocast for the network (CPU autocast here, CUDA in use); parameters and
    results stay float32, and the tail check (1e-4) runs in full precision instead of failing."""
    import featgen

    model = featgen.load_model("efficientnet_lite0", precision="bfloat16", device=device)
    be = model.backend
    assert (be.precision, be.dtype) == ("bfloat16", "float32")
    assert be.tail(model, LAYER) is not None
    x = be.asarray(np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32))
    with be.no_grad():
        act = be.forward(model, x, capture=[LAYER], logits=False).activations[LAYER]
    assert str(act.dtype) == "torch.float32"
    r = visualize(model, LAYER, units=[0], size=32, steps=6, progress=False)
    assert r.settings["precision"] == "bfloat16" and r.images.dtype == np.float32
    assert r.final_activation[0] > r.start_activation[0]


@pytest.mark.parametrize("padding", ["zeros", "reflection", "border"])
def test_row_gather_warp_equals_grid_sample_with_its_gradient(padding):
    """The warp used under deterministic algorithms on CUDA (four row gathers) is grid_sample."""
    import torch
    import torch.nn.functional as F

    from featgen.backends.torch import _sample_rows

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 20, 24, 3, dtype=torch.float64, generator=gen).requires_grad_(True)
    theta = torch.tensor([[1.3, 0.4, 0.3], [-0.3, 1.2, -0.4]], dtype=torch.float64).repeat(3, 1, 1)
    theta[1] *= 0.7  # one image shrinks, so its samples land outside the input too
    grid = F.affine_grid(theta, [3, 3, 17, 19], align_corners=False)
    upstream = torch.rand(3, 17, 19, 3, dtype=torch.float64, generator=gen)
    want = F.grid_sample(x.permute(0, 3, 1, 2), grid, padding_mode=padding, align_corners=False).permute(0, 2, 3, 1)
    got = _sample_rows(x, grid, padding)
    (grad_want,) = torch.autograd.grad(want, x, upstream)
    (grad_got,) = torch.autograd.grad(got, x, upstream)
    assert (want - got).abs().max() < 1e-12
    assert (grad_want - grad_got).abs().max() < 1e-12
    assert grad_got.abs().sum() > 0


def _lucid_redirected(x: np.ndarray, grad: np.ndarray, hi: float | None) -> np.ndarray:
    """Lucid's redirected ReLU/ReLU6 gradient (lucid.misc.redirected_relu_grad), per image."""
    top = np.inf if hi is None else hi
    passed = np.where((x > 0) & (x < top), grad, 0.0)
    wrong_way = ((x < 0) & (grad > 0)) | ((x > top) & (grad < 0))
    redirected = np.where(wrong_way, 0.0, grad)
    alive = np.linalg.norm(passed.reshape(len(x), -1), axis=1) > 0
    return np.where(alive[:, None, None, None], passed, redirected)


def _redirected_torch(x, grad, hi, sparse, monkeypatch):
    import torch

    from featgen.backends import torch as tb

    monkeypatch.setattr(tb, "_SPARSE_REDIRECT", {"cpu"} if sparse else set())
    xt = torch.tensor(x).to(memory_format=torch.channels_last).requires_grad_(True)
    out = tb._RedirectedClamp.apply(xt, 0.0, hi)
    (got,) = torch.autograd.grad(out, xt, torch.tensor(grad).to(memory_format=torch.channels_last))
    assert got.is_contiguous(memory_format=torch.channels_last)
    return got.numpy()


def _redirected_tensorflow(x, grad, hi, sparse, monkeypatch):
    tf = pytest.importorskip("tensorflow", reason="the TensorFlow backend needs TensorFlow")
    from featgen.backends import tensorflow as tfb

    @tf.function
    def backward(t, g):  # traced, as render steps are
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = tfb._clamp(t, 0.0, hi, "redirect", sparse)
        return tape.gradient(y, t, output_gradients=g)

    return backward(tf.constant(x), tf.constant(grad)).numpy()


@pytest.mark.parametrize("sparse", [True, False], ids=["dead-images-only", "masked"])
@pytest.mark.parametrize("hi", [None, 6.0], ids=["relu", "relu6"])
@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_redirected_relu_is_lucids_rule(monkeypatch, backend, sparse, hi):
    """Both forms of the redirected backward (the CPU one gathers the dead images, the one used on
    GPUs masks every image) give Lucid's gradient, on images that are alive, dead below the range,
    dead above it, and dead on both sides."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 9, (5, 4, 6, 7))
    x[1] = -np.abs(x[1]) - 0.1  # dead below
    x[2] = np.abs(x[2]) + 6.1 if hi else x[2]  # dead above (ReLU6); alive for ReLU
    x[3] = np.where(x[3] < 3, -1.0, 7.0) if hi else -1.0  # dead on both sides
    grad = rng.normal(size=x.shape)
    run = _redirected_torch if backend == "torch" else _redirected_tensorflow
    got = run(x, grad, hi, sparse, monkeypatch)
    want = _lucid_redirected(x, grad, hi)
    np.testing.assert_array_equal(got, want)
    dead = [1, 2, 3] if hi else [1, 3]
    assert all(np.abs(want[i]).sum() > 0 for i in dead)  # the dead images do get a gradient


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_dead_rows_reads_past_the_probe(backend):
    """The CPU's dead-image search probes each row's first entries and reads in full only the rows
    that look dead: a row whose gradient starts late, or a NaN late in the row, is not dead."""
    rows = np.zeros((6, 50), np.float32)
    rows[0, 1] = 0.5  # alive early
    rows[2, 40] = -1e-30  # alive only past the probe
    rows[4, 49] = np.nan  # a NaN passes on: not dead
    rows[5, 3], rows[5, 30] = -0.0, 2.0
    if backend == "torch":
        import torch

        from featgen.backends.torch import _dead_rows

        def dead(a, probe):
            return _dead_rows(torch.from_numpy(np.ascontiguousarray(a)), probe=probe).tolist()
    else:
        import tensorflow as tf

        from featgen.backends.tensorflow import _dead_rows

        def dead(a, probe):
            return _dead_rows(tf.constant(a), probe=probe).numpy().tolist()

    for probe in (8, 50, 64):
        assert dead(rows, probe) == [1, 3]
    assert dead(rows[:, :8], 8) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kernel,stride", [(3, 2), (5, 2), (3, 1), (4, 2)])
def test_same_pad_conv_is_timms_conv2d_same(kernel, stride):
    """The folded chain's Conv2dSame skips the padded copy only when the pad is symmetric, and
    gives timm's values and input gradients at odd and even sizes."""
    import torch

    from featgen.backends.torch import _SamePadConv
    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(6, 6, kernel, stride=stride, groups=3).double()
    fast = _SamePadConv(conv)
    for side in (17, 18, 71, 72):
        x = torch.rand(2, 6, side, side + 1, dtype=torch.float64, requires_grad=True)
        want, got = conv(x), fast(x)
        assert got.shape == want.shape
        up = torch.rand_like(want)
        (g_want,) = torch.autograd.grad(want, x, up)
        (g_got,) = torch.autograd.grad(got, x, up)
        assert (want - got).abs().max() < 1e-12 and (g_want - g_got).abs().max() < 1e-12


def _objective_and_gradient(model, layer: str, units: list[int], picked: bool, grouped: bool = False,
                            redirected: bool = False):  # fmt: skip
    """A channel objective's values, its capture's shape and its gradient w.r.t. the images, with the
    closing convolution computing every channel or each image's own (over the batch's distinct
    channels, or grouped, one group per image)."""
    from featgen.vis import objectives

    be = model.backend
    objective = objectives.channel(layer, units)
    previous, be.grouped_above = be.grouped_above, 0 if grouped else 10**9

    def loss(x):
        out = be.forward(model, x, capture=[layer], logits=False,
                         channels=objective.channels(len(units)) if picked else None)  # fmt: skip
        values = objective(be, out.activations, None)
        return -be.sum(values), (values, be.shape(out.activations[layer]))

    x = be.asarray(np.random.default_rng(0).random((len(units), 48, 48, 3), dtype=np.float32))
    try:
        with be.redirected_relu(model) if redirected else contextlib.nullcontext():
            (_, (values, shape)), grad = be.value_and_grad(loss, x, has_aux=True)
    finally:
        be.grouped_above = previous
    return be.to_numpy(values), shape, be.to_numpy(grad)


@pytest.mark.parametrize("grouped", [False, True], ids=["distinct-channels", "grouped"])
@pytest.mark.parametrize("name,layer", [("hed_torch", "block4_conv3"), ("hed_torch", "features.21"),
                                        ("lite0", "conv_head")])  # fmt: skip
def test_the_closing_convolution_computes_only_the_target_channels_exactly(request, name, layer, grouped):
    """A channel objective on a layer whose chain ends in a convolution (and its ReLU): the convolution
    computes each image's own channel only, and the objective and its gradient w.r.t. the images are
    those of the full layer to float32 rounding, with Lucid's redirected ReLU too."""
    model = request.getfixturevalue(name)
    layer = model.resolve_layer(layer)
    units = [3, 7, 3, 19]
    for redirected in (False, True):
        full, full_shape, g_full = _objective_and_gradient(model, layer, units, False, redirected=redirected)
        got, shape, g_got = _objective_and_gradient(model, layer, units, True, grouped, redirected=redirected)
        assert full_shape[-1] == model.layer_info(layer).channels and shape == (*full_shape[:-1], 1)
        np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-5 * np.abs(full).max())
        np.testing.assert_allclose(g_got, g_full, rtol=1e-4, atol=1e-5 * np.abs(g_full).max())
        assert np.abs(g_full).max() > 0


def test_a_chain_that_does_not_close_with_a_convolution_keeps_every_channel(lite0):
    """Lite0 ``blocks.4`` ends in a residual block: the capture keeps its channels."""
    _, shape, _ = _objective_and_gradient(lite0, "blocks.4", [0, 1], True)
    assert shape[-1] == 112


@pytest.mark.parametrize("name,layer", [("hed_torch", "block4_conv3"), ("lite0", "blocks.4")])
def test_the_network_gets_its_images_in_channels_last_memory(request, monkeypatch, name, layer):
    """Every convolution of a render step sees channels_last input, as its weights are: no layout
    conversion runs per step, whatever layout the warp leaves its images in."""
    import torch
    import torch.nn.functional as F

    model = request.getfixturevalue(name)
    seen = []
    conv2d = F.conv2d

    def spy(x, *args, **kwargs):
        seen.append(x.is_contiguous(memory_format=torch.channels_last))
        return conv2d(x, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", spy)  # what nn.Conv2d and the folded chain's convolutions call
    visualize(model, model.resolve_layer(layer), units=[0, 1], size=32, steps=1, progress=False)
    assert len(seen) > 10 and all(seen), seen


class _ReplayedOnTheCpu:
    """CUDA graphs as the CPU can stand in for them: a capture records the step's outputs, a replay
    writes what the step gives on the captured inputs' current values into them. What it checks is the
    step's side: inputs copied in, outputs copied out, the first steps eager, a failed capture eager."""

    def __init__(self, fail: bool = False):
        self.fail, self.warmed, self.captured, self.replayed = fail, 0, 0, 0

    def warm(self, fn, args):
        self.warmed += 1
        return fn(*args)

    def capture(self, fn, args):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captured += 1
        out = fn(*args)

        def replay():
            self.replayed += 1
            for o, new in zip(out, fn(*args)):
                o.copy_(new)

        return replay, out


@pytest.mark.parametrize("fail", [False, True], ids=["captured", "capture-fails"])
def test_render_steps_replayed_from_a_graph_give_the_eager_bytes(lite0, monkeypatch, fail):
    """The step a CUDA graph replays sees each step's own inputs and hands back its own outputs: the
    render's bytes are the eager render's. Redirected-ReLU steps stay eager; a capture that fails
    leaves the step eager, with one warning."""
    import warnings

    from featgen.backends import torch as tb
    from featgen.backends import torch_graphs

    kw = dict(units=[0, 3], size=32, steps=22, progress=False)
    eager = visualize(lite0, "blocks.2", **kw)
    graphs = _ReplayedOnTheCpu(fail)
    monkeypatch.setattr(tb.TorchBackend, "graphs", lambda self, model: True)
    monkeypatch.setattr(torch_graphs, "CudaGraphs", lambda: graphs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replayed = visualize(lite0, "blocks.2", **kw)
    assert replayed.images.tobytes() == eager.images.tobytes()
    assert replayed.losses.tobytes() == eager.losses.tobytes()
    plain_steps = 22 - 16  # after Lucid's 16 redirected steps
    assert graphs.warmed == torch_graphs.WARMUP
    assert (graphs.captured, graphs.replayed) == ((0, 0) if fail else (1, plain_steps - torch_graphs.WARMUP))
    assert [str(w.message).startswith("a render step could not be captured") for w in caught] == [fail] * fail


def test_cuda_graphs_are_opt_in_and_on_a_cuda_device_only(monkeypatch):
    from types import SimpleNamespace

    from featgen.backends.torch import TorchBackend

    def graphs(device, env=None, **model):
        if env is None:
            monkeypatch.delenv("FEATGEN_CUDA_GRAPHS", raising=False)
        else:
            monkeypatch.setenv("FEATGEN_CUDA_GRAPHS", env)
        return TorchBackend.graphs(SimpleNamespace(device=device), SimpleNamespace(**{"graphs": None, "compile": None, **model}))

    assert not graphs("cuda") and not graphs("cuda", env="0")  # off until a GPU run has measured them
    assert graphs("cuda", env="1") and graphs("cuda:1", env="1") and graphs("cuda", graphs=True)
    assert not graphs("cpu", env="1") and not graphs("cpu", graphs=True) and not graphs("mps", env="1")
    assert not graphs("cuda", env="1", compile=True) and not graphs("cuda", env="1", graphs=False)
    assert graphs("cuda", env="0", graphs=True)  # the model's own setting wins
