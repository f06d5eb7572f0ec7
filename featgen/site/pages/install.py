"""What the page stage owns, and how it replaces it: the manifest of the files it wrote in a folder,
the checks on the folders it writes, and the move of a build's pages into place.

A folder of pages (``DOCS/galleries``, or the gallery's HTML pages) belongs to the user; featgen owns
only the files it wrote there, which it lists in the folder's ``.featgen-manifest.json``. Pages are
written into a staging folder first; then each is moved into place (one rename each), and the files
of the last build that this one no longer has are deleted. Nothing else in the folder is touched: a
user's own file there survives every rebuild.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import FeatgenError
from ...files import atomic_write, check_own_folder

GALLERIES = "galleries"


MANIFEST = ".featgen-manifest.json"  # in DOCS/galleries: the files featgen wrote there
MANIFEST_KIND = "featgen-galleries-1"
MAX_MANIFEST_BYTES = 64 << 20  # the full profile's pages list in a few MB
FEATGEN_NAMES = (".featgen-build.lock", GALLERIES, "tutorials")  # what featgen itself puts in a docs folder


def check_docs(docs: str | os.PathLike, flag: str = "--docs") -> Path:
    """``docs`` if it can be a project's docs folder, creating nothing; else one line.

    The rule: not the filesystem root nor the home folder; and a new or empty folder, a folder
    that holds only what featgen writes there (``galleries/``, ``tutorials/``, its lock), or a mkdocs
    docs folder: one with an ``index.md``, or with a ``mkdocs.yml`` beside it. ``DOCS/galleries`` must
    be a plain folder, not a link out of it.
    """
    path = check_own_folder(docs, "project's docs folder", flag, "your mkdocs docs folder")
    if path.is_dir():
        names = [e.name for e in path.iterdir()]
        ours = all(n in FEATGEN_NAMES or n.startswith(f".{GALLERIES}.") for n in names)
        mkdocs = (path / "index.md").is_file() or any((path.parent / n).is_file() for n in ("mkdocs.yml", "mkdocs.yaml"))
        if not (ours or mkdocs):
            raise FeatgenError(f"{str(path)!r} is not a project's docs folder (no index.md in it, no mkdocs.yml beside it): "
                               f"pass {flag} with your mkdocs docs folder, or with a new or empty folder.")  # fmt: skip
    out = path / GALLERIES
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise FeatgenError(f"{str(out)!r} is a link or a file: featgen writes pages only into a folder there; move it away.")
    return path


def _relative(text: Any) -> str:
    """A manifest entry: a plain relative path inside the galleries folder (no root, no empty, ``.``
    or ``..`` part, no backslash), else ValueError. String checks: a manifest lists 350,000 files."""
    if not isinstance(text, str) or not text or "\\" in text or any(part in ("", ".", "..") for part in text.split("/")):
        raise ValueError(f"{text!r} is no path inside the folder")
    return text


def read_manifest(out: Path, kind: str = MANIFEST_KIND) -> list[str]:
    """The files the last build wrote into ``out`` (``DOCS/galleries``); [] if it has no manifest.
    A manifest that is not featgen's is one line: trusting it could delete a user's files."""
    return read_manifest_data(out, kind)["files"]


def read_manifest_data(out: Path, kind: str = MANIFEST_KIND) -> dict[str, Any]:
    """The manifest of ``out``: ``files`` (checked: plain paths inside ``out``) and what else the
    build stored there; ``{"files": []}`` if there is none."""
    path = out / MANIFEST
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return {"files": []}
    try:
        if not stat.S_ISREG(mode):
            raise ValueError("it is not a regular file")
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_MANIFEST_BYTES:
                raise ValueError(f"it is over {MAX_MANIFEST_BYTES >> 20} MB")
            data = json.loads(f.read())
        if not isinstance(data, dict) or data.get("kind") != kind or not isinstance(data.get("files"), list):
            raise ValueError(f"not an object of kind {kind}")
        return {**data, "files": [_relative(f) for f in data["files"]]}
    except (OSError, ValueError) as exc:
        raise FeatgenError(f"{str(path)!r} is not featgen's list of its pages ({exc}): move it away; featgen then "
                           "replaces only the files it writes and deletes none.") from None  # fmt: skip


def _write_manifest(out: Path, files: list[str], kind: str = MANIFEST_KIND, extra: dict[str, Any] | None = None) -> None:
    data = {**(extra or {}), "kind": kind, "files": sorted(files)}
    atomic_write(out / MANIFEST, json.dumps(data, separators=(",", ":"), sort_keys=True).encode())


def _plain_parents(out: Path, rel: str) -> bool:
    """Whether every folder between ``out`` and ``out/rel`` is a plain folder or absent (no link):
    a write or a delete there stays inside ``out``. Raises one line for a file in the way."""
    folder = out
    for part in PurePosixPath(rel).parts[:-1]:
        folder = folder / part
        try:
            mode = folder.lstat().st_mode
        except FileNotFoundError:
            return True
        if stat.S_ISLNK(mode):
            return False
        if not stat.S_ISDIR(mode):
            raise FeatgenError(f"{str(folder)!r} is a file where featgen writes a folder of pages: move it away.")
    return True


def install(staging: Path, out: Path, keep: frozenset[str] | set[str] = frozenset(), kind: str = MANIFEST_KIND,
            extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    r"""Move the pages in ``staging`` into ``out`` and delete the files of the last build (as its
    manifest lists them) that this one neither wrote nor ``keep``\ s (files of the last build that
    did not change). The manifest is written first with both lists, then with the new one (and
    ``extra``): a build cut anywhere leaves no file of featgen's unlisted."""
    new = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    old = read_manifest(out, kind) if out.is_dir() else []
    final = sorted(set(new) | set(keep))
    for rel in new:  # every target checked before anything moves
        if not _plain_parents(out, rel):
            raise FeatgenError(f"a folder on the way to {str(out / rel)!r} is a link: featgen writes pages only inside "
                               f"{str(out)!r}; replace the link by a folder.")  # fmt: skip
        if (out / rel).is_dir() and not (out / rel).is_symlink():
            raise FeatgenError(f"{str(out / rel)!r} is a folder where featgen writes a page: move it away.")
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, sorted(set(old) | set(final)), kind, extra)
    for rel in new:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, out / rel)  # replaces a link itself, never what it points to
    for rel in sorted(set(old) - set(final)):
        target = out / rel
        if _plain_parents(out, rel) and (target.is_symlink() or target.is_file()):
            target.unlink()
            for folder in list(target.parents)[: len(PurePosixPath(rel).parts) - 1]:  # emptied folders, up to out
                try:
                    folder.rmdir()
                except OSError:
                    break
    _write_manifest(out, final, kind, extra)


def clean_staging(docs: Path) -> None:
    """Remove staging and old trees that an interrupted build left (call with the docs lock held)."""
    for old in list(docs.glob(f".{GALLERIES}.tmp*")) + list(docs.glob(f".{GALLERIES}.old*")):
        shutil.rmtree(old, ignore_errors=True)
