"""Checks on a path a user names, made before anything opens it."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import FeatgenError

_KINDS = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"))  # fmt: skip


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``"regular file"``, ``"named pipe (FIFO)"``, ``"directory"``..."""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` if it is a regular file (or a link to one); else one line naming what it is.

    A named pipe or a device is refused before it is opened: reading one can block forever, or
    never end. ``what`` names the file in the message (``"image file"``, ``"model file"``).
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise FeatgenError(f"{what} not found: {p}") from None
    except OSError as exc:
        raise FeatgenError(f"cannot read the {what} {p}: {exc.strerror}.") from None
    a = "an" if what[:1] in "aeiou" else "a"
    if stat.S_ISDIR(mode):
        raise FeatgenError(f"expected {a} {what}, got a directory: {p}")
    if not stat.S_ISREG(mode):
        raise FeatgenError(f"{p} is a {file_kind(mode)}, not a regular file: featgen reads {a} {what} only from a regular file.")
    return p


def is_filesystem_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the root of its filesystem tree (``/``, ``C:\\``), links resolved."""
    real = Path(path).expanduser().resolve()
    return real == Path(real.anchor)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` at once: into a new temporary file beside it (``O_EXCL``: never
    through a link planted there), then renamed over it (which replaces a link, not its target)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_own_folder(path: str | os.PathLike, what: str, flag: str, instead: str) -> Path:
    """``path`` unless it is a file, the filesystem root or the home folder, which no command may
    take as a folder of its own: then one line (``instead``: what to pass ``flag`` with)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FeatgenError(f"the {what} {str(path)!r} is a file, not a folder: pass {flag} with a folder path.")
    which = "root" if is_filesystem_root(path) else "home" if path.exists() and path.resolve() == Path.home().resolve() else None
    if which is not None:
        raise FeatgenError(f"{str(path)!r} is not a {what} (it is the {which} folder): pass {flag} with {instead}.")
    return path


__all__ = ["regular_file", "file_kind", "is_filesystem_root", "atomic_write", "check_own_folder"]
