"""Feature maps and filter kernels: a layer's activations, its kernels, and hand-made kernels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import FeatgenError
from .images import ImageLike, colorize, grid, load_batch, load_image, normalize
from .models import LoadedModel, load_model


def as_model(model: LoadedModel | str, backend: str = "torch", device: str | None = None) -> LoadedModel:
    """Accept a LoadedModel or a spec string."""
    return model if isinstance(model, LoadedModel) else load_model(model, backend=backend, device=device)


def activations(model: LoadedModel | str, image: ImageLike, layer: str, size: int | None = None) -> np.ndarray:
    """The activations of ``layer`` for one image, as NumPy channels-last ``(H, W, C)`` (or ``(C,)``).

    The image is resized to ``size`` (default: the model's input size).
    """
    model = as_model(model)
    name = model.resolve_layer(layer)
    batch = model.prepare(image, size)
    be = model.backend
    with be.no_grad():
        out = be.forward(model, be.asarray(batch), capture=[name], logits=False)
    if name not in out.activations:
        raise FeatgenError(f"layer {name!r} did not run in {model.name}'s forward pass, so it has no activations.")
    return be.to_numpy(out.activations[name])[0]


def feature_map_grid(
    acts: np.ndarray,
    channels: Sequence[int] | None = None,
    cols: int | None = None,
    colormap: str = "viridis",
    per_map: bool = True,
    margin: int = 2,
) -> np.ndarray:
    """Tile the channels of ``(H, W, C)`` activations into one RGB image.

    Args:
        channels: which channels (default: all, up to 64).
        per_map: normalize each map to its own min/max (``False``: one scale for all, so maps compare).
    """
    acts = np.asarray(acts, np.float32)
    if acts.ndim != 3:
        raise FeatgenError(f"feature maps need spatial activations (H, W, C), got shape {acts.shape}.")
    c = acts.shape[-1]
    channels = list(range(min(c, 64))) if channels is None else list(channels)
    bad = [i for i in channels if not 0 <= i < c]
    if bad:
        raise FeatgenError(f"channel {bad[0]} is out of range: this layer has {c} channels (0..{c - 1}).")
    maps = np.moveaxis(acts[..., channels], -1, 0)
    maps = normalize(maps, per="image" if per_map else "all")
    return grid(colorize(maps, colormap), cols=cols, margin=margin)


def kernel_tiles(kernels: np.ndarray, scale: int = 8, cols: int | None = None) -> np.ndarray:
    """First-layer kernels ``(kh, kw, 3, n)`` as a grid of RGB tiles, each upscaled ``scale``×.

    Each kernel is shown symmetrically around grey: 0.5 means zero weight.
    """
    k = np.asarray(kernels, np.float32)
    if k.ndim != 4 or k.shape[2] != 3:
        raise FeatgenError(f"RGB kernel tiles need (kh, kw, 3, n) kernels, got {k.shape}; use a first conv layer.")
    tiles = []
    for i in range(k.shape[3]):
        t = k[..., i]
        t = 0.5 + 0.5 * t / max(np.abs(t).max(), 1e-8)
        tiles.append(np.kron(t, np.ones((scale, scale, 1), np.float32)))
    return grid(tiles, cols=cols, margin=2)


def first_conv(model: LoadedModel) -> str:
    """Name of the model's first convolution layer."""
    for name, _ in model.backend.iter_layers(model):
        k = model.backend.layer_kernels(model, name)
        if k is not None:
            return name
    raise FeatgenError(f"{model.name} has no convolution layer.")


def layer_kernels(model: LoadedModel | str, layer: str | None = None) -> np.ndarray:
    """A conv layer's kernels as ``(kh, kw, c_in, c_out)`` NumPy (default: the first conv layer)."""
    model = as_model(model)
    name = model.resolve_layer(layer) if layer else first_conv(model)
    k = model.backend.layer_kernels(model, name)
    if k is None:
        raise FeatgenError(f"layer {name!r} ({model.layer_info(name).type}) has no convolution kernels.")
    return k


# --- hand-made kernels ---------------------------------------------------------------------------
def edge_kernels(size: int = 4) -> np.ndarray:
    """Four ``size``×``size`` edge kernels: vertical, its negative, horizontal, its negative.

    Returned as ``(size, size, 1, 4)``, ready for :func:`apply_kernels` on a greyscale image.
    """
    half = size // 2
    vertical = np.zeros((size, size), np.float32)
    vertical[:, :half] = -1.0
    vertical[:, half:] = 1.0
    ks = [vertical, -vertical, vertical.T.copy(), -vertical.T]
    return np.stack(ks, axis=-1)[:, :, None, :]


def apply_kernels(
    image: ImageLike, kernels: np.ndarray, backend: str = "torch", grey: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Convolve an image with hand-made kernels ``(kh, kw, c_in, n)``: a conv layer built from them.

    Returns the outputs before and after ReLU, each ``(H, W, n)``. With ``grey=True`` the image is
    converted to one luminance channel first (``c_in`` must then be 1).
    """
    from .backends import get_backend

    k = np.asarray(kernels, np.float32)
    if k.ndim == 3:
        k = k[:, :, None, :]
    if k.ndim != 4:
        raise FeatgenError(f"kernels must be (kh, kw, c_in, n), got shape {k.shape}.")
    img = load_image(image)
    if grey:
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    if img.shape[-1] != k.shape[2]:
        raise FeatgenError(f"the image has {img.shape[-1]} channels but the kernels expect {k.shape[2]}.")
    be = get_backend(backend)
    with be.no_grad():
        out = be.to_numpy(be.conv2d(be.asarray(img[None]), k, padding="same"))[0]
    return out, np.maximum(out, 0.0)


def plot_kernels(kernels: np.ndarray, titles: Sequence[str] | None = None, fmt: str = "{:g}") -> Any:
    """A matplotlib figure of 2-D kernels ``(kh, kw, 1, n)`` with each value written in its cell."""
    import matplotlib.pyplot as plt

    k = np.asarray(kernels, np.float32)
    k = k[:, :, 0, :] if k.ndim == 4 else k
    n = k.shape[-1]
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
    lim = max(np.abs(k).max(), 1e-8)
    for i, ax in enumerate(axes[0]):
        ax.imshow(k[..., i], cmap="RdBu_r", vmin=-lim, vmax=lim)
        for (y, x), v in np.ndenumerate(k[..., i]):
            ax.text(x, y, fmt.format(v), ha="center", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles:
            ax.set_title(titles[i], fontsize=10)
    fig.tight_layout()
    return fig


def batch_activations(model: LoadedModel, images: ImageLike, layer: str, size: int | None = None) -> np.ndarray:
    """Activations of ``layer`` for a batch, ``(N, H, W, C)`` NumPy."""
    name = model.resolve_layer(layer)
    batch = load_batch(images, size=size or model.input_size)
    be = model.backend
    with be.no_grad():
        out = be.forward(model, be.asarray(batch), capture=[name], logits=False)
    return be.to_numpy(out.activations[name])
