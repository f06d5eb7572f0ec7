"""Links between units (expanded weights) against independent computations: the kernel read with
h5py and NumPy, an autograd Jacobian, the other backend, and the classifier's own weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from featgen.analysis import class_weights, expanded_weights, top_links


def _top_by_strength(signed: np.ndarray, k: int) -> np.ndarray:
    """Per row, the ``k`` columns of the strongest links of either sign, from :func:`top_links`."""
    links = top_links(signed, k)
    units = np.concatenate([links["exc_unit"], links["inh_unit"]], axis=1)
    weights = np.abs(np.concatenate([links["exc_weight"], links["inh_weight"]], axis=1))
    order = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(units, order, axis=1)


def test_vgg16_block3_conv2_inputs_are_the_argsort_of_its_kernel_slices_norms(hed_torch, hed_tf):
    """The weights file read with h5py: each output unit's strongest inputs are the input channels
    whose 3x3 kernel slices have the largest L2 norm, and each link's sign is its slice's sum's; and
    across a pooling, the links are the pooled kernel's."""
    import h5py

    from featgen.models.weights import packaged_weights_path

    def kernel(name: str) -> np.ndarray:  # vars/0 of the group named after the layer: (3, 3, in, out)
        found = []
        with h5py.File(packaged_weights_path("vgg16_hed"), "r") as f:
            f.visititems(lambda _, obj: found.append(np.asarray(obj["0"], np.float64)) if isinstance(obj, h5py.Group)
                         and obj.attrs.get("name") == name else None)  # fmt: skip
        assert len(found) == 1
        return found[0]

    k = kernel("block3_conv2")
    norm, total = np.sqrt((k**2).sum(axis=(0, 1))).T, k.sum(axis=(0, 1)).T  # (out, in)
    want = np.argsort(-norm, axis=1, kind="stable")[:, :8]
    # across block2's max pooling, taken as 2x2 averaging: each weight of block3_conv1 spreads over 2x2
    # taps at a quarter of its value, so the 6x6 kernel's norm is half the 3x3 one's and its sum the same
    k1 = kernel("block3_conv1")
    norm1, total1 = np.sqrt((k1**2).sum(axis=(0, 1))).T / 2, k1.sum(axis=(0, 1)).T
    for model in (hed_torch, hed_tf):
        e = expanded_weights(model, "block3_conv1", "block3_conv2")
        np.testing.assert_allclose(e.norm, norm, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.sign(e.total), np.sign(total))
        np.testing.assert_array_equal(_top_by_strength(e.signed, 8), want)
        e = expanded_weights(model, "block2_conv2", "block3_conv1")
        assert (e.stride, e.extent) == (2, 6)
        np.testing.assert_allclose(e.norm, norm1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(e.total, total1, rtol=1e-4, atol=1e-5)


def _identity_activations(block):
    """A copy of a timm block with every activation module replaced by the identity."""
    import torch

    block = copy.deepcopy(block)
    for module in list(block.modules()):
        for child, sub in list(module.named_children()):
            if isinstance(sub, (torch.nn.ReLU, torch.nn.ReLU6)):
                setattr(module, child, torch.nn.Identity())
    return block.eval()


def test_lite0_links_through_an_inverted_residual_block_match_its_autograd_jacobian(lite0):
    """blocks.2.1 (1x1 expand, BN, 5x5 depthwise, BN, 1x1 project, BN, residual sum) with its ReLU6s as
    the identity: the Jacobian of one output position w.r.t. the block's input is the expanded kernel."""
    import torch

    block = _identity_activations(lite0.module.blocks[2][1])
    x = torch.zeros(1, 40, 9, 9)
    with torch.no_grad():
        jac = torch.autograd.functional.jacobian(lambda t: block(t)[0, :, 4, 4], x)  # (40 out, 1, 40 in, 9, 9)
    jac = jac[:, 0].double().numpy()
    e = expanded_weights(lite0, "blocks.2.0", "blocks.2.1")
    np.testing.assert_allclose(e.norm, np.sqrt((jac**2).sum(axis=(2, 3))), atol=1e-4)
    np.testing.assert_allclose(e.total, jac.sum(axis=(2, 3)), atol=1e-4)
    assert e.norm.diagonal().min() > 0.5  # the residual sum: each unit passes itself on


@pytest.mark.parametrize("pair", [("vgg16_hed", "block2_conv2", "block3_conv1"),
                                  ("efficientnet_lite0", "blocks.2.1.conv_pwl", "blocks.3.0.conv_pw")])  # fmt: skip
def test_torch_and_tensorflow_give_the_same_links(pair, request):
    """Across a max pooling (taken as averaging) in VGG16 and across a residual sum in Lite0."""
    name, source, target = pair
    models = [request.getfixturevalue(f) for f in (("hed_torch", "hed_tf") if name == "vgg16_hed" else ("lite0", "lite0_tf"))]
    a, b = (expanded_weights(m, source, target) for m in models)
    assert a.stride == b.stride == (2 if name == "vgg16_hed" else 1)
    np.testing.assert_allclose(a.norm, b.norm, rtol=1e-4, atol=1e-5 * float(a.norm.max()))
    theirs = top_links(b.signed, 8)
    for key, value in top_links(a.signed, 8).items():
        if key.endswith("unit"):
            np.testing.assert_array_equal(value, theirs[key], err_msg=key)
        else:
            np.testing.assert_allclose(value, theirs[key], rtol=1e-4, err_msg=key)


def test_class_weights_of_lite0s_last_layer_are_its_classifier_through_the_batch_norm(lite0):
    """conv_head → BN (+ReLU6, taken as the identity) → mean pooling → classifier: the weight of unit u
    to class c is the classifier's W[c, u] times the BN's scale of u, read from the state dict."""
    sd = {k: v.double().numpy() for k, v in lite0.module.state_dict().items()}
    scale = sd["bn2.weight"] / np.sqrt(sd["bn2.running_var"] + lite0.module.bn2.eps)
    want = sd["classifier.weight"] * scale[None, :]
    got = class_weights(lite0, "conv_head")
    assert got.shape == (1000, 1280)
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


def test_top_links_keeps_signs_apart_pads_and_drops_zero_links():
    signed = np.array([[0.5, -0.9, 0.0, 0.2, -0.1], [0.0, 0.0, 0.0, 0.0, 1e-9]], np.float32)
    got = top_links(signed, 3)
    assert got["exc_unit"].tolist() == [[0, 3, -1], [-1, -1, -1]]
    np.testing.assert_allclose(got["exc_weight"], [[0.5, 0.2, 0.0], [0, 0, 0]])
    assert got["inh_unit"].tolist() == [[1, 4, -1], [-1, -1, -1]]
    np.testing.assert_allclose(got["inh_weight"], [[-0.9, -0.1, 0.0], [0, 0, 0]])
