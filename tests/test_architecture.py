"""The architecture stays honest: lazy backends, one copy of the torchvision fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MODULES = "\nimport sys; print(' '.join(sorted(sys.modules)))"
HELPER = """
from featgen.backends.torchvision_compat import import_torchvision
import featgen.backends.torchvision_compat as c
tv = import_torchvision()
import timm
m = tv.models.resnet18(weights=None)
print('ok', c.stubbed, type(m).__name__)
"""
FRESH = {  # what each test runs in a fresh Python
    "bare": "import featgen, featgen.images, featgen.errors, featgen.cli, featgen.analysis" + MODULES,
    **{backend: f"import featgen; m = featgen.load_model('efficientnet_lite0', backend='{backend}'); m.layer_table" + MODULES
       for backend in ("torch", "tensorflow")},
    "helper": HELPER,
}  # fmt: skip


def _fresh_name(item: pytest.Item) -> str | None:
    if item.originalname == "test_a_model_imports_only_its_own_framework":
        return item.callspec.params["backend"]
    return {"test_import_featgen_imports_no_framework": "bare",
            "test_torchvision_and_timm_import_through_the_helper": "helper"}.get(item.originalname)  # fmt: skip


@pytest.fixture(scope="module")
def fresh(request):
    """``fresh(name)``: the CompletedProcess of ``FRESH[name]``. The processes of the selected tests
    start together, on first use: mostly single-threaded imports, they share the cores (one thread
    each for the frameworks, which changes nothing that is imported)."""
    names = {_fresh_name(item) for item in request.session.items if item.module is request.module} - {None}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    procs = {name: subprocess.Popen([sys.executable, "-c", FRESH[name]], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name in sorted(names)}  # fmt: skip
    done: dict[str, subprocess.CompletedProcess] = {}

    def result(name: str) -> subprocess.CompletedProcess:
        if name not in done:
            proc = procs.pop(name, None) or subprocess.Popen([sys.executable, "-c", FRESH[name]], env=env,
                                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
            out, err = proc.communicate(timeout=300)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return done[name]

    yield result
    for proc in procs.values():
        proc.kill()
        proc.communicate()


def _modules_after(fresh, name: str) -> set[str]:
    res = fresh(name)
    assert res.returncode == 0, res.stderr[-3000:]
    return set(res.stdout.split())


def test_import_featgen_imports_no_framework(fresh):
    mods = _modules_after(fresh, "bare")
    assert "tensorflow" not in mods and "torch" not in mods and "keras" not in mods


@pytest.mark.parametrize(
    "backend,used,unused",
    [("torch", {"torch"}, {"tensorflow", "keras"}),
     pytest.param("tensorflow", {"tensorflow", "keras"}, {"torch"}, marks=pytest.mark.tensorflow)],
)  # fmt: skip
@pytest.mark.slow
def test_a_model_imports_only_its_own_framework(fresh, backend, used, unused):
    mods = _modules_after(fresh, backend)
    assert used <= mods and not unused & mods, (used & mods, unused & mods)


def test_only_backends_and_model_sources_import_frameworks():
    offenders = []
    for path in (ROOT / "featgen").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("featgen/backends/") or rel.endswith("_sources.py"):
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import torch", "from torch", "import tensorflow", "from tensorflow",
                                    "import keras", "from keras")):  # fmt: skip
                offenders.append(f"{rel}: {stripped}")
    assert not offenders, offenders


def test_exactly_one_copy_of_the_torchvision_fix():
    needle = "Library(" + '"torchvision"'  # split so this file does not match itself
    hits = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
            if ".nox" not in p.parts and needle in p.read_text()]  # fmt: skip
    assert hits == ["featgen/backends/torchvision_compat.py"]


@pytest.mark.slow
def test_torchvision_and_timm_import_through_the_helper(fresh):
    res = fresh("helper")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok") and "ResNet" in res.stdout
