"""Content-addressed render cache: one entry per job key, atomic and checksummed, plus a build lock.

Each entry is a folder ``<root>/<key[:2]>/<key>/`` with ``data.npz`` and ``meta.json`` (which holds
the npz's SHA-256 and the job's settings). Both are written to unique temporary names and renamed,
``meta.json`` last, so an interrupted build leaves no half entry and the next build resumes with what
is there. A write that fails (a full disk, a read-only folder) is one line, and leaves no entry
folder behind. The npz is written with fixed zip timestamps, so the same arrays give the same bytes.

An entry is verified when it is read, never trusted: every part of it must be a plain folder or
file below the root (no link), ``meta.json`` an object with the npz's checksum, and the npz hold the
arrays the reader expects (:mod:`featgen.site.render.entries`), checked from their headers before any is
decompressed. A bad entry is moved aside into ``<root>/quarantine/`` (not deleted: it may be worth a
look), listed in ``corrupt`` with the reason, and rendered again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FeatgenError
from ...files import atomic_write, check_own_folder
from .entries import Expected
from .jobs import cache_key

__all__ = ["RenderCache", "BuildLock", "cache_key", "npz_bytes", "check_writable_dir", "check_cache_folder"]

KEY = re.compile(r"[0-9a-f]{24}")  # what cache_key gives
QUARANTINE = "quarantine"
MAX_META_BYTES = 16 << 20  # a meta.json (a model's layer table included) is far below
MAX_ENTRY_BYTES = 4 << 30  # an entry's arrays decompressed, where the reader states no expectation
MAX_MEMBERS = 64
NPZ_SLACK = 1 << 20  # bytes a compressed npz may exceed its arrays by (zip headers, stored members)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as a compressed ``.npz`` whose bytes depend on the arrays only (no timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            z.writestr(info, body.getvalue())
    return buf.getvalue()


def check_writable_dir(path: str | os.PathLike, what: str, flag: str) -> Path:
    """Create ``path`` if needed and make sure files can be written there; else one actionable line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FeatgenError(f"the {what} {str(path)!r} is a file, not a folder: pass {flag} with a folder path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".write-check.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise FeatgenError(f"the {what} {str(path)!r} is not writable ({exc.strerror}): pass {flag} with a writable folder.") from None
    return path


CACHE_MARKS = ("renders", "last-build.json", ".featgen-build.lock")  # what a featgen cache folder holds


def check_cache_folder(path: str | os.PathLike, flag: str = "--cache") -> Path:
    """``path`` if it can be a cache folder, creating nothing: a new or empty folder, or one that holds
    a featgen cache (``renders/``, ``last-build.json``); never the filesystem root or the home folder,
    and its ``renders`` no link out of it. Else one line."""
    path = check_own_folder(path, "cache folder", flag, "a folder of its own, such as .featgen-cache")
    if path.is_dir() and any(True for _ in path.iterdir()) and not any((path / m).exists() for m in CACHE_MARKS):
        raise FeatgenError(f"{str(path)!r} holds files but no featgen cache: pass {flag} with a new or empty folder, "
                           "or with a cache folder that featgen made.")  # fmt: skip
    renders = path / "renders"
    if renders.is_symlink() or (renders.exists() and not renders.is_dir()):
        raise FeatgenError(f"{str(renders)!r} is not a folder of the cache (a link or a file): featgen writes renders only "
                           "inside the cache folder; move it away.")  # fmt: skip
    return path


class _Bad(ValueError):
    """An entry that must not be read: the reason, in words."""


def _plain(path: Path, folder: bool) -> bool:
    """Whether ``path`` is a plain folder (or plain file), not a link; False if absent; _Bad if other."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise _Bad(f"{path.name} is a symbolic link")
    if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)):
        raise _Bad(f"{path.name} is not a {'folder' if folder else 'regular file'}")
    return True


def _read(path: Path, most: int) -> bytes:
    """The bytes of a plain file of at most ``most`` bytes (its size checked before reading)."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size > most:
            raise _Bad(f"{path.name} is over {most:,} bytes")
        return f.read()  # read() sizes its buffer by the file; read(n) would allocate n


def read_npz(raw: bytes, expect: Expected | None = None, most: int = MAX_ENTRY_BYTES) -> dict[str, np.ndarray]:
    """The arrays of an npz, each checked from its ``.npy`` header (and against ``expect``) before it
    is decompressed, and at most ``most`` bytes in all: a zip bomb is refused, not inflated.
    Raises ValueError (or ``zipfile.BadZipFile``) naming what is wrong."""
    fmt = np.lib.format
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        infos = z.infolist()
        names = [i.filename.removesuffix(".npy") for i in infos]
        if len(infos) > MAX_MEMBERS or len(set(names)) != len(names) or any(not i.filename.endswith(".npy") for i in infos):
            raise _Bad("the npz holds other members than one .npy per array")
        if sum(i.file_size for i in infos) > most:  # the sizes its headers declare; reading stops there
            raise _Bad(f"its arrays would take over {most:,} bytes decompressed")
        for name, info in zip(names, infos):
            with z.open(info) as f:
                version = fmt.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise _Bad(f"{name} is a .npy of version {version}")
                read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read_header(f)
                if dtype.hasobject or any(d < 0 for d in shape):
                    raise _Bad(f"{name} holds objects or a negative length")
                if f.tell() + math.prod(shape) * dtype.itemsize != info.file_size:
                    raise _Bad(f"{name}'s header and its size disagree")
            if expect is not None:
                expect.check_header(name, dtype, tuple(shape))
        if expect is not None:
            expect.check_names(set(names))
        arrays = {}
        for name, info in zip(names, infos):
            with z.open(info) as f:
                arrays[name] = fmt.read_array(f, allow_pickle=False)
    if expect is not None:
        expect.check_values(arrays)
    return arrays


class RenderCache:
    """Entries keyed by :func:`~featgen.site.render.jobs.cache_key`; ``corrupt`` lists those found bad
    (``"<key> (<reason>; moved to <path>)"``) and ``quarantined`` maps their keys to the same note."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.corrupt: list[str] = []
        self.quarantined: dict[str, str] = {}

    def _dir(self, key: str) -> Path:
        if not KEY.fullmatch(key):  # a key names a folder: nothing else may
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / key[:2] / key

    def _parts(self, key: str) -> list[tuple[Path, bool]]:
        d = self._dir(key)
        return [(d.parent, True), (d, True), (d / "meta.json", False), (d / "data.npz", False)]

    def has(self, key: str) -> bool:
        """True if the entry is complete on disk, all plain files and folders (``get`` still verifies
        it). An entry with a link in it is not there: rendering it moves the link aside first."""
        try:
            return all(_plain(path, folder) for path, folder in self._parts(key))
        except _Bad:
            return False

    def read(self, key: str, expect: Expected | None = None) -> tuple[Any, dict[str, np.ndarray]] | None:
        """``(meta, arrays)`` of an entry, verified (against ``expect`` where given); None if it is
        missing, or bad: a bad one is moved to the quarantine and listed in ``corrupt``."""
        d = self._dir(key)
        try:
            if not all(_plain(path, folder) for path, folder in self._parts(key)):
                return None
            info = json.loads(_read(d / "meta.json", MAX_META_BYTES))
            if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
                raise ValueError("meta.json is not an object with a sha256")
            most = MAX_ENTRY_BYTES if expect is None else expect.max_bytes()
            raw = _read(d / "data.npz", most + NPZ_SLACK)
            if hashlib.sha256(raw).hexdigest() != info["sha256"]:
                raise ValueError("checksum mismatch")
            return info.get("meta"), read_npz(raw, expect, most)
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
                RuntimeError) as exc:  # what zipfile and NumPy raise for a damaged archive  # fmt: skip
            self.quarantine(key, str(exc) or type(exc).__name__)
            return None

    def stamp(self, key: str) -> str | None:
        """A digest of the entry's ``meta.json`` (which holds its arrays' checksum): what changes when the
        entry does, read without its arrays. None if the entry is not there (``read`` verifies it)."""
        try:
            if not self.has(key):
                return None
            return hashlib.sha256(_read(self._dir(key) / "meta.json", MAX_META_BYTES)).hexdigest()[:16]
        except (OSError, _Bad):
            return None

    def get(self, key: str, expect: Expected | None = None) -> dict[str, np.ndarray] | None:
        """The entry's arrays (see :meth:`read`), or None if it is missing or bad."""
        found = self.read(key, expect)
        return None if found is None else found[1]

    def meta(self, key: str) -> dict[str, Any] | None:
        """The stored ``meta`` of a verified entry, or None."""
        found = self.read(key)
        return found[0] if found is not None and isinstance(found[0], dict) else None

    def quarantine(self, key: str, reason: str) -> Path | None:
        """Move the bad entry of ``key`` (the first of its folders that is bad or a link, as it is:
        a link is moved, not what it points to) into ``<root>/quarantine/``; record it and return
        where it went (None if nothing was there). One line if it cannot be moved."""
        victim = None
        for path, folder in self._parts(key)[:2]:
            try:
                if not _plain(path, folder):
                    break
            except _Bad:
                victim = path
                break
        else:
            victim = self._dir(key)
        if victim is None:
            return None
        qdir = self.root / QUARANTINE
        try:
            if qdir.is_symlink() or (qdir.exists() and not qdir.is_dir()):
                raise FeatgenError(f"{str(qdir)!r} is not a folder: move it away, so that bad cache entries can go there.")
            qdir.mkdir(parents=True, exist_ok=True)
            slot = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=qdir))
            os.rename(victim, slot / victim.name)  # a rename moves a link itself, never its target
        except OSError as exc:
            raise FeatgenError(f"the cache entry {str(victim)!r} is bad ({reason}) and cannot be moved aside "
                               f"({exc.strerror}): make the cache writable, or delete that folder.") from None  # fmt: skip
        self.quarantined[key] = f"{reason}; moved to {slot / victim.name}"
        self.corrupt.append(f"{key} ({self.quarantined[key]})")
        return slot / victim.name

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Store ``arrays`` under ``key`` atomically; ``meta`` (JSON-able) is kept beside them.

        A link where the entry or its folder should be is moved aside first, so nothing is written
        through it. A failed write is one line and leaves no new folder behind."""
        d = self._dir(key)
        self._make_room(key)
        made = [p for p in (d.parent, d) if not p.exists()]
        try:
            d.mkdir(parents=True, exist_ok=True)
            for stale in d.glob(".*.tmp"):  # a killed writer's; under the build lock, no one else writes here
                stale.unlink(missing_ok=True)
            raw = npz_bytes(arrays)
            atomic_write(d / "data.npz", raw)
            text = json.dumps({"sha256": hashlib.sha256(raw).hexdigest(), "meta": meta}, indent=1, sort_keys=True, default=str)
            atomic_write(d / "meta.json", text.encode())  # last: an entry without it does not exist
        except OSError as exc:
            if d in made:  # ours, just made: no half entry stays
                shutil.rmtree(d, ignore_errors=True)
            if d.parent in made:
                with contextlib.suppress(OSError):  # empty unless another writer (a Ray worker) uses it now
                    d.parent.rmdir()
            raise write_error(exc, f"the cache {str(self.root)!r}", "--cache") from None

    def _make_room(self, key: str) -> None:
        """Quarantine whatever bad thing (a link, a file) sits where the entry's folders go."""
        for path, folder in self._parts(key)[:2]:
            try:
                _plain(path, folder)
            except _Bad as exc:
                self.quarantine(key, str(exc))
                return


