"""The featgen command: output files, and one-line errors with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from featgen.cli import main
from featgen.errors import FeatgenError


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


@pytest.mark.parametrize("case,message", [("text", "not an image"), ("truncated", "truncated or corrupt"),
                                          ("missing", "not found")])  # fmt: skip
def test_bad_image_files_raise_from_the_api_and_exit_2_from_the_cli(tmp_path, monkeypatch, capsys, case, message):
    from featgen.images import load_image

    path = tmp_path / {"text": "a.txt", "truncated": "cut.png", "missing": "missing.png"}[case]
    if case == "text":
        path.write_text("not an image")
    elif case == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FeatgenError, match=message):
        load_image(path)
    _no_work(monkeypatch)
    assert main([*MAPS[:4], "--image", str(path)]) == 2
    _one_line(capsys, message)


@pytest.mark.slow
def test_precision_flag_reaches_the_render(tmp_path):
    import json

    out = tmp_path / "r64"
    assert main(["render", "vgg16_hed", "--layer", "block1_conv2", "--units", "0:2", "--method", "naive", "--size", "32",
                 "--steps", "3", "--precision", "float64", "--out", str(out)]) == 0  # fmt: skip
    settings = json.loads((out / "render.json").read_text())["settings"]
    assert settings["precision"] == "float64" and settings["backend"] == "torch"


# --- errors before work: the bad-input sweep ------------------------------------------------------
def _no_work(monkeypatch):
    """Make loading a model fail loudly: an error that comes first was found before any work."""
    import featgen.cli.cam as cam_cmd
    import featgen.cli.maps as maps_cmd
    import featgen.cli.render as render_cmd

    def boom(args):
        raise AssertionError("the command started working before checking its flags")

    for module in (maps_cmd, render_cmd, cam_cmd):
        monkeypatch.setattr(module, "load_model_arg", boom)


def _one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


MAPS = ["maps", "efficientnet_lite0", "--layer", "blocks.2", "--image", "sample:coffee"]


@pytest.mark.parametrize("case", ["folder", "extension", "proc", "under_a_file"])
def test_maps_output_path_is_checked_before_the_model_loads(tmp_path, monkeypatch, capsys, case):
    _no_work(monkeypatch)
    (tmp_path / "a_file").write_text("x")
    out, needle = {
        "folder": (tmp_path, "is a folder"),
        "extension": (tmp_path / "maps.txt", "cannot write .txt"),
        "proc": ("/proc/maps.png", "cannot write in /proc"),
        "under_a_file": (tmp_path / "a_file" / "maps.png", "is a file, not a folder"),
    }[case]
    assert main([*MAPS, "--out", str(out)]) == 2
    _one_line(capsys, "--out", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_render_and_cam_refuse_a_file_as_output_folder_before_work(tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    existing = tmp_path / "result"
    existing.write_text("keep me")
    render = ["render", "vgg16_hed", "--layer", "block1_conv1", "--units", "0:2", "--size", "32", "--steps", "2"]
    for argv in ([*render, "--out", str(existing)], ["cam", "efficientnet_lite0", "sample:coffee", "--out", str(existing)]):
        assert main(argv) == 2
        _one_line(capsys, "--out", "is a file")
    assert existing.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits: the /proc case covers it")
def test_read_only_folder_is_refused_before_work(tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main([*MAPS, "--out", str(ro / "m.png")]) == 2
        _one_line(capsys, "cannot write in")
    finally:
        ro.chmod(0o755)


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    from featgen.images import save_image

    def fail(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError):
        save_image(np.zeros((4, 4, 3)), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_cam_without_a_classifier_asks_for_a_target(tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["cam", "vgg16_hed", "sample:chelsea", "--method", "gradcam", "--out", str(out)]) == 2
    _one_line(capsys, "vgg16_hed has no classifier", "--target 0..511")
    assert not out.exists()


def test_cam_without_a_classifier_explains_an_output_channel(hed_torch, chelsea):
    """The target the error asks for works: the map of one output channel follows that channel."""
    import featgen

    acts = featgen.activations(hed_torch, chelsea, "block5_pool", size=64)  # (2, 2, 512)
    channel = int(np.argmax(acts.reshape(-1, 512).max(0)))
    m = featgen.cam(hed_torch, chelsea, "gradcam", layer="block5_conv3", target=channel, size=64)[0]
    other = featgen.cam(hed_torch, chelsea, "gradcam", layer="block5_conv3", target=(channel + 1) % 512, size=64)[0]
    assert m.shape == (64, 64) and m.std() > 0.05 and not np.allclose(m, other)
    with pytest.raises(featgen.FeatgenError, match="out of range.*512 output channels"):
        featgen.cam(hed_torch, chelsea, "gradcam", target=512, size=64)


def test_huge_images_are_refused_before_decoding(tmp_path, monkeypatch, capsys):
    """A 12000² PNG (a few hundred KB) decodes to 144 Mpx: refused from its header; over PIL's own
    bomb limit the same. ``Image.load`` is made to fail, so a pass means nothing was decoded."""
    from featgen.images import load_image

    big = tmp_path / "big.png"
    Image.new("1", (12000, 12000)).save(big)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(bomb)

    def no_decode(self):
        raise AssertionError("decoded")

    from PIL import ImageFile

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    for path in (big, bomb):
        with pytest.raises(FeatgenError, match="Mpx.*downscale it first"):
            load_image(path)
    _no_work(monkeypatch)
    assert main([*MAPS[:-1], str(big), "--out", str(tmp_path / "m.png")]) == 2
    _one_line(capsys, "12000x12000", "downscale")


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["render", "vgg16_hed", "--layer", "block1_conv1", "--size", "100000"], ["--size 100000", "16..2048"]),
        (["render", "vgg16_hed", "--layer", "block1_conv1", "--units", "0:100000000000"], ["--units", "out of range", "64 channels"]),
        (["render", "vgg16_hed", "--layer", "block1_conv1", "--batch-size", "-1"], ["--batch-size -1"]),
        (["render", "vgg16_hed", "--layer", "block1_conv1", "--units", "5:2"], ["--units 5:2", "range is empty"]),
        (["render", "vgg16_hed", "--layer", "block1_conv1", "--units", "1,,1,1"], ["--units 1,,1,1", "empty item"]),
        (["render", "vgg16_hed", "--layer", "block1_conv1", "--units", "1,1"], ["more than once"]),
        ([*MAPS[:4], "--image", "sample:chelsea", "--channels", "3:1"], ["--channels 3:1"]),
        (["layers", "vgg16_hed", "--device", "potato"], ["'potato'", "--device", "cpu, cuda"]),
        (["layers", "vgg16_hed", "--device", "potato", "--backend", "tensorflow"], ["'potato'", "--device"]),
        (["layers", "vgg16_hed", "--device", "cuda:7", "--backend", "tensorflow"], ["'cuda:7' was asked for"]),
        (["layers", "vgg16_hed", "--device", "cuda:7"], ["'cuda:7' was asked for"]),
        (["cam", "efficientnet_lite0", "sample:chelsea", "--target", "-1"], ["class index -1 is out of range"]),
        (["cam", "efficientnet_lite0", "sample:nope"], ["'nope'", "chelsea, coffee, astronaut"]),
        (["cam", "efficientnet_lite0", "sample:chelsea", "--method", "gradcam,foo"], ["'foo'", "gradcam, hirescam", "scorecam"]),
        (["layers", "efficientnet_lite0", "--arch", "timm:resnet18"], ["drop --arch"]),
        (["layers", "no_such_model"], ["unknown model 'no_such_model'"]),
        ([*MAPS[:3], "blocks.44", "--image", "sample:chelsea"], ["Did you mean"]),
        ([*MAPS[:4], "--image", "sample:chelsea", "--channels", "200"], ["--channels 200", "out of range"]),
    ],
)
def test_bad_flags_one_line_exit_2_nothing_written(argv, needles, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _one_line(capsys, *needles)
    assert list(tmp_path.iterdir()) == []
