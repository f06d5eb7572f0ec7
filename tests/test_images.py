"""Image loading: paths, PIL, arrays, greyscale, RGBA, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from featgen.errors import FeatgenError
from featgen.images import grid, load_batch, load_image, overlay, resize


def test_path_pil_and_array_agree(tmp_path, rng):
    arr = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    a = load_image(path)
    b = load_image(Image.fromarray(arr))
    c = load_image(arr)
    d = load_image(arr.astype(np.float32) / 255)
    for im in (a, b, c, d):
        assert im.shape == (20, 30, 3) and im.dtype == np.float32
        np.testing.assert_allclose(im, arr / 255.0, atol=1e-6)


def test_greyscale_and_rgba_are_converted():
    grey = np.full((8, 8), 128, np.uint8)
    out = load_image(grey)
    assert out.shape == (8, 8, 3) and np.allclose(out, 128 / 255)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, ..., 3] = 255  # top half opaque red, bottom half transparent -> white
    out = load_image(Image.fromarray(rgba, "RGBA"))
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])
    np.testing.assert_allclose(out[3, 0], [1, 1, 1])


def test_float_out_of_range_is_rejected():
    with pytest.raises(FeatgenError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 200.0))


def test_batch_mixed_sizes_needs_resize(rng):
    a, b = rng.random((8, 8, 3)), rng.random((10, 8, 3))
    with pytest.raises(FeatgenError, match="share one size"):
        load_batch([a, b])
    assert load_batch([a, b], size=16).shape == (2, 16, 16, 3)


def test_grid_layout_and_resize():
    ims = np.zeros((64, 10, 10, 3), np.float32)
    g = grid(ims, margin=5)
    assert g.shape == (8 * 10 + 7 * 5, 8 * 10 + 7 * 5, 3)
    assert g[10:15].min() == 1.0  # margins are background
    assert resize(np.zeros((20, 40, 3), np.float32), 8, crop=True).shape == (8, 8, 3)


def test_overlay_blends_colormap():
    img = np.zeros((4, 4, 3), np.float32)
    cam = np.zeros((2, 2), np.float32)
    cam[0, 0] = 1.0
    out = overlay(img, cam, colormap="gray", alpha=1.0)
    assert out.shape == (4, 4, 3)
    assert out[0, 0].mean() > out[3, 3].mean()
    with pytest.raises(FeatgenError, match="alpha"):
        overlay(img, cam, alpha=2)


def test_16_bit_greyscale_keeps_its_levels(tmp_path):
    """A 16-bit PNG (PIL mode I;16) is scaled by 65535: converting through RGB clips it to white."""
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)  # uint16 -> mode I;16
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # what Pillow hands over for 16-bit greyscale
    out = load_image(path)
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(out[..., 0], ramp / 65535.0, atol=1e-6)
    assert out.mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("I", [128 / 255] * 3),  # 32-bit integers holding 8-bit data
        ("F", [0.25] * 3),  # floats in [0, 1]
        ("CMYK", [0.0, 1.0, 1.0]),  # pure cyan ink
        ("LA", [1.0, 1.0, 1.0]),  # fully transparent: white
        ("1", [1.0, 1.0, 1.0]),
    ],
)
def test_other_pil_modes_convert(mode, expected):
    value = {"I": 128, "F": 0.25, "CMYK": (255, 0, 0, 0), "LA": (0, 0), "1": 1}[mode]
    out = load_image(Image.new(mode, (3, 2), value))
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-6)
