"""Feature visualization: images that maximize channels, neurons, layers, directions or classes."""

from . import objectives
from .render import (
    ALGORITHM_VERSION,
    METHODS,
    Render,
    algorithm_version,
    deprocess,
    high_frequency_share,
    visualize,
)
from .transforms import PRESETS, TransformStack

__all__ = ["visualize", "Render", "objectives", "deprocess", "high_frequency_share", "METHODS", "PRESETS",
           "TransformStack", "ALGORITHM_VERSION", "algorithm_version"]  # fmt: skip
