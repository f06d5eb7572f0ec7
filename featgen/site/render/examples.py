"""Dataset-example collections: which images a scan reads, how each is read, and the crops.

A collection (``examples:`` in ``galleries.yml``) is ``offline`` (a fixed list of photos that ship
with scikit-image and matplotlib, :data:`OFFLINE_PHOTOS`, the same wherever featgen is installed), a
folder (read recursively, e.g. an ImageNet validation set), a glob, or a text file listing paths. It
is identified by a digest of its file names and sizes, so a changed collection makes new jobs. Every
image is read the same way (:func:`read_photo`); one that cannot be read is skipped and counted.
The scan itself is :mod:`.scan`; the crops that its merge cuts travel as JPEG bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    where = Path(list(spec.submodule_search_locations)[0])
    if package == "matplotlib":  # its data beside the package, as installed: found without importing it (0.15 s)
        if (where / "mpl-data" / "sample_data").is_dir():
            return where / "mpl-data" / "sample_data"
        import matplotlib

        return Path(matplotlib.get_data_path(), "sample_data")
    return where / "data"


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


def list_photos(listing: str | os.PathLike, limit: int | None = None) -> list[tuple[str, Path]]:
    """``(name, path)`` of each line of a text file that lists image paths (relative ones from the
    file's folder), in its order; blank lines and ``#`` comments are left out."""
    src = Path(listing).expanduser()
    out = []
    with open(src, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                raise FeatgenError(f"examples list {short(str(src))} has more than {limit:,} lines: raise examples_limit in the profile.")
            name = line.strip()
            if name and not name.startswith("#"):
                path = Path(name).expanduser()
                out.append((name, path if path.is_absolute() else src.parent / path))
    if not out:
        raise FeatgenError(f"examples list {short(str(src))} names no image.")
    return out


def glob_photos(pattern: str, limit: int | None = None) -> list[tuple[str, Path]]:
    """``(path as matched, path)`` of every image file that ``pattern`` matches (``**`` recurses), sorted."""
    import glob

    out = []
    for n, name in enumerate(sorted(glob.iglob(os.path.expanduser(pattern), recursive=True))):
        if limit is not None and n >= limit:
            raise FeatgenError(f"examples glob {short(pattern)} matches more than {limit:,} files: raise examples_limit in the profile.")
        path = Path(name)
        if path.suffix.lower() in SUFFIXES and path.is_file():
            out.append((name, path))
    if not out:
        raise FeatgenError(f"examples glob {short(pattern)} matches no image ({', '.join(SUFFIXES)}).")
    return out


def source_kind(source: str) -> str:
    """What ``examples:`` names: ``offline``, a ``folder``, a ``glob`` or a ``list`` (a text file of paths)."""
    if source == OFFLINE:
        return OFFLINE
    if any(c in source for c in "*?["):
        return "glob"
    return "list" if Path(source).expanduser().is_file() else "folder"


def photo_set(source: str, limit: int | None = None) -> list[tuple[str, Path]]:
    """The photos of ``source``: ``"offline"``, a folder (walked as :func:`folder_photos` says), a glob
    or a text file listing paths."""
    kind = source_kind(source)
    if kind == OFFLINE:
        return offline_photos()
    return {"glob": glob_photos, "list": list_photos, "folder": folder_photos}[kind](source, limit)


def set_digest(photos: list[tuple[str, Path]]) -> str:
    """A digest of the set: names and sizes (a renamed, added or replaced file changes it; a listed
    file that is missing counts as size -1, and is skipped by the scan)."""
    h = hashlib.sha256()
    for name, path in photos:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        h.update(f"{name}\0{size}\n".encode())
    return h.hexdigest()[:16]


def read_photo(path: Path, size: int) -> tuple[np.ndarray | None, str]:
    """One collection image as the scan and the crops see it: decoded, its centred square resized to
    ``size`` px, uint8 RGB. ``(None, why)`` for a file that cannot be used (unreadable, truncated,
    empty, not an image, over :data:`featgen.images.MAX_PIXELS`): the scan skips and counts it."""
    from ...images import load_image, resize, to_uint8

    try:
        return to_uint8(resize(load_image(path), size, crop=True)), ""
    except FeatgenError as exc:
        return None, str(exc)
    except (OSError, ValueError, MemoryError, SyntaxError) as exc:  # what a damaged file can still raise from PIL
        return None, f"{path}: {type(exc).__name__}: {exc}"


def read_photos(photos: list[tuple[str, Path]], indices: Iterable[int], size: int, threads: int = 2, ahead: int = 64):
    """``(index, uint8 image | None, why not)`` for the images numbered ``indices``, in that order, as
    :func:`read_photo` reads them: decoded ``threads`` at a time (PIL decodes without the GIL), at most
    ``ahead`` images ahead of the caller, so memory holds a few images whatever their number."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, threads)) as pool:
        queue: deque = deque()
        for i in indices:
            queue.append((i, pool.submit(read_photo, photos[i][1], size)))
            if len(queue) >= ahead:
                j, fut = queue.popleft()
                yield j, *fut.result()
        while queue:
            j, fut = queue.popleft()
            yield j, *fut.result()


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


MIN_CONTEXT = 32  # px of the input around a position, at least: a first layer's 3-px field shows its surroundings


def cut_crops(photos: list[tuple[str, Path]], size: int, wants: dict[int, list[tuple[Any, tuple[int, int, int, int]]]],
              crop: int, done: Any = None, threads: int = 2) -> dict[Any, bytes]:  # fmt: skip
    """JPEG crops: for each image index of ``wants``, each ``(tag, box)`` there cut from the image as
    :func:`read_photo` reads it (``box``: top, left, bottom, right) and resized to ``crop`` px. Each image
    is read once, however many crops it gives. A crop of an image that cannot be read is grey.
    Images are decoded ``threads`` at a time; ``done(1)`` is called after each (a progress bar's
    ``update``)."""
    out: dict[Any, bytes] = {}
    for index, image, _ in read_photos(photos, sorted(wants), size, threads):
        _cut(image, wants[index], crop, out)
        if done is not None:
            done(1)
    return out


def _cut(image: np.ndarray | None, wanted: list[tuple[Any, tuple[int, int, int, int]]], crop: int, out: dict[Any, bytes]) -> None:
    """Each ``(tag, box)`` of ``wanted`` cut from ``image``, resized to ``crop`` px, as JPEG bytes in ``out``."""
    from PIL import Image

    for tag, (top, left, bottom, right) in wanted:
        if image is None:
            tile = np.full((crop, crop, 3), 128, np.uint8)
        else:
            pil = Image.fromarray(image[top:bottom, left:right])
            tile = np.asarray(pil.resize((crop, crop), Image.Resampling.BICUBIC if pil.width < crop else Image.Resampling.LANCZOS))
        buf = io.BytesIO()
        Image.fromarray(tile).save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
        out[tag] = buf.getvalue()
