"""The dataset-example scan: sharded top-k against brute force, skipped files, resuming, receptive fields."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from featgen.site.render.examples import photo_set, read_photo, read_photos
from featgen.site.render.scan import merge_entries, scan_arrays, shards

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("conv_stem", "blocks.1")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from make_collection import make_collection
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return make_collection(tmp_path_factory.mktemp("collection"), count=21, seed=3)


def _shard(model, photos, start, stop, k):
    images = ((i, im) for i, im, _ in read_photos(photos, range(start, stop), 64))
    arrays, info = scan_arrays(model, tuple(model.resolve_layer(n) for n in LAYERS), images, k, batch=4)
    return arrays, info


def test_sharded_scan_equals_brute_force_topk_in_any_order(lite0, collection):
    """Three shards merged in two orders give the top-k and bottom-k of full activations (NumPy)."""
    from featgen.maps import batch_activations

    photos = photo_set(str(collection))
    k = 5
    parts = [_shard(lite0, photos, a, b, k) for a, b in shards(len(photos), 9)]
    assert len(parts) == 3
    forward = merge_entries([p[0] for p in parts])
    backward = merge_entries([p[0] for p in parts[::-1]])
    for name, a in forward.arrays().items():
        np.testing.assert_array_equal(a, backward.arrays()[name], err_msg=name)
    skipped = np.concatenate([p[0]["skipped"] for p in parts])
    assert sorted(photos[i][0] for i in skipped) == ["bad/corrupt.jpg", "bad/empty.png", "bad/notes.jpg", "bad/truncated.jpg"]
    good = [i for i in range(len(photos)) if i not in set(skipped)]
    imgs = np.stack([read_photo(photos[i][1], 64)[0] for i in good]).astype(np.float32) / 255
    offset = 0
    for layer in LAYERS:
        acts = batch_activations(lite0, imgs, layer, size=64)  # (N, h, w, C): the brute force
        flat = acts.reshape(len(good), -1, acts.shape[-1])
        peak, mean = flat.max(axis=1), flat.mean(axis=1)
        idx = np.asarray(good)
        for u in range(acts.shape[-1]):
            top = np.lexsort((idx, -peak[:, u]))[:k]
            bottom = np.lexsort((idx, mean[:, u]))[:k]
            np.testing.assert_array_equal(forward.top_image[offset + u], idx[top])
            np.testing.assert_allclose(forward.top_value[offset + u], peak[top, u], rtol=1e-4, atol=1e-4)
            # the recorded position holds the maximum (positions that tie within rounding may differ)
            at = flat[top, forward.top_pos[offset + u], u]
            np.testing.assert_allclose(at, peak[top, u], rtol=1e-4, atol=1e-4)
            np.testing.assert_array_equal(forward.bottom_image[offset + u], idx[bottom])
            np.testing.assert_allclose(forward.bottom_value[offset + u], mean[bottom, u], rtol=1e-4, atol=1e-4)
            at = flat[bottom, forward.bottom_pos[offset + u], u]
            np.testing.assert_allclose(at, peak[bottom, u], rtol=1e-4, atol=1e-4)
        offset += acts.shape[-1]
    assert offset == len(forward.silent)
    # the classes the model predicts the readable images as (the class pages' counts), summed over shards
    be = lite0.backend
    with be.no_grad():
        logits = be.to_numpy(be.forward(lite0, be.asarray(imgs), logits=True).logits)
    want = np.bincount(logits.argmax(axis=1), minlength=1000)
    np.testing.assert_array_equal(sum(p[0]["predicted"] for p in parts), want)
    assert want.sum() == len(good)


def test_an_unreadable_collection_file_is_skipped_with_its_reason(collection):
    image, why = read_photo(collection / "bad" / "truncated.jpg", 32)
    assert image is None and "truncated" in why
    image, why = read_photo(collection / "bad" / "empty.png", 32)
    assert image is None and "not an image" in why
    image, why = read_photo(collection / "part0" / "img00000.png", 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and why == ""


def test_collections_from_a_folder_a_glob_and_a_list_file(collection, tmp_path):
    folder = photo_set(str(collection))
    assert len(folder) == 25 and folder == sorted(folder)
    globbed = photo_set(str(collection / "part1" / "*.jpg"))
    assert [p for _, p in globbed] == sorted((collection / "part1").glob("*.jpg"))
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images\n{collection / 'part0' / 'img00000.png'}\n\n../{collection.name}/part2/img00002.jpg\n")
    listed = photo_set(str(listing))
    assert [n for n, _ in listed] == [str(collection / "part0" / "img00000.png"), f"../{collection.name}/part2/img00002.jpg"]
    assert all(read_photo(p, 16)[0] is not None for _, p in listed)


def test_receptive_fields_of_vgg16_match_the_literature(hed_torch, hed_tf):
    """conv3_3: 40 px, conv4_3: 92 px, conv5_3: 196 px (3x3 convolutions, 2x2 pools)."""
    from featgen.fields import receptive_field

    sizes = {n: receptive_field(hed_torch, n).size for n in ("block1_conv1", "block1_conv2", "block3_conv3", "block4_conv3", "block5_conv3")}
    assert sizes == {"block1_conv1": 3, "block1_conv2": 5, "block3_conv3": 40, "block4_conv3": 92, "block5_conv3": 196}
    assert all(receptive_field(hed_tf, n).size == s for n, s in sizes.items())
    f = receptive_field(hed_torch, "block5_conv3")
    assert (f.jump, f.start) == (16, 8.0) and f.box(0, 0) == (0, 0, 196, 196) and f.box(13, 13, 32) == (28, 28, 224, 224)


def test_the_receptive_field_holds_every_input_pixel_a_unit_sees(lite0):
    """On EfficientNet-Lite0 (depthwise convolutions, residual sums), the input gradient of one unit
    at one position is zero outside its field's box, and reaches the box's edges."""
    import torch

    from featgen.fields import receptive_field

    f = receptive_field(lite0, "blocks.1", 64)
    be = lite0.backend
    x = torch.rand(1, 64, 64, 3, requires_grad=True)
    acts = be.forward(lite0, x, capture=[lite0.resolve_layer("blocks.1")], logits=False).activations
    a = next(iter(acts.values()))
    row, col = 8, 5
    a[0, row, col, 3].backward()
    seen = (x.grad[0].abs().sum(-1) > 0).numpy()
    top, left, bottom, right = f.box(row, col)
    assert seen[top:bottom, left:right].any() and not seen.sum() - seen[top:bottom, left:right].sum()
    ys, xs = np.nonzero(seen)
    assert (ys.min(), xs.min()) == (top, left) and (ys.max() + 1, xs.max() + 1) == (bottom, right)


def test_torch_and_tensorflow_agree_on_receptive_fields(lite0, lite0_tf):
    from featgen.fields import receptive_field

    for layer in ("conv_stem", "blocks.1", "blocks.3", "blocks.6"):
        assert receptive_field(lite0, layer) == receptive_field(lite0_tf, layer), layer


def test_the_peak_outline_is_white_inside_black_on_the_field_box():
    from featgen.images import outline

    out = outline(np.full((40, 40, 3), 0.5, np.float32), (10, 5, 30, 25), width=2)
    assert (out[10, 5:25] == 0).all() and (out[11, 6:24] == 1).all()  # the black edge, the white line inside
    assert (out[12:28, 7:23] == 0.5).all() and (out[:10] == 0.5).all() and (out[:, 25:] == 0.5).all()


def test_a_layer_behind_a_relu_is_read_before_it_in_both_backends(hed_torch, hed_tf, lite0):
    """VGG16's block5_conv3 ends in a ReLU (a module in torch, fused in Keras): the scan reads the
    convolution's output, whose positive part is the layer's; Lite0's block outputs end in no activation."""
    assert hed_torch.backend.linear_output(hed_torch, "features.29") == "features.28"
    assert hed_tf.backend.linear_output(hed_tf, "block5_conv3") == "block5_conv3:pre"
    assert lite0.backend.linear_output(lite0, "blocks.1") == "blocks.1"
    x = np.random.default_rng(0).random((2, 48, 48, 3), dtype=np.float32)
    for model, layer in ((hed_torch, "features.29"), (hed_tf, "block5_conv3")):
        be = model.backend
        names = [layer, be.linear_output(model, layer)]
        with be.no_grad():
            acts = be.forward(model, be.asarray(x), capture=names, logits=False).activations
        post, pre = (be.to_numpy(acts[n]) for n in names)
        assert pre.min() < 0 and post.min() == 0
        np.testing.assert_allclose(np.maximum(pre, 0), post, rtol=1e-6, atol=1e-6)
