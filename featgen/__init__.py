"""featgen: see what convolutional networks learn, on PyTorch or TensorFlow/Keras.

Importing featgen imports no framework: backends load lazily, by name, when a model is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562)
_EXPORTS = {
    "load_model": "featgen.models",
    "LoadedModel": "featgen.models",
    "BUILTIN_MODELS": "featgen.models",
    "equivalent_layers": "featgen.models.equivalence",
    "FeatgenError": "featgen.errors",
    "activations": "featgen.maps",
    "feature_map_grid": "featgen.maps",
    "layer_kernels": "featgen.maps",
    "kernel_tiles": "featgen.maps",
    "edge_kernels": "featgen.maps",
    "apply_kernels": "featgen.maps",
    "plot_kernels": "featgen.maps",
    "visualize": "featgen.vis",
    "Render": "featgen.vis",
    "cam": "featgen.cam",
    "load_image": "featgen.images",
    "sample_image": "featgen.images",
    "grid": "featgen.images",
    "overlay": "featgen.images",
    "save_image": "featgen.images",
    "show": "featgen.images",
    "show_image": "featgen.images",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featgen' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module == f"featgen.{name}" else getattr(mod, name)  # featgen.cam is a callable module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
