"""Image I/O and display helpers. NumPy, PIL and matplotlib colormaps only: no framework.

Images are channels-last float32 in [0, 1] (or uint8 where stated).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import FeatgenError
from .files import regular_file

ImageLike = Any  # str | Path | PIL.Image.Image | np.ndarray


MAX_PIXELS = 50_000_000  # ~ the largest camera sensors; 600 MB as float32 RGB


def _open(path: Path) -> Image.Image:
    """Open and decode a file, refusing images over :data:`MAX_PIXELS` before decoding them."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise FeatgenError(f"{path} is {w}x{h} pixels ({w * h / 1e6:.0f} Mpx), over featgen's limit of "
                                   f"{MAX_PIXELS // 1_000_000} Mpx: downscale it first (the model sees a few hundred pixels).")  # fmt: skip
            im.load()
            return im.copy()
    except Image.DecompressionBombError:
        raise FeatgenError(f"{path} is over {MAX_PIXELS // 1_000_000} Mpx (a decompression bomb?): downscale it first.") from None
    except UnidentifiedImageError:
        raise FeatgenError(f"{path} is not an image PIL can read (PNG, JPEG, ...).") from None
    except (OSError, SyntaxError) as exc:
        raise FeatgenError(f"{path} could not be decoded (truncated or corrupt image?): {exc}") from None


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode → RGB float32 in [0, 1], scaled by the mode's own range (16-bit is not clipped at 255)."""
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image, np.float32)[..., None].repeat(3, -1) / 65535.0
    if mode in ("I", "F"):
        arr = np.asarray(image, np.float32)
        top = float(arr.max()) if arr.size else 1.0
        # 32-bit modes carry no range: 8-bit and 16-bit data are the usual contents
        scale = 1.0 if mode == "F" and top <= 1.0 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
        return np.clip(np.maximum(arr, 0) / scale, 0, 1)[..., None].repeat(3, -1)
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        bg = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(bg, image)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def load_image(image: ImageLike) -> np.ndarray:
    """Load ``image`` as RGB float32 ``(H, W, 3)`` in [0, 1].

    Accepts a path, a PIL image (any mode: 16-bit greyscale is scaled by 65535) or an array (uint8
    in 0..255, other integers scaled by their maximum, or float in [0, 1]; greyscale, RGB or RGBA).
    Transparency is composited on white; greyscale is repeated to three channels. Files over
    :data:`MAX_PIXELS` are refused before they are decoded, and a path that is no regular file (a
    named pipe, a device) before it is opened.
    """
    if isinstance(image, (str, os.PathLike)):
        image = _open(regular_file(image, "image file"))  # a FIFO or a device is refused before it is opened
    if isinstance(image, Image.Image):
        return _pil_to_array(image)
    arr = np.asarray(image)
    if arr.dtype == object or arr.ndim not in (2, 3):
        raise FeatgenError(f"expected an image array of shape (H, W) or (H, W, C), got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / max(float(arr.max()), 1.0)
    else:
        arr = arr.astype(np.float32)
        if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
            raise FeatgenError("float images must be in [0, 1]; divide uint8-range data by 255 first.")
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[-1]
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif c == 4:
        alpha = arr[..., 3:]
        arr = arr[..., :3] * alpha + (1 - alpha)
    elif c != 3:
        raise FeatgenError(f"expected 1, 3 or 4 channels, got {c}.")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def resize(image: np.ndarray, size: int | tuple[int, int], crop: bool = False) -> np.ndarray:
    """Resize an ``(H, W, 3)`` float image to ``size`` (square int or ``(h, w)``) with bicubic PIL.

    With ``crop=True`` the largest centred square is cut first, keeping the aspect ratio.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if crop:
        s = min(image.shape[:2])
        top, left = (image.shape[0] - s) // 2, (image.shape[1] - s) // 2
        image = image[top : top + s, left : left + s]
    if image.shape[:2] == (h, w):
        return image.astype(np.float32)
    pil = Image.fromarray(to_uint8(image))
    return np.asarray(pil.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255.0


def load_batch(images: ImageLike | Sequence[ImageLike], size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Load one image or a list of them as a float32 NHWC batch, resized to ``size`` if given.

    A 4-D array is taken as a batch already. Without ``size``, all images must share one size.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        items = list(images)
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    if not items:
        raise FeatgenError("no images given.")
    arrays = [load_image(im) for im in items]
    if size is not None:
        arrays = [resize(a, size) for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise FeatgenError(f"images in a batch must share one size, got {sorted(shapes)}; pass size=... to resize.")
    return np.stack(arrays).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] → uint8, clipping."""
    return (np.clip(np.asarray(image, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


def image_format(path: str | os.PathLike, flag: str = "path") -> str:
    """The PIL format that writes ``path``'s extension (``.png`` → ``PNG``); one line if none does."""
    Image.init()
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise FeatgenError(f"{flag} {path}: cannot write {suffix or 'a file without extension'}; "
                           "use an image extension such as .png or .jpg.")  # fmt: skip
    return fmt


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Save a float [0, 1] or uint8 image as PNG/JPEG/..., atomically (write then rename)."""
    path = Path(path)
    fmt = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = image if np.asarray(image).dtype == np.uint8 else to_uint8(image)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        Image.fromarray(np.squeeze(arr) if arr.ndim == 3 and arr.shape[-1] == 1 else arr).save(tmp, format=fmt)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def normalize(x: np.ndarray, per: str = "image", eps: float = 1e-8) -> np.ndarray:
    """Min-max normalize to [0, 1]; ``per="image"`` over all but the first axis, ``"all"`` globally."""
    x = np.asarray(x, np.float32)
    if per == "all" or x.ndim < 2:
        lo, hi = x.min(), x.max()
    else:
        axes = tuple(range(1, x.ndim))
        lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
    return (x - lo) / np.maximum(hi - lo, eps)


def colorize(x: np.ndarray, colormap: str = "viridis") -> np.ndarray:
    """Map a 2-D (or batch of 2-D) array in [0, 1] to RGB float with a matplotlib colormap."""
    from matplotlib import colormaps

    try:
        cmap = colormaps[colormap]
    except KeyError:
        from .errors import suggest

        raise FeatgenError(f"unknown colormap {colormap!r}.{suggest(colormap, list(colormaps))}") from None
    return cmap(np.clip(x, 0, 1))[..., :3].astype(np.float32)


def grid(
    images: np.ndarray | Sequence[np.ndarray],
    cols: int | None = None,
    margin: int = 5,
    background: float = 1.0,
) -> np.ndarray:
    """Tile ``(N, H, W, 3)`` (or ``(N, H, W)``) images into one image with ``margin``-pixel gaps.

    ``cols`` defaults to a near-square layout (8 columns for 64 images, as in the Keras tutorial).
    """
    images = [np.asarray(im, np.float32) for im in images]
    if not images:
        raise FeatgenError("grid() needs at least one image.")
    images = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in images]
    n = len(images)
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * h + (rows - 1) * margin, cols * w + (cols - 1) * margin, 3), background, np.float32)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = r * (h + margin), c * (w + margin)
        out[y : y + im.shape[0], x : x + im.shape[1]] = im
    return out


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear-resize ``(H, W)`` or ``(N, H, W)`` float maps to ``size`` ``(h, w)`` with PIL."""
    maps = np.asarray(maps, np.float32)
    single = maps.ndim == 2
    batch = maps[None] if single else maps
    out = np.stack(
        [np.asarray(Image.fromarray(m).resize((size[1], size[0]), Image.BILINEAR), np.float32) for m in batch]
    )
    return out[0] if single else out


def overlay(image: ImageLike, cam: np.ndarray, colormap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map ``cam`` (2-D, in [0, 1]) over ``image`` with a matplotlib colormap.

    The map is resized to the image. Returns RGB float in [0, 1].
    """
    img = load_image(image)
    cam = np.asarray(cam, np.float32)
    if cam.ndim == 3 and cam.shape[0] == 1:
        cam = cam[0]
    if cam.ndim != 2:
        raise FeatgenError(f"overlay() takes one 2-D map, got shape {cam.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise FeatgenError(f"alpha must be in [0, 1], got {alpha}.")
    if cam.shape != img.shape[:2]:
        cam = upsample(cam, img.shape[:2])
    heat = colorize(np.clip(cam, 0, 1), colormap)
    return np.clip((1 - alpha) * img + alpha * heat, 0, 1).astype(np.float32)


def outline(image: np.ndarray, box: tuple[int, int, int, int], width: int = 2) -> np.ndarray:
    """``image`` (RGB float) with the square ``box`` (top, left, bottom, right) drawn as a white line
    ``width`` px wide inside a black one, which reads on any heat map."""
    out = np.array(image, np.float32, copy=True)
    top, left, bottom, right = (int(v) for v in box)
    for pad, colour in ((0, 0.0), (1, 1.0)):  # the black edge first, the white line inside it
        t, lf, b, r = top + pad, left + pad, bottom - pad, right - pad
        w = max(1, width - pad)
        if b - t <= 2 * w or r - lf <= 2 * w:
            continue
        out[t : t + w, lf:r] = colour
        out[b - w : b, lf:r] = colour
        out[t:b, lf : lf + w] = colour
        out[t:b, r - w : r] = colour
    return out


def sample_image(name: str) -> np.ndarray:
    """A bundled sample photo as RGB float: skimage's ``chelsea``, ``coffee``, ``astronaut``, ``rocket``, ...

    or ``grace_hopper`` from matplotlib. Works offline.
    """
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return load_image(Image.open(f))
    try:
        from skimage import data
    except ImportError:
        raise FeatgenError("sample photos need scikit-image: pip install scikit-image") from None
    fn = getattr(data, name, None)
    if fn is None or name.startswith("_") or not callable(fn):
        from .errors import suggest

        raise FeatgenError(f"unknown sample image {name!r}: choose one of {', '.join(SAMPLE_IMAGES)} "
                           f"(or another skimage.data photo).{suggest(name, SAMPLE_IMAGES)}")  # fmt: skip
    return load_image(fn())


SAMPLE_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "camera", "grace_hopper")


def show(images: Any, titles: Sequence[str] | None = None, cols: int | None = None, size: float = 2.4) -> Any:
    """Display one image or a list of them in a matplotlib figure (and return it).

    In tutorials this is how PIL/NumPy images reach the page: the gallery captures the figure.
    """
    import matplotlib.pyplot as plt

    items = list(images) if isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4) else [images]
    n = len(items)
    cols = cols or min(n, 6)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.3 if titles else 0)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.ravel(), items)):
        arr = np.asarray(im)
        ax.imshow(arr if arr.ndim == 3 else arr, cmap=None if arr.ndim == 3 else "viridis")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


_SHOWN: deque[tuple[np.ndarray, str]] = deque(maxlen=256)  # images waiting for the gallery scraper


def show_image(image: ImageLike, title: str | None = None) -> None:
    """Show a PIL image or an array on a tutorial page as a PNG of its own, at its own size.

    Under mkdocs-gallery the image is queued for ``featgen.site.mkdocs.scraper``, which writes it below the
    code block (after any matplotlib figures). In Jupyter it is displayed at once.
    """
    arr = to_uint8(load_image(image))
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None:
        from IPython.display import display

        display(Image.fromarray(arr))
        return
    _SHOWN.append((arr, "" if title is None else str(title)))


def take_shown() -> list[tuple[np.ndarray, str]]:
    """Drain the queue of ``show_image`` calls: ``(uint8 image, title)`` pairs, oldest first."""
    items = list(_SHOWN)
    _SHOWN.clear()
    return items
