"""The backend protocol holds what the engine calls, and the engine calls nothing it does not hold;
what both backends share (input normalization, a batch norm's affine map) is written once."""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from pathlib import Path

import numpy as np
import pytest

import featgen
from featgen.backends.base import Backend, ModelRunner, TensorOps

ENGINE = Path(featgen.__file__).parent
HALVES = (TensorOps, ModelRunner)


def _members(proto) -> set[str]:
    return set(typing._get_protocol_attrs(proto))  # the members isinstance checks


def _engine_uses() -> set[str]:
    """Attributes the engine reads off a backend: ``be.x``, ``backend.x``, ``<anything>.backend.x``."""
    used = set()
    for path in ENGINE.rglob("*.py"):
        if "backends" in path.relative_to(ENGINE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id in ("be", "backend")) or (
                isinstance(owner, ast.Attribute) and owner.attr == "backend"
            ):
                used.add(node.attr)
    return used


def test_the_protocol_is_its_two_halves_and_both_backends_implement_it():
    from featgen.backends.tensorflow import TensorFlowBackend
    from featgen.backends.torch import TorchBackend

    tensor_ops, runner = (_members(h) for h in HALVES)
    assert not tensor_ops & runner, tensor_ops & runner
    assert _members(Backend) == tensor_ops | runner
    instance_attrs = {"name", "device", "dtype", "precision"}  # set in __init__
    for cls in (TorchBackend, TensorFlowBackend):
        missing = {m for m in tensor_ops | runner if m not in instance_attrs and not hasattr(cls, m)}
        assert not missing, (cls.__name__, missing)


def test_every_declared_primitive_is_used_and_every_used_one_declared():
    declared, used = _members(Backend), _engine_uses()
    private_use = {"prepare_module"}  # the torch model sources' own step, not part of running a model
    assert declared - used == set(), f"declared but never called by the engine: {sorted(declared - used)}"
    assert used - declared - private_use == set(), f"called but not declared: {sorted(used - declared)}"


class Recording:
    """A backend that records which of its attributes the engine reads."""

    def __init__(self, be, seen: set):
        self._be, self._seen = be, seen

    def __getattr__(self, name):
        self._seen.add(name)
        return getattr(self._be, name)


def test_renders_maps_and_cams_read_only_declared_primitives(lite0, chelsea):
    """At run time too: a render of each method, feature maps, kernels and every CAM family read
    nothing off the backend that the protocol does not declare. (What the engine reads does not
    depend on the backend, so one backend shows it; torch is the faster to run.)"""
    seen: set[str] = set()
    rec = dataclasses.replace(lite0, backend=Recording(lite0.backend, seen))
    for method in ("regularized", "naive", "maco"):
        r = featgen.visualize(rec, "blocks.4", units=[0, 1], method=method, size=32, steps=2, progress=False)
        assert r.images.shape[0] == 2
    assert featgen.activations(rec, chelsea, "blocks.2", size=64).ndim == 3
    assert featgen.layer_kernels(rec).ndim == 4
    for method in ("gradcam", "fullgrad", "guidedgradcam"):
        assert np.isfinite(featgen.cam(rec, chelsea, method, target=285, size=64)).all()
    assert seen, "nothing was read off the backend"
    assert seen <= _members(Backend), sorted(seen - _members(Backend))


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_normalization_in_the_graph_matches_numpy(backend, dtype):
    """Both backends run the one shared normalization; it gives NumPy's bytes, caffe-style (×255,
    BGR, means) and [-1, 1] alike, and its constants are made once."""
    from featgen.backends import get_backend
    from featgen.models.base import Normalization

    be = get_backend(backend, "cpu", dtype)
    x = np.random.default_rng(0).random((2, 5, 7, 3)).astype(dtype)
    for norm in (Normalization(mean=(103.939, 116.779, 123.68), scale=255.0, bgr=True),
                 Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))):  # fmt: skip
        model = types.SimpleNamespace(norm=norm)
        got = be._normalize(model, be.asarray(x)).numpy()  # not to_numpy, which gives float32
        mean, std = np.asarray(norm.mean, dtype), np.asarray(norm.std, dtype)
        want = ((x * norm.scale)[..., ::-1] if norm.bgr else x * norm.scale) - mean
        np.testing.assert_array_equal(got, want / std)
        consts = be._norm_consts[norm]
        be._normalize(model, be.asarray(x))
        assert be._norm_consts[norm] is consts


def test_bn_affine_is_the_batch_norm_in_eval_mode():
    import torch

    from featgen.backends.base import bn_affine

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(2, 6, 3, 3)), dtype=torch.float64)
    for affine in (True, False):
        bn = torch.nn.BatchNorm2d(6, eps=1e-3, affine=affine).double().eval()
        bn.running_mean.copy_(torch.tensor(rng.normal(size=6)))
        bn.running_var.copy_(torch.tensor(rng.uniform(0.1, 2.0, size=6)))
        if affine:
            bn.weight.data.copy_(torch.tensor(rng.normal(size=6)))
            bn.bias.data.copy_(torch.tensor(rng.normal(size=6)))
        params = [None if t is None else t.detach().numpy() for t in (bn.weight, bn.bias)]
        scale, shift = bn_affine(bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps, *params)
        want = bn(x).detach().numpy()
        got = x.numpy() * scale[:, None, None] + shift[:, None, None]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