# what a write into a full, read-only or forbidden folder fails with
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def write_error(exc: OSError, where: str, flag: str) -> FeatgenError:
    """One line for a write that failed in ``where``: what the system said, and what to do."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    fix = "free some space" if full else "make it writable"
    return FeatgenError(f"cannot write to {where}: {exc.strerror or exc}; {fix}, or pass {flag} with another folder, "
                        "and run again (what is finished stays).")  # fmt: skip


class BuildLock:
    """An exclusive, non-blocking lock on a folder (a ``.featgen-build.lock`` file in it).

    A second build that finds it held stops with a one-line error naming the lock and its holder,
    so two builds never write the same docs or cache at once. The OS releases it if a build dies.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / ".featgen-build.lock"
        self._fd: int | None = None

    def __enter__(self) -> BuildLock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): builds are not guarded there
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted as the lock file must not have the pid written through it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FeatgenError(f"the lock file {str(self.path)!r} is a link: remove it and run again.") from None
            raise write_error(exc, repr(str(self.path.parent)), "--cache or --docs") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO would block the holder's pid read below
            os.close(fd)
            raise FeatgenError(f"the lock file {str(self.path)!r} is not a regular file: remove it and run again.")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FeatgenError(
                f"another gallery build (pid {holder}) holds the lock {str(self.path)!r}; wait for it to finish, then run again."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:  # the pid is for a reader's message only; the lock holds without it
            pass
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (removing it would race)
            self._fd = None
