"""Feature maps, kernels and hand-made kernels."""

from __future__ import annotations

import numpy as np
import pytest

import featgen
from featgen.errors import FeatgenError


def test_activations_match_layer_table(lite0, chelsea):
    acts = featgen.activations(lite0, chelsea, "blocks.4")
    assert acts.shape == lite0.layer_info("blocks.4").shape == (14, 14, 112)
    assert np.isfinite(acts).all() and acts.std() > 0


def test_activations_are_those_of_the_real_forward(lite0, chelsea):
    """Capturing the classifier input reproduces the logits through the last linear layer."""
    pooled = featgen.activations(lite0, chelsea, "global_pool")
    w = lite0.get_layer("classifier").weight.detach().cpu().numpy()
    b = lite0.get_layer("classifier").bias.detach().cpu().numpy()
    np.testing.assert_allclose(pooled @ w.T + b, lite0.logits(chelsea)[0], atol=1e-4)


def test_feature_map_grid_normalizes_each_map(rng):
    acts = rng.normal(size=(6, 6, 4)).astype(np.float32)
    acts[..., 1] *= 100
    img = featgen.feature_map_grid(acts, colormap="gray", margin=2)
    assert img.shape == (6 * 2 + 2, 6 * 2 + 2, 3)
    # per-map normalization: every map spans the full range of the colormap
    assert img[:6, :6].min() == 0.0 and img[:6, :6].max() == pytest.approx(1.0)
    with pytest.raises(FeatgenError, match="out of range"):
        featgen.feature_map_grid(acts, channels=[5])
    with pytest.raises(FeatgenError, match="spatial"):
        featgen.feature_map_grid(acts[0, 0])


def test_first_layer_kernels_as_rgb_tiles(lite0):
    k = featgen.layer_kernels(lite0)
    assert k.shape == (3, 3, 3, 32)
    tiles = featgen.kernel_tiles(k, scale=4)
    assert tiles.shape == (6 * 12 + 5 * 2, 6 * 12 + 5 * 2, 3)  # 32 tiles of 12 px in a 6-column grid
    first = k[..., 0]
    expected = np.broadcast_to(0.5 + 0.5 * first[0, 0] / np.abs(first).max(), (4, 4, 3))  # grey = 0
    np.testing.assert_allclose(tiles[:4, :4], expected, atol=1e-6)
    with pytest.raises(FeatgenError, match="no convolution kernels"):
        featgen.layer_kernels(lite0, "blocks.4")


def test_edge_kernels_respond_to_their_edges():
    img = np.zeros((16, 16), np.float32)
    img[:, 8:] = 1.0  # a vertical edge, dark to bright
    k = featgen.edge_kernels(4)
    assert k.shape == (4, 4, 1, 4)
    pre, post = featgen.apply_kernels(img, k)
    assert pre.shape == (16, 16, 4)
    resp = np.abs(pre[4:12, 4:12]).max(axis=(0, 1))
    # 8 ones under the +1 half, zeros under the -1 half (grey conversion of white is 1 to 1e-6)
    assert resp[0] == pytest.approx(8.0, rel=1e-4) and resp[1] == pytest.approx(8.0, rel=1e-4)
    assert resp[2] == pytest.approx(0.0, abs=1e-5) and resp[3] == pytest.approx(0.0, abs=1e-5)
    inner = np.s_[4:12, 4:12]  # away from the zero padding, which makes edges of its own
    assert pre[inner][..., 0].max() == pytest.approx(8.0, rel=1e-4)
    assert pre[inner][..., 1].min() == pytest.approx(-8.0, rel=1e-4)
    np.testing.assert_array_equal(post, np.maximum(pre, 0))
    assert post[inner][..., 1].max() == 0.0  # the negative kernel's response is all cut by ReLU


def test_plot_kernels_annotates_values():
    fig = featgen.plot_kernels(featgen.edge_kernels(4), titles=["v", "-v", "h", "-h"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 4 * 16 and set(texts) == {"-1", "1"}
