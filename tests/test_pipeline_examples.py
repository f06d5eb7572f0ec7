"""Dataset examples: the forward-only scan keeps each unit's top and bottom photos, with crops."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from featgen.errors import FeatgenError
from featgen.site.render.examples import (
    encode_jpegs,
    folder_photos,
    jpeg_at,
    offline_photos,
    scan,
    set_digest,
)


def _folder(tmp_path, n=7):
    rng = np.random.default_rng(0)
    for i in range(n):  # flat colours, stripes and noise: units of a first conv layer tell them apart
        img = np.zeros((80, 96, 3), np.uint8)
        if i % 3 == 0:
            img[:] = rng.integers(0, 256, 3)
        elif i % 3 == 1:
            img[:, ::2 + i] = 255
        else:
            img = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / f"img{i}.{'png' if i % 2 else 'jpg'}")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_scan_keeps_the_highest_and_lowest_peaks_with_crops(lite0, tmp_path):
    from featgen.images import load_image, resize
    from featgen.maps import batch_activations

    photos = folder_photos(_folder(tmp_path))
    assert [n for n, _ in photos] == [f"img{i}.{'png' if i % 2 else 'jpg'}" for i in range(7)]
    units = (0, 5, 9)
    out = scan(lite0, "conv_stem", units, photos, k=3, crop=40, batch=3)  # batches that do not divide 7
    imgs = np.stack([resize(load_image(p), lite0.input_size, crop=True) for _, p in photos])
    peaks = batch_activations(lite0, imgs, "conv_stem").max(axis=(1, 2))[:, list(units)].T  # (units, photos)
    for i in range(len(units)):
        expected_top = np.argsort(-peaks[i], kind="stable")[:3]
        np.testing.assert_array_equal(out["top_file"][i], expected_top)
        np.testing.assert_allclose(out["top_value"][i], peaks[i][expected_top], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(out["bottom_file"][i], np.argsort(peaks[i], kind="stable")[:3])
        assert out["top_value"][i][0] >= out["top_value"][i][-1] >= out["bottom_value"][i][-1] >= out["bottom_value"][i][0]
    assert list(out["files"]) == [n for n, _ in photos]
    assert len(out["top_offsets"]) == len(units) * 3 + 1
    crop = Image.open(io.BytesIO(jpeg_at(out["top_jpeg"], out["top_offsets"], 4)))
    assert crop.format == "JPEG" and crop.size == (40, 40)


def test_jpeg_blobs_roundtrip_and_repeat():
    y, x = np.mgrid[0:24, 0:32]
    ims = [np.stack([x * 8, y * 10, (x + y) * 4 + 40 * i], -1).clip(0, 255).astype(np.uint8)[: 16 + i] for i in range(3)]
    data, offsets = encode_jpegs(ims)
    again, _ = encode_jpegs(ims)
    assert data.tobytes() == again.tobytes()
    for i, im in enumerate(ims):
        back = np.asarray(Image.open(io.BytesIO(jpeg_at(data, offsets, i))))
        assert back.shape == im.shape and np.abs(back.astype(int) - im).mean() < 3


def test_offline_photos_are_a_fixed_list_whatever_is_installed(monkeypatch):
    """The same 29 photos in every environment: scikit-learn's samples (installed here for the tests,
    absent from the site's environment) never join the set."""
    import featgen.site.render.examples as ex

    pytest.importorskip("sklearn", reason="shows that an installed scikit-learn adds nothing")
    photos = offline_photos()
    assert [n for n, _ in photos] == list(ex.OFFLINE_PHOTOS) and len(photos) == 29
    assert all(p.is_file() for _, p in photos) and not any(n.startswith("sklearn/") for n, _ in photos)
    real = ex._package_dir
    monkeypatch.setattr(ex, "_package_dir", lambda package: None if package == "skimage" else real(package))
    with pytest.raises(FeatgenError, match=r"need scikit-image \(missing skimage/astronaut.png and 25 more\)"):
        offline_photos()


def test_folder_digest(tmp_path):
    folder = _folder(tmp_path)
    d1 = set_digest(folder_photos(folder))
    Image.new("RGB", (70, 70)).save(folder / "new.png")
    assert set_digest(folder_photos(folder)) != d1
    with pytest.raises(FeatgenError, match="does not exist"):
        folder_photos(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FeatgenError, match="holds no image"):
        folder_photos(empty)


def test_config_names_an_examples_folder(tmp_path):
    from featgen.site.render.config import parse_config

    def profile(examples):
        return {"profiles": {"p": {"examples": examples, "galleries": [{"model": "efficientnet_lite0"}]}}}

    assert parse_config(profile(str(tmp_path)))["p"].examples == str(tmp_path)
    assert parse_config(profile("none"))["p"].examples is None
    with pytest.raises(FeatgenError, match="examples folder .* does not exist"):
        parse_config(profile(str(tmp_path / "missing")))
