"""The backend protocol holds what the engine calls, and the engine calls nothing it does not hold."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import numpy as np

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
