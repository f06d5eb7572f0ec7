"""The model registry and the built-in ImageNet model (torch)."""

from __future__ import annotations

import numpy as np
import pytest

import featgen
from featgen.errors import FeatgenError, WeightsUnavailableError


def test_lite0_classifies_sample_photos(lite0, chelsea, coffee):
    cat_classes = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
    top_cat = lite0.classify(chelsea, top=5)
    assert top_cat[0][0] in cat_classes and top_cat[0][0] == "Egyptian cat"
    assert top_cat[0][1] > 0.5
    top_coffee = lite0.classify(coffee, top=5)
    assert top_coffee[0][0] == "espresso"
    z = lite0.logits(coffee)[0].astype(np.float64)
    assert top_coffee[0][1] == pytest.approx(1 / np.exp(z - z.max()).sum(), rel=1e-6)  # softmax of the logits


@pytest.mark.slow
def test_lite0_logits_match_timm_reference_exactly(lite0, chelsea):
    """Same mapped weights in a fresh timm model, preprocessed by hand: identical logits."""
    import torch

    from featgen.backends.torchvision_compat import import_torchvision
    from featgen.models.torch_sources import load_state_in_order
    from featgen.models.weights import packaged_weights_path

    import_torchvision()
    import timm

    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval().to(lite0.backend.device)
    state = torch.load(packaged_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    load_state_in_order(ref, state, "test")
    x = lite0.prepare(chelsea)  # NHWC in [0, 1]
    ref_in = torch.from_numpy((x - 0.5) / 0.5).permute(0, 3, 1, 2).to(lite0.backend.device)
    with torch.no_grad():
        contiguous = ref(ref_in.contiguous()).cpu().numpy()
        ref = ref.to(memory_format=torch.channels_last)  # featgen runs models channels-last
        expected = ref(ref_in).cpu().numpy()
    got = lite0.logits(chelsea)
    np.testing.assert_array_equal(got, expected)  # bit for bit, in the same memory format
    np.testing.assert_allclose(got, contiguous, rtol=0, atol=1e-4)  # float reassociation only
    assert int(got.argmax()) == int(contiguous.argmax()) == 285


def test_preprocess_returns_native_nchw_batch(lite0, chelsea):
    x = lite0.preprocess(chelsea)
    assert tuple(x.shape) == (1, 3, 224, 224)
    pixel = lite0.prepare(chelsea)[0, 10, 20]  # RGB in [0, 1] at row 10, column 20
    np.testing.assert_allclose(x[0, :, 10, 20].cpu().numpy(), (pixel - 0.5) / 0.5, atol=1e-6)


def test_get_layer_returns_native_module(lite0):
    from torch import nn

    assert isinstance(lite0.module, nn.Module)
    assert isinstance(lite0.get_layer("conv_stem"), nn.Conv2d)


def test_layer_table_lists_blocks_with_shapes(lite0):
    table = {row.name: row for row in lite0.layer_table}
    for i in range(7):
        assert f"blocks.{i}" in table
    assert table["blocks.4"].shape == (14, 14, 112) and table["blocks.4"].channels == 112
    assert table["conv_stem"].shape == (112, 112, 32)
    assert table["classifier"].shape == (1000,)


def test_unknown_model_suggests_builtin():
    with pytest.raises(FeatgenError, match="efficientnet_lite0"):
        featgen.load_model("efficientnet_lite00")


def test_unknown_source():
    with pytest.raises(FeatgenError, match="unknown model source 'timmm'.*timm"):
        featgen.load_model("timmm:resnet18")


def test_unknown_layer_suggests_close_names(lite0):
    with pytest.raises(FeatgenError, match=r"Did you mean: blocks\.4"):
        lite0.resolve_layer("blocks.44")


def test_unit_out_of_range(lite0):
    with pytest.raises(FeatgenError, match=r"unit 112 is out of range.*112 channels"):
        lite0.check_unit("blocks.4", 112)


def test_unknown_label_suggests(lite0):
    assert lite0.class_index("espresso") == 967
    with pytest.raises(FeatgenError, match="espresso"):
        lite0.class_index("expresso")
    with pytest.raises(FeatgenError, match="out of range"):
        lite0.class_index(1000)


@pytest.mark.parametrize("spec,host_source", [("torchvision:resnet18", "torchvision"), ("timm:resnet18", "timm")])
def test_offline_download_gives_one_clear_error(monkeypatch, capsys, spec, host_source):
    """The same line from the API and from the command line (exit 2, no traceback)."""
    import featgen.models.torch_sources as ts
    from featgen.cli import main

    monkeypatch.setattr(ts, "online", lambda *a, **k: False)
    monkeypatch.setattr(ts, "_hf_cache_dir", lambda: "/nonexistent/hf-cache")
    monkeypatch.setenv("TORCH_HOME", "/nonexistent/torch-home")
    with pytest.raises(WeightsUnavailableError) as info:
        featgen.load_model(spec)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("cannot download")
    assert spec in msg and "efficientnet_lite0" in msg and "/nonexistent/" in msg
    assert main(["layers", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and msg in err, err


def test_vgg16_hed_torch_aliases(hed_torch):
    assert hed_torch.resolve_layer("block4_conv3") == "features.22"
    assert hed_torch.layer_info("block5_conv3").shape == (14, 14, 512)
    assert hed_torch.norm.bgr and hed_torch.norm.scale == 255.0


def test_file_checkpoint_roundtrip(tmp_path, lite0, chelsea):
    import torch

    path = tmp_path / "lite0.pth"
    torch.save(lite0.module.state_dict(), path)
    with pytest.raises(FeatgenError, match="arch="):
        featgen.load_model(f"file:{path}")
    m = featgen.load_model(f"file:{path}", arch="efficientnet_lite0", norm=lite0.norm, device=lite0.backend.device)
    np.testing.assert_allclose(m.logits(chelsea), lite0.logits(chelsea), atol=1e-5)


def test_file_checkpoint_bad_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FeatgenError, match="not a weights-only checkpoint"):
        featgen.load_model(f"file:{junk}")
    with pytest.raises(FeatgenError, match="not found"):
        featgen.load_model(f"file:{tmp_path / 'missing.pth'}")


# --- devices and precisions: one list of names, resolved once into the backend's value ---------------------
@pytest.mark.parametrize("given,torch_device,tf_device", [("cpu", "cpu", "cpu"), ("CPU:0", "cpu", "cpu"),
                                                          ("cuda", "cuda", "gpu"), ("gpu:1", "cuda:1", "gpu:1"),
                                                          ("cuda:2", "cuda:2", "gpu:2"), ("mps", "mps", None)])  # fmt: skip
def test_one_list_of_device_names_in_each_backends_spelling(given, torch_device, tf_device):
    from featgen.backends import resolve_device

    assert resolve_device("torch", given) == torch_device
    if tf_device is None:
        with pytest.raises(FeatgenError, match="'mps' is a torch device"):
            resolve_device("tensorflow", given)
    else:
        assert resolve_device("tensorflow", given) == tf_device


def test_a_bad_device_gets_the_same_line_from_the_engine_the_plan_and_the_config():
    from featgen.site.render.config import parse_config
    from featgen.site.render.plan import parse_device

    line = "unknown device 'potato' (--device): use auto, cpu, cuda, cuda:N (or gpu, gpu:N), mps or xpu."
    for call in (lambda: featgen.load_model("efficientnet_lite0", device="potato"), lambda: parse_device("potato"),
                 lambda: parse_device("torch=cpu,tensorflow=potato")):  # fmt: skip
        with pytest.raises(FeatgenError) as exc:
            call()
        assert str(exc.value) == line
    config = {"profiles": {"p": {"galleries": [{"model": "efficientnet_lite0", "device": "potato"},
                                               {"model": "vgg16_hed", "backend": "tensorflow", "device": "mps"},
                                               {"model": "vgg16_hed", "device": "gpu:1"}]}}}  # fmt: skip
    with pytest.raises(FeatgenError) as exc:
        parse_config(config)
    lines = str(exc.value).splitlines()
    assert len(lines) == 2 and line.replace("--device", "device") in lines[0], lines
    assert "'mps' is a torch device (device)" in lines[1], lines


def test_auto_is_resolved_once_into_the_value_the_backend_holds(device):
    from featgen.backends import get_backend
    from featgen.site.render.renderer import Renderer

    assert get_backend("torch", "auto") is get_backend("torch", None) is get_backend("torch", featgen.backends.resolve_device("torch", "auto"))
    renderer = Renderer()
    model = renderer.model("efficientnet_lite0", "torch", "auto", "float32")
    assert model.backend.device == ("cpu" if device == "cpu" else device)
    if device == "cpu":
        assert renderer.model("efficientnet_lite0", "torch", "cpu", "float32") is model  # one load


@pytest.mark.parametrize("capability,want", [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float32")])
def test_auto_precision_is_bfloat16_on_gpus_with_bf16_tensor_cores(monkeypatch, capability, want):
    import torch

    from featgen.backends import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("torch", "cuda", "auto") == want
    assert resolve_precision("torch", "cpu", "auto") == "float32"
    assert resolve_precision("tensorflow", "gpu", "auto") == "float32"
    assert resolve_precision("torch", "cuda", "float32") == "float32"  # float32 stays an option
    with pytest.raises(FeatgenError, match="unknown precision 'float16'"):
        resolve_precision("torch", "cpu", "float16")
