"""What a user hands featgen, checked before it is used: one set of limits for the command line and
the gallery config, YAML that cannot blow up, files that are files, folders walked within bounds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from featgen.errors import FeatgenError
from featgen.limits import LIMITS, short
from featgen.site.render.config import load_config, parse_config


def _config(**gallery) -> dict:
    return {"profiles": {"p": {"galleries": [{"model": "efficientnet_lite0", **gallery}]}}}


@pytest.mark.parametrize("name,flag", [("size", "--size"), ("steps", "--steps"), ("batch_size", "--batch-size"), ("seed", "--seed")])
def test_the_cli_and_the_config_share_their_limits(name, flag, tmp_path, capsys):
    from featgen.cli import main

    lo, hi = LIMITS[name]
    argv = ["render", "vgg16_hed", "--layer", "block1_conv1", "--out", str(tmp_path / "out")]
    for bad in (lo - 1, hi + 1):
        assert main([*argv, flag, str(bad)]) == 2
        assert f"use {lo}..{hi}" in capsys.readouterr().err
        if name != "batch_size":  # a render setting of the CLI only
            with pytest.raises(FeatgenError, match=f"{name} must be an integer >= {lo} and <= {hi:,}"):
                parse_config(_config(**{name: bad}))
    if name != "batch_size":
        assert parse_config(_config(**{name: hi}))["p"].galleries[0]


@pytest.mark.parametrize("gallery,match", [
    ({"model": "timm:"}, "names no model: write timm:NAME"),
    ({"model": "keras:VGG16"}, "keras: models run on tensorflow, not torch: set backend: tensorflow"),
    ({"model": "timm:resnet18", "arch": "timm:resnet18"}, "arch is for torch state dicts"),
    ({"model": "efficientnet_lite0", "units": [0, 2**20]}, "each unit index must be an integer >= 0"),
])  # fmt: skip
def test_a_model_the_gallery_cannot_load_is_one_line(gallery, match):
    with pytest.raises(FeatgenError, match=match) as info:
        parse_config(_config(**gallery))
    assert len(str(info.value).splitlines()) == 1


def test_model_files_need_the_right_backend_and_arch(tmp_path):
    state, keras_file = tmp_path / "w.pth", tmp_path / "m.keras"
    state.write_bytes(b"x")
    keras_file.write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.pth")
    for gallery, match in [({"model": f"file:{state}", "arch": "resnet18"}, "arch 'resnet18' is no architecture"),
                           ({"model": f"file:{state}", "backend": "tensorflow"}, "no Keras model file"),
                           ({"model": f"file:{keras_file}", "arch": "timm:resnet18"}, "is a Keras file: set backend"),
                           ({"model": f"file:{tmp_path / 'pipe.pth'}", "arch": "timm:x"}, "named pipe"),
                           ({"model": f"file:{tmp_path}", "arch": "timm:x"}, "got a directory")]:  # fmt: skip
        with pytest.raises(FeatgenError, match=match):
            parse_config(_config(**gallery))
    g = parse_config(_config(model=f"file:{state}", arch="timm:resnet18"))["p"].galleries[0]
    assert g.load_spec == f"file:{state}?arch=timm:resnet18"


def test_yaml_that_would_blow_up_is_refused_before_it_is_built(tmp_path):
    deep = tmp_path / "deep.yml"
    deep.write_text("profiles: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(FeatgenError, match="nested too deep"):
        load_config(deep)
    big = tmp_path / "big.yml"
    big.write_bytes(b"# " + b"x" * (5 << 20))
    with pytest.raises(FeatgenError, match="is over 4 MB"):
        load_config(big)
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    with pytest.raises(FeatgenError, match="named pipe"):
        load_config(fifo)


def test_many_errors_are_a_screenful(tmp_path):
    with pytest.raises(FeatgenError) as info:
        parse_config({"profiles": {"p": {"galleries": [{"model": "nope"}] * 500}}})
    lines = str(info.value).splitlines()
    assert len(lines) == 21 and lines[-1].endswith("and 480 more problems.")


def test_short_cuts_a_huge_value():
    assert len(short("x" * 10**6)) < 200 and len(short([[1] * 10**4] * 10**2)) < 200


# --- files and folders -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_an_image_path_that_is_no_file_is_refused_before_it_is_opened(tmp_path, kind):
    from featgen.images import load_image

    path = {"fifo": tmp_path / "a.png", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(FeatgenError, match={"fifo": "named pipe", "device": "character device", "folder": "directory"}[kind]):
        load_image(path)


def test_an_examples_folder_is_walked_within_its_limit(tmp_path):
    from PIL import Image

    from featgen.site.render.examples import folder_photos

    (tmp_path / "a").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / "a" / f"{i}.png")
    os.mkfifo(tmp_path / "a" / "pipe.jpg")  # an image name, no image: skipped, never opened
    (tmp_path / "link").symlink_to("/", target_is_directory=True)  # not followed
    assert [n for n, _ in folder_photos(tmp_path, limit=10)] == ["a/0.png", "a/1.png", "a/2.png"]
    with pytest.raises(FeatgenError, match="holds more than 4 files and folders: .* raise examples_limit"):
        folder_photos(tmp_path, limit=4)
    with pytest.raises(FeatgenError, match="is the root of the filesystem"):
        folder_photos("/")
    assert parse_config({**_config(), "profiles": {"p": {"galleries": [{"model": "efficientnet_lite0"}], "examples": str(tmp_path),
                                                         "examples_limit": 4}}})["p"].examples_limit == 4  # fmt: skip


def test_the_tutorials_stamp_is_not_written_through_a_link(tmp_path):
    from featgen.site.mkdocs.tutorials import invalidate_stale_tutorials

    victim = tmp_path / "precious"
    victim.write_text("keep")
    (tmp_path / "tutorials").mkdir()
    (tmp_path / "tutorials" / ".featgen-engine-hash").symlink_to(victim)
    assert invalidate_stale_tutorials(tmp_path / "tutorials")
    assert victim.read_text() == "keep" and not (tmp_path / "tutorials" / ".featgen-engine-hash").is_symlink()
