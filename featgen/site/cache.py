"""Content-addressed render cache: key = settings + weights digest + algorithm version.

Each entry is a folder with ``data.npz`` and ``meta.json`` (which holds the npz's SHA-256). Files are
written to a temporary name and renamed, so an interrupted build leaves no half entry, and the next
build resumes with what is there. A corrupt entry fails its checksum, is reported and re-rendered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np


def key_of(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]


class RenderCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.corrupt: list[str] = []

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        d = self._dir(key)
        meta, data = d / "meta.json", d / "data.npz"
        if not meta.exists() or not data.exists():
            return None
        try:
            expected = json.loads(meta.read_text())["sha256"]
            if hashlib.sha256(data.read_bytes()).hexdigest() != expected:
                raise ValueError("checksum mismatch")
            with np.load(data) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
            self.corrupt.append(f"{key} ({exc})")
            shutil.rmtree(d, ignore_errors=True)
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray], settings: dict[str, Any]) -> None:
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".data.{os.getpid()}.npz"
        np.savez_compressed(tmp, **arrays)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        os.replace(tmp, d / "data.npz")
        meta_tmp = d / f".meta.{os.getpid()}.json"
        meta_tmp.write_text(json.dumps({"sha256": digest, "settings": settings}, indent=1, default=str))
        os.replace(meta_tmp, d / "meta.json")  # written last: an entry without it does not exist
