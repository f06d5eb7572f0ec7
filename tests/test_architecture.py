"""The architecture stays honest: lazy backends, one copy of the torchvision fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return set(out.stdout.split())


def test_import_featgen_imports_no_framework():
    mods = _modules_after("import featgen, featgen.images, featgen.errors, featgen.cli")
    assert "tensorflow" not in mods and "torch" not in mods and "keras" not in mods


@pytest.mark.parametrize(
    "backend,used,unused",
    [("torch", {"torch"}, {"tensorflow", "keras"}),
     pytest.param("tensorflow", {"tensorflow", "keras"}, {"torch"}, marks=pytest.mark.tensorflow)],
)  # fmt: skip
@pytest.mark.slow
def test_a_model_imports_only_its_own_framework(backend, used, unused):
    mods = _modules_after(f"import featgen; m = featgen.load_model('efficientnet_lite0', backend='{backend}'); m.layer_table")
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
def test_torchvision_and_timm_import_through_the_helper():
    code = (
        "from featgen.backends.torchvision_compat import import_torchvision\n"
        "import featgen.backends.torchvision_compat as c\n"
        "tv = import_torchvision()\n"
        "import timm\n"
        "m = tv.models.resnet18(weights=None)\n"
        "print('ok', c.stubbed, type(m).__name__)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok") and "ResNet" in res.stdout
