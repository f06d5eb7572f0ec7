"""Dataset examples: which photos a unit fires on most and least, from a forward-only scan.

The scanned set is either ``offline`` (a fixed list of photos that ship with scikit-image and
matplotlib, :data:`OFFLINE_PHOTOS`, the same wherever featgen is installed) or a folder of images
(e.g. an ImageNet validation set). A set is identified by a digest of its file names and sizes, so a
changed folder makes new jobs. Crops and strips travel as JPEG bytes (``encode_jpegs``): a page
writes them as they are, and a unit page stays small.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from ...errors import FeatgenError
from ...files import is_filesystem_root
from ...limits import short

OFFLINE = "offline"
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
JPEG_QUALITY = 88


# The offline set: files that ship inside scikit-image and matplotlib, named as ``package/file``.
# A fixed list, not whatever is installed, so the same config gives the same photo jobs everywhere.
OFFLINE_PHOTOS = tuple(f"skimage/{n}" for n in (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "chessboard_GRAY.png",
    "chessboard_RGB.png", "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png",
    "horse.png", "hubble_deep_field.jpg", "ihc.png", "logo.png", "microaneurysms.png", "moon.png",
    "motorcycle_left.png", "motorcycle_right.png", "page.png", "phantom.png", "retina.jpg", "rocket.jpg",
    "text.png",
)) + ("matplotlib/Minduka_Present_Blue_Pack.png", "matplotlib/grace_hopper.jpg", "matplotlib/logo2.png")  # fmt: skip


def _package_dir(package: str) -> Path | None:
    """The folder of ``package``'s shipped data files, or None if it is not installed."""
    import importlib.util

    if package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path(), "sample_data")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0], "data")


def offline_photos() -> list[tuple[str, Path]]:
    """``(name, path)`` of every photo of :data:`OFFLINE_PHOTOS`, in that order; one line naming the
    package to install if any is missing."""
    folders = {package: _package_dir(package) for package in ("skimage", "matplotlib")}
    found, missing = [], []
    for name in OFFLINE_PHOTOS:
        package, file = name.split("/")
        path = folders[package] / file if folders[package] is not None else None
        (found if path is not None and path.is_file() else missing).append((name, path))
    if missing:
        install = " ".join(sorted({"scikit-image" if n.startswith("skimage/") else "matplotlib" for n, _ in missing}))
        raise FeatgenError(f"the offline example photos need {install} (missing {missing[0][0]}"
                           f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}): pip install {install}, "
                           "or set examples: to a folder of images.")  # fmt: skip
    return found


