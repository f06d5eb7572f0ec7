"""The files of a gallery page: images in WebP, overview sheets, and the small drawings that are
inline SVG (a unit's objective curve, its first-layer kernel).

Every image is encoded once, at its own size, with fixed settings, so the same arrays give the same
bytes (with the same Pillow and libwebp). Renders are small and shown larger with square pixels, so
lossy WebP at these qualities costs a tenth of a PNG and shows no blur. So an image whose entries
did not change since the last build is not encoded again: a layer written again (new renders of
some of its views, or a change around it) links the others' images from the last build.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import FeatgenError
from .install import plain_parents

HERO_QUALITY = 88  # the image a unit page shows large
QUALITY = 75  # every other render and crop
STRIP_QUALITY = 60  # several renders side by side (diversity: with the examples, the largest files of a unit)
PHOTO_QUALITY = 75  # the activation strips over the sample photos
EXAMPLES_QUALITY = 50  # the dataset examples: 18 photo crops, the most detail of a unit's files
METHOD = 2  # libwebp's effort: 4 saves 3 % of the bytes at twice the time, 6 another 5 % at 2.5 times that
PHOTO_HEIGHT = 128  # a strip over the sample photos is stored at most this tall (px)
TILE = 64  # side of a unit's tile in a layer's overview sheet (px)
SHEET_COLUMNS = 16
SHEET_ROWS = 4
SHEET_UNITS = SHEET_COLUMNS * SHEET_ROWS  # the units of a sheet: one lazily loaded image
GAP = 4  # px between the images of a strip
GAP_GREY = 128  # the gap's colour: a line that reads in both palettes


def webp(image: np.ndarray, quality: int = QUALITY) -> bytes:
    """A uint8 RGB image as WebP bytes (the same bytes for the same image and settings)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, "WEBP", quality=quality, method=METHOD)
    return buf.getvalue()


def side_by_side(images: list[np.ndarray] | np.ndarray, gap: int = GAP) -> np.ndarray:
    """Images in a row, ``gap`` grey px apart (RGB; an alpha channel would make WebP 10 times slower)."""
    h = max(int(im.shape[0]) for im in images)
    w = sum(int(im.shape[1]) for im in images) + gap * (len(images) - 1)
    out = np.full((h, w, 3), GAP_GREY, np.uint8)
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im[..., :3]
        x += im.shape[1] + gap
    return out


