"""Shared fixtures. Models load once per session; everything is seeded and small."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("FEATGEN_PROGRESS", "0")


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device of the torch models under test: cpu (default), cuda, cuda:1")


def pytest_configure(config):
    device = config.getoption("--device")
    if device.startswith("cuda"):
        # bytes are compared across runs and batch sizes: cuBLAS and cuDNN must pick the same kernels
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: torch sees no CUDA GPU here.")
        torch.use_deterministic_algorithms(True)
        # references are compared at float32 tolerances: TF32 convolutions would round to 10 bits
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = False


@pytest.fixture(scope="session")
def device(request) -> str:
    """The torch device under test (``--device``): ``cpu`` unless asked for."""
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def lite0(device):
    import featgen

    return featgen.load_model("efficientnet_lite0", device=device, precision="float32")  # auto: bf16 on a GPU


@pytest.fixture(scope="session")
def hed_torch(device):
    import featgen

    return featgen.load_model("vgg16_hed", device=device, precision="float32")


@pytest.fixture(scope="session")
def lite0_tf():
    import featgen

    return featgen.load_model("efficientnet_lite0", backend="tensorflow")


@pytest.fixture(scope="session")
def hed_tf():
    import featgen

    return featgen.load_model("vgg16_hed", backend="tensorflow")


@pytest.fixture(scope="session")
def chelsea():
    from featgen.images import sample_image

    return sample_image("chelsea")


@pytest.fixture(scope="session")
def coffee():
    from featgen.images import sample_image

    return sample_image("coffee")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
