"""What the galleries render: one config, two named profiles (``quick`` for a CPU, ``full`` for a GPU)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FeatgenError, suggest


@dataclass(frozen=True)
class ModelGallery:
    """One model in one backend: which layers and units to render, and how."""

    model: str
    backend: str
    layers: tuple[str, ...] | None  # None: every conv layer
    units: int | None  # the first N units of each layer; None: all
    size: int = 96
    steps: int = 64  # regularized
    naive_steps: int = 30
    diversity: int = 4  # diversity images per unit (0: none)
    negative: bool = True


@dataclass(frozen=True)
class Profile:
    name: str
    galleries: tuple[ModelGallery, ...]
    photos: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper")
    description: str = ""
    extra: dict = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        (
            ModelGallery("efficientnet_lite0", "torch", ("conv_stem", "blocks.2", "blocks.4", "blocks.6"), 4, size=96, steps=48),
            ModelGallery("vgg16_hed", "torch", ("block1_conv1", "block3_conv1", "block5_conv3"), 4, size=96, steps=48),
            ModelGallery("vgg16_hed", "tensorflow", ("block1_conv1", "block3_conv1", "block5_conv3"), 4, size=96, steps=48),
        ),
        description="CPU default: a few units of a few layers, few steps (minutes on 2 cores).",
    ),
    "full": Profile(
        "full",
        (
            ModelGallery("efficientnet_lite0", "torch", None, None, size=128, steps=512),
            ModelGallery("vgg16_hed", "torch", None, None, size=128, steps=512),
            ModelGallery("efficientnet_lite0", "tensorflow", None, None, size=128, steps=512),
            ModelGallery("vgg16_hed", "tensorflow", None, None, size=128, steps=512),
        ),
        description="Every unit of every conv layer at 128 px and 512 steps: meant for a GPU.",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise FeatgenError(f"unknown gallery profile {name!r}: choose {', '.join(PROFILES)}.{suggest(name, PROFILES)}")
    return PROFILES[name]