def decode(data: bytes) -> np.ndarray:
    """A JPEG (or any Pillow reads) as uint8 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def reduced(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` shrunk by the smallest whole factor that makes it at most ``height`` px tall (a box
    filter: a tenth of a Lanczos resize's time), or as it is if it is not taller."""
    from PIL import Image

    factor = -(-image.shape[0] // height)
    return image if factor <= 1 else np.asarray(Image.fromarray(image).reduce(factor))


def tile(image: np.ndarray, side: int = TILE) -> np.ndarray:
    """A square render as a ``side`` px tile: area-averaged down, square pixels up."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    resample = Image.BOX if image.shape[0] >= side else Image.NEAREST
    return np.asarray(im.resize((side, side), resample))


def sheet(images: np.ndarray, columns: int = SHEET_COLUMNS, side: int = TILE) -> np.ndarray:
    """Tiles of ``images`` in rows of ``columns`` (fewer if there are fewer images), no gaps: one image
    that a page overlays with one link per tile."""
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    out = np.zeros((rows * side, cols * side, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * side : (r + 1) * side, c * side : (c + 1) * side] = tile(im, side)
    return out


class UnitFiles:
    """The files of one unit page, written into its folder: ``name.webp`` for each image a view asks
    for. Returns the file names, relative to the page.

    ``old``: where the last build's copy of a file name is, if it holds the same bytes (its view's
    entries and the page engine are unchanged; :class:`Reuse`), or None: such a file is hard-linked
    from there instead of being made again (decoding photo crops and encoding WebP are most of a
    unit's time)."""

    def __init__(self, folder: Path, old: Callable[[str], Path | None] | None = None):
        self.folder = folder
        self.old = old
        self.written: list[str] = []

    def _write(self, name: str, make: Callable[[], bytes]) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        source = self.old(name) if self.old is not None else None
        if source is None or not _linked(source, self.folder / name):
            (self.folder / name).write_bytes(make())
        self.written.append(name)
        return name

    def image(self, name: str, image: np.ndarray, hero: bool = False) -> str:
        """One render (uint8 RGB) as ``name.webp``."""
        return self._write(f"{name}.webp", lambda: webp(image, HERO_QUALITY if hero else QUALITY))

    def strip(self, name: str, images: list[np.ndarray] | np.ndarray) -> str:
        """Renders of one size side by side as ``name.webp`` (one file: one request, one disk block)."""
        return self._write(f"{name}.webp", lambda: webp(side_by_side(list(images)), STRIP_QUALITY))

    def jpeg_as_image(self, name: str, data: bytes) -> str:
        """A strip over the sample photos, at most ``PHOTO_HEIGHT`` px tall, as ``name.webp``."""
        return self._write(f"{name}.webp", lambda: webp(reduced(decode(data), PHOTO_HEIGHT), PHOTO_QUALITY))

    def jpeg_rows(self, name: str, rows: list[list[bytes]]) -> str:
        """Rows of crops (JPEG files) as one ``name.webp``: each row side by side, ``GAP`` px apart."""
        return self._write(f"{name}.webp", lambda: webp(_stacked([side_by_side([decode(c) for c in row]) for row in rows]),
                                                        EXAMPLES_QUALITY))  # fmt: skip


def _stacked(strips: list[np.ndarray]) -> np.ndarray:
    """Strips one under another, ``GAP`` grey px apart, left-aligned."""
    width = max(s.shape[1] for s in strips)
    out = np.full((sum(s.shape[0] for s in strips) + GAP * (len(strips) - 1), width, 3), GAP_GREY, np.uint8)
    y = 0
    for s in strips:
        out[y : y + s.shape[0], : s.shape[1]] = s
        y += s.shape[0] + GAP
    return out


def _linked(source: Path, target: Path) -> bool:
    """Hard-link ``source`` (itself, never what a link there points to) as ``target``; False where
    that cannot be done (another filesystem, links not allowed, the file gone): then it is made again."""
    try:
        os.link(source, target, follow_symlinks=False)
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Reuse:
    """The last build's files of a layer that is written again, and the views whose images there are
    still right: those whose entries (keys and stamps) and page engine are the ones the last build
    wrote them from. A unit's image of such a view is linked from the last build's folder; a file
    that is no longer a plain file there (a link, a folder) or sits below a link is made again."""

    root: Path  # the gallery's pages folder (``PAGES/galleries``)
    base: str  # the layer's folder in it
    views: frozenset[str]
    files: frozenset[str]  # the last build's files of the layer, relative to its folder

    def old(self, view: str, unit: int) -> Callable[[str], Path | None] | None:
        """What :class:`UnitFiles` asks for a file of ``unit`` that ``view`` writes, or None if the
        view's images changed."""
        if view not in self.views:
            return None

        def find(name: str) -> Path | None:
            rel = f"unit-{unit}/{name}"
            if rel not in self.files:
                return None
            try:
                if not plain_parents(self.root, f"{self.base}/{rel}"):
                    return None
                path = self.root / self.base / rel
                return path if stat.S_ISREG(path.lstat().st_mode) else None
            except (OSError, FeatgenError):
                return None

        return find


# --- inline SVG ---------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def curve_svg(values: list[float], width: int = 360, height: int = 160) -> str:
    """The objective during an optimization as an SVG line chart, drawn in the text colour (``currentColor``)
    on a transparent ground, so it reads in both palettes. Its ``role`` and ``aria-label`` say what it shows."""
    y = np.nan_to_num(np.asarray(values, np.float64))
    if len(y) > 90:  # more points than a reader tells apart at this size: every n-th (and the last)
        idx = np.unique(np.r_[np.linspace(0, len(y) - 1, 90).round().astype(int), len(y) - 1])
        x, y = idx.astype(np.float64), y[idx]
    else:
        x = np.arange(len(y), dtype=np.float64)
    left, right, top, bottom = 46, 8, 8, 28
    lo, hi = float(y.min()), float(y.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    xs = left + (x / max(x[-1], 1)) * (width - left - right)
    ys = top + (hi - y) / (hi - lo) * (height - top - bottom)
    # a relative path of whole pixels: the same line as absolute points in about half the bytes
    px = np.stack([xs, ys], 1).round().astype(int)
    moves = " ".join(f"{a} {b}" for a, b in np.diff(px, axis=0)).replace(" -", "-")
    line = f"M{px[0, 0]} {px[0, 1]}" + (f"l{moves}" if moves else "")
    steps = int(x[-1]) + 1 if len(x) else 0
    label = f"objective from {_fmt(float(y[0]))} to {_fmt(float(y[-1]))} over {steps} steps"
    base = height - bottom
    return (f'<svg class="fg-curve" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{label}" font-size="11" fill="currentColor">'
            f'<path d="M{left} {top}V{base}H{width - right}" stroke="currentColor" stroke-opacity=".5" fill="none"/>'
            f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_fmt(hi)}</text>'
            f'<text x="{left - 4}" y="{base}" text-anchor="end">{_fmt(lo)}</text>'
            f'<text x="{left}" y="{height - 8}">0</text><text x="{width - right}" y="{height - 8}" text-anchor="end">'
            f'{steps} steps</text><path d="{line}" fill="none" stroke="currentColor" stroke-width="1.6"/></svg>')  # fmt: skip


def kernel_svg(kernel: np.ndarray, bgr: bool, cell: int = 16) -> str:
    """A first-layer kernel ``(kh, kw, 3)`` as an SVG of coloured cells, grey at zero weight, each
    channel scaled by the largest weight. ``bgr``: the network reads its input as blue, green, red,
    so the weights are reordered to show each where its colour is."""
    k = np.asarray(kernel, np.float64)
    if bgr:
        k = k[..., ::-1]
    k = 0.5 + 0.5 * k / max(float(np.abs(k).max()), 1e-12)
    rgb = np.clip(np.round(k * 255), 0, 255).astype(int)
    kh, kw = rgb.shape[:2]
    cells = "".join(f'<rect x="{c * cell}" y="{r * cell}" width="{cell}" height="{cell}" fill="#{rgb[r, c, 0]:02x}'
                    f'{rgb[r, c, 1]:02x}{rgb[r, c, 2]:02x}"/>' for r in range(kh) for c in range(kw))  # fmt: skip
    return (f'<svg class="fg-kernel" viewBox="0 0 {kw * cell} {kh * cell}" width="{kw * cell * 2}" '
            f'height="{kh * cell * 2}" shape-rendering="crispEdges" role="img" aria-label="kernel weights, '
            f'{kh}×{kw}, red green blue">{cells}</svg>')
