"""Shared fixtures. Models load once per session; everything is seeded and small."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("FEATGEN_PROGRESS", "0")


@pytest.fixture(scope="session")
def lite0():
    import featgen

    return featgen.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def hed_torch():
    import featgen

    return featgen.load_model("vgg16_hed")


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
