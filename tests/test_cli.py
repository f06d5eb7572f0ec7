"""The featgen command: output files, and one-line errors with no traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from featgen.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "featgen", *args], capture_output=True, text=True, timeout=300)


def test_models_lists_builtins(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "vgg16_hed" in out


def test_layers_lists_every_block(capsys):
    assert main(["layers", "efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    for i in range(7):
        assert f"blocks.{i} " in out
    assert "14 x 14 x 112" in out


def test_maps_writes_png(tmp_path, capsys):
    out = tmp_path / "maps.png"
    assert main(["maps", "efficientnet_lite0", "--layer", "blocks.2", "--image", "sample:coffee",
                 "--channels", "0:16", "--out", str(out)]) == 0  # fmt: skip
    img = np.asarray(Image.open(out))
    assert img.shape[0] > 100 and img.std() > 10


@pytest.mark.parametrize(
    "args,message",
    [
        (["layers", "no_such_model"], "unknown model 'no_such_model'"),
        (["maps", "efficientnet_lite0", "--layer", "blocks.44", "--image", "sample:chelsea"], "Did you mean"),
        (["maps", "efficientnet_lite0", "--layer", "blocks.4", "--image", "missing.png"], "not found"),
        (["maps", "efficientnet_lite0", "--layer", "blocks.4", "--image", "sample:chelsea", "--channels", "200"], "out of range"),
    ],
)
def test_bad_input_one_line_no_traceback(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_bad_image_files_exit_nonzero_without_traceback(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("not an image")
    png = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:200])
    for path, message in [(txt, "not an image"), (png, "truncated or corrupt")]:
        res = run_cli("maps", "efficientnet_lite0", "--layer", "blocks.4", "--image", str(path))
        assert res.returncode == 2
        assert message in res.stderr and "Traceback" not in res.stderr


def test_offline_model_exits_nonzero_without_traceback():
    code = (
        "import sys, featgen.models.torch_sources as ts, featgen.cli as cli;"
        "ts.online = lambda *a, **k: False;"
        "ts._hf_cache_dir = lambda: '/nonexistent/hf';"
        "sys.exit(cli.main(['layers', 'timm:resnet18']))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"TORCH_HOME": "/nonexistent/th", "PATH": "/usr/bin:/bin", "FEATGEN_PROGRESS": "0"})  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "cannot download" in res.stderr and "Traceback" not in res.stderr


def test_precision_flag_reaches_the_render(tmp_path):
    import json

    out = tmp_path / "r64"
    assert main(["render", "vgg16_hed", "--layer", "block1_conv2", "--units", "0:2", "--method", "naive", "--size", "32",
                 "--steps", "3", "--precision", "float64", "--out", str(out)]) == 0  # fmt: skip
    settings = json.loads((out / "render.json").read_text())["settings"]
    assert settings["precision"] == "float64" and settings["backend"] == "torch"
