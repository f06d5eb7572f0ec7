"""Content-addressed render cache: one entry per job key, atomic and checksummed, plus a build lock.

Each entry is a folder ``<root>/<key[:2]>/<key>/`` with ``data.npz`` and ``meta.json`` (which holds
the npz's SHA-256 and the job's settings). Both are written to unique temporary names and renamed,
``meta.json`` last, so an interrupted build leaves no half entry and the next build resumes with what
is there. An entry that fails its checksum, or whose ``meta.json`` is not a JSON object, is reported
in ``corrupt``, removed and rendered again. The npz is written with fixed zip timestamps, so the same
arrays give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FeatgenError
from .jobs import cache_key

__all__ = ["RenderCache", "BuildLock", "cache_key", "npz_bytes", "check_writable_dir"]


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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class RenderCache:
    """Entries keyed by :func:`~featgen.site.jobs.cache_key`; ``corrupt`` lists those found bad."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.corrupt: list[str] = []

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        """True if the entry is complete on disk (``get`` still verifies its checksum)."""
        d = self._dir(key)
        return (d / "meta.json").is_file() and (d / "data.npz").is_file()

    def meta(self, key: str) -> dict[str, Any] | None:
        """The stored ``meta`` of an entry, or None."""
        try:
            meta = json.loads((self._dir(key) / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        return meta.get("meta") if isinstance(meta, dict) else None

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or None if it is missing or corrupt (a corrupt one is removed)."""
        d = self._dir(key)
        meta, data = d / "meta.json", d / "data.npz"
        if not meta.exists() or not data.exists():
            return None
        try:
            info = json.loads(meta.read_text())
            if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
                raise ValueError("meta.json is not an object with a sha256")
            raw = data.read_bytes()
            if hashlib.sha256(raw).hexdigest() != info["sha256"]:
                raise ValueError("checksum mismatch")
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError) as exc:
            self.corrupt.append(f"{key} ({exc})")
            shutil.rmtree(d, ignore_errors=True)
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Store ``arrays`` under ``key`` atomically; ``meta`` (JSON-able) is kept beside them."""
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(".*.tmp"):  # a killed writer's; under the build lock, no one else writes here
            stale.unlink(missing_ok=True)
        raw = npz_bytes(arrays)
        _atomic_write(d / "data.npz", raw)
        text = json.dumps({"sha256": hashlib.sha256(raw).hexdigest(), "meta": meta}, indent=1, sort_keys=True, default=str)
        _atomic_write(d / "meta.json", text.encode())  # last: an entry without it does not exist


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FeatgenError(
                f"another gallery build (pid {holder}) holds the lock {str(self.path)!r}; wait for it to finish, then run again."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (removing it would race)
            self._fd = None
