"""Framework-free model description: LoadedModel, its preprocessing and its layer table."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import FeatgenError, suggest


@dataclass(frozen=True)
class Normalization:
    """How RGB in [0, 1] becomes the model's input: ``(x * scale)[order] - mean) / std``."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    bgr: bool = False

    def apply(self, x: np.ndarray) -> np.ndarray:
        """NumPy version, for preprocessing outside the graph."""
        x = x * self.scale
        if self.bgr:
            x = x[..., ::-1]
        return ((x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)


@dataclass(frozen=True)
class LayerInfo:
    """One row of a model's layer table. ``shape`` is channels-last, without the batch axis."""

    name: str
    type: str
    shape: tuple[int, ...]
    channels: int | None

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


@dataclass
class LoadedModel:
    """A native model plus everything featgen needs to use it: preprocessing, labels, layers.

    Attributes:
        name: the registry name, e.g. ``"efficientnet_lite0"``.
        spec: the spec it was loaded from, e.g. ``"builtin:efficientnet_lite0"``.
        backend: the :class:`~featgen.backends.base.Backend` that runs it.
        module: the native model (``torch.nn.Module`` or ``keras.Model``).
        input_size: the default square input size in pixels.
        norm: the input normalization.
        labels: class names (ImageNet's 1000 for the built-in models), or empty.
        layer_aliases: other names for layers, e.g. Keras names of a torch model's layers.
        foreign_layers: names that exist only in the other backend's version of the model, with
            the nearest layer here; asking for one raises an error that names it.
        compile: run the forward pass up to a layer through ``torch.compile`` (torch only); ``None``
            leaves it to the backend (off on CPU, where compiling costs more than it saves).
        graphs: capture each render step in a CUDA graph and replay it (torch on a CUDA GPU);
            ``None`` leaves it to the backend: off unless the environment sets
            ``FEATGEN_CUDA_GRAPHS=1`` (and ``compile`` is not set).
        runtime: what the backend keeps for this model (verified forward prefixes and tails,
            compiled functions, traced graphs); it lives and dies with the model.
    """

    name: str
    spec: str
    backend: Any
    module: Any
    input_size: int = 224
    norm: Normalization = field(default_factory=Normalization)
    labels: list[str] = field(default_factory=list)
    layer_aliases: dict[str, str] = field(default_factory=dict)
    foreign_layers: dict[str, str] = field(default_factory=dict)
    source: str = ""
    compile: bool | None = None  # torch.compile the truncated forward (None: the backend's default)
    graphs: bool | None = None  # CUDA graphs over each render step (None: the backend's default)
    runtime: dict = field(default_factory=dict, repr=False, compare=False)  # the backend's per-model caches

    # --- layers ------------------------------------------------------------------------------
    @cached_property
    def layer_table(self) -> list[LayerInfo]:
        """Every hookable layer with its output shape at the default input size."""
        names = [n for n, _ in self.backend.iter_layers(self)]
        x = self.backend.asarray(np.full((1, self.input_size, self.input_size, 3), 0.5, np.float32))
        with self.backend.no_grad():
            out = self.backend.forward(self, x, capture=names, logits=False)
        rows = []
        for name, layer in self.backend.iter_layers(self):
            act = out.activations.get(name)
            shape = tuple(self.backend.shape(act)[1:]) if act is not None else ()
            channels = shape[-1] if shape else None
            rows.append(LayerInfo(name, self.backend.layer_type(layer), shape, channels))
        return rows

    @property
    def layer_names(self) -> list[str]:
        """The names of the layers in :attr:`layer_table`, in model order."""
        return [row.name for row in self.layer_table]

    def resolve_layer(self, name: str) -> str:
        """Return the model's own name for ``name`` (which may be an alias); raise with suggestions."""
        names = [n for n, _ in self.backend.iter_layers(self)]
        if name in names:
            return name
        if name in self.layer_aliases:
            return self.layer_aliases[name]
        if name in self.foreign_layers:
            other = "tensorflow" if self.backend.name == "torch" else "torch"
            raise FeatgenError(
                f"{name!r} is a layer of the {other} version of {self.name}, not of this {self.backend.name} one; "
                f"the nearest layer here is {self.foreign_layers[name]!r}."
            )
        hint = suggest(name, names)
        raise FeatgenError(
            f"{self.name} ({self.backend.name}) has no layer {name!r}.{hint}"
            f" Run `featgen layers {self.name} --backend {self.backend.name}` to list them."
        )

    def layer_info(self, name: str) -> LayerInfo:
        """The layer table's row of layer ``name`` (any name :meth:`resolve_layer` takes): its type,
        output shape (channels last, at the default input size) and channels."""
        name = self.resolve_layer(name)
        return next(row for row in self.layer_table if row.name == name)

    def get_layer(self, name: str) -> Any:
        """The native layer object called ``name``."""
        name = self.resolve_layer(name)
        return dict(self.backend.iter_layers(self))[name]

    def check_unit(self, layer: str, unit: int) -> None:
        """Raise a FeatgenError if ``unit`` is not a channel index of ``layer``."""
        info = self.layer_info(layer)
        if info.channels is None:
            raise FeatgenError(f"layer {info.name!r} has no channels (output shape {info.shape}).")
        if not 0 <= int(unit) < info.channels:
            raise FeatgenError(
                f"unit {unit} is out of range for layer {info.name!r}, which has {info.channels} channels (0..{info.channels - 1})."
            )

    # --- inputs and predictions -------------------------------------------------------------
    def prepare(self, image: Any, size: int | None = None) -> np.ndarray:
        """Load and resize ``image`` (path, PIL image, array or batch) to RGB float32 NHWC in [0, 1]."""
        from ..images import load_batch

        return load_batch(image, size=size or self.input_size)

    def preprocess(self, image: Any, size: int | None = None) -> Any:
        """The native, normalized input batch for ``image`` (NCHW tensor for torch, NHWC for Keras)."""
        batch = self.norm.apply(self.prepare(image, size))
        return self.backend.native_input(batch)

    def logits(self, image: Any, size: int | None = None) -> np.ndarray:
        """Class logits ``(N, classes)`` as NumPy."""
        x = self.backend.asarray(self.prepare(image, size))
        with self.backend.no_grad():
            out = self.backend.forward(self, x, logits=True)
        return self.backend.to_numpy(out.logits)

    def classify(self, image: Any, top: int = 5) -> list[tuple[str, float]]:
        """Top-``top`` ``(label, probability)`` pairs for a single image."""
        z = self.logits(image)[0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p)[:top]
        return [(self.label(i), float(p[i])) for i in order]

    def label(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else str(index)

    def class_index(self, target: int | str) -> int:
        """Resolve a class index or label (case-insensitive) to an index, with suggestions."""
        n = len(self.labels) or None
        if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.strip().isdigit()):
            idx = int(target)
            if n is not None and not 0 <= idx < n:
                raise FeatgenError(f"class index {idx} is out of range: {self.name} has {n} classes (0..{n - 1}).")
            return idx
        lowered = {lab.lower(): i for i, lab in enumerate(self.labels)}
        key = str(target).strip().lower()
        if key in lowered:
            return lowered[key]
        close = suggest(key, lowered)
        for low, i in lowered.items():  # show the labels as spelled, not lowercased
            close = close.replace(low, self.labels[i]) if low in close else close
        raise FeatgenError(f"unknown class label {target!r} for {self.name}.{close}")

    @cached_property
    def weights_digest(self) -> str:
        return self.backend.weights_digest(self)

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, backend={self.backend.name!r}, input_size={self.input_size})"