def folder_photos(folder: str | os.PathLike, limit: int | None = None) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of every image file under ``folder``, sorted.

    The walk visits at most ``limit`` files and folders (None: no bound; the plan passes the
    profile's ``examples_limit``), follows no link to a folder, and never starts at the root of the
    filesystem. A name with an image suffix that is no regular file (a FIFO, a device) is skipped.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FeatgenError(f"examples folder {short(str(root))} does not exist: name a folder of images, or 'offline'.")
    if is_filesystem_root(root):
        raise FeatgenError(f"examples folder {short(str(root))} is the root of the filesystem: name a folder of images.")
    paths, seen = [], 0
    for folder_path, folders, names in os.walk(root):  # links to folders are listed, not followed
        seen += len(folders) + len(names)
        if limit is not None and seen > limit:
            raise FeatgenError(f"examples folder {short(str(root))} holds more than {limit:,} files and folders: "
                               "name a smaller folder, or raise examples_limit in the profile.")  # fmt: skip
        paths += [p for p in (Path(folder_path, n) for n in names) if p.suffix.lower() in SUFFIXES and p.is_file()]
    if not paths:
        raise FeatgenError(f"examples folder {short(str(root))} holds no image ({', '.join(SUFFIXES)}).")
    return [(p.relative_to(root).as_posix(), p) for p in sorted(paths)]


def photo_set(source: str, limit: int | None = None) -> list[tuple[str, Path]]:
    """The photos of ``source``: ``"offline"`` or a folder path (walked as :func:`folder_photos` says)."""
    return offline_photos() if source == OFFLINE else folder_photos(source, limit)


def set_digest(photos: list[tuple[str, Path]]) -> str:
    """A digest of the set: names and sizes (a renamed, added or replaced file changes it)."""
    h = hashlib.sha256()
    for name, path in photos:
        h.update(f"{name}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def encode_jpegs(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images as one byte array of concatenated JPEG files plus ``len + 1`` offsets."""
    from PIL import Image

    blobs = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(im, np.uint8)).save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
        blobs.append(buf.getvalue())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offsets


def jpeg_at(data: np.ndarray, offsets: np.ndarray, i: int) -> bytes:
    """The ``i``-th JPEG file of ``encode_jpegs``'s output."""
    return data[int(offsets[i]) : int(offsets[i + 1])].tobytes()


def scan(model, layer: str, units: tuple[int, ...], photos: list[tuple[str, Path]], k: int, crop: int,
         batch: int = 16) -> dict[str, np.ndarray]:  # fmt: skip
    """Stream ``photos`` through ``model`` in batches (forward only) and keep, per unit, the ``k``
    photos with the highest and the ``k`` with the lowest peak activation, with a crop around the
    peak (for the lowest: around the minimum) at the model's input size."""
    from ...images import load_image, resize
    from ...maps import batch_activations

    size = model.input_size
    crop = min(crop, size)
    us = np.asarray(units)
    n, p = len(us), len(photos)
    peak = np.empty((n, p), np.float32)
    low = np.empty((n, p), np.float32)
    at_peak = np.empty((n, p), np.int64)
    at_low = np.empty((n, p), np.int64)
    grid_w = 1
    for b0 in range(0, p, batch):
        imgs = [resize(load_image(path), size, crop=True) for _, path in photos[b0 : b0 + batch]]
        acts = batch_activations(model, np.stack(imgs), layer, size=size)[..., us]  # (B, h, w, n)
        grid_w = acts.shape[2]
        flat = acts.reshape(acts.shape[0], -1, n)
        peak[:, b0 : b0 + len(imgs)] = flat.max(axis=1).T
        low[:, b0 : b0 + len(imgs)] = flat.min(axis=1).T
        at_peak[:, b0 : b0 + len(imgs)] = flat.argmax(axis=1).T
        at_low[:, b0 : b0 + len(imgs)] = flat.argmin(axis=1).T
    k = min(k, p)
    top = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    bottom = np.argsort(peak, axis=1, kind="stable")[:, :k]
    scale = size / max(grid_w, 1)
    cache: dict[int, np.ndarray] = {}

    def cut(photo: int, pos: int) -> np.ndarray:
        if photo not in cache:
            cache[photo] = resize(load_image(photos[photo][1]), size, crop=True)
        y, x = divmod(int(pos), grid_w)
        cy, cx = int((y + 0.5) * scale), int((x + 0.5) * scale)
        y0 = int(np.clip(cy - crop // 2, 0, size - crop))
        x0 = int(np.clip(cx - crop // 2, 0, size - crop))
        from ...images import to_uint8

        return to_uint8(cache[photo][y0 : y0 + crop, x0 : x0 + crop])

    out: dict[str, np.ndarray] = {"files": np.asarray([name for name, _ in photos])}
    for kind, order, where in (("top", top, at_peak), ("bottom", bottom, at_low)):
        crops = [cut(int(ph), where[i, ph]) for i in range(n) for ph in order[i]]
        out[f"{kind}_jpeg"], out[f"{kind}_offsets"] = encode_jpegs(crops)
        out[f"{kind}_file"] = order.astype(np.int32)
        out[f"{kind}_value"] = np.take_along_axis(peak, order, axis=1).astype(np.float32)
    return out
