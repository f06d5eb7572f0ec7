"""What the page stage owns, and how it replaces it: the manifest of the files it wrote in a folder,
the checks on the folders it writes, and the move of a build's pages into place.

A folder of pages (``DOCS/galleries``, or the gallery's HTML pages) belongs to the user; featgen owns
only the files it wrote there, which it lists in the folder's ``.featgen-manifest.json``. Pages are
written into a staging folder first; then each is moved into place (one rename each), and the files
of the last build that this one no longer has are deleted. Nothing else in the folder is touched: a
user's own file there survives every rebuild. A folder that holds featgen's files alone (a unit's
page and its images) is replaced whole, which is what moving each of its files would leave.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import FeatgenError
from ...files import atomic_write, check_own_folder

GALLERIES = "galleries"


MANIFEST = ".featgen-manifest.json"  # in DOCS/galleries: the files featgen wrote there
MANIFEST_KIND = "featgen-galleries-1"
MAX_MANIFEST_BYTES = 64 << 20  # the full profile's pages list in a few MB
FEATGEN_NAMES = (".featgen-build.lock", GALLERIES, "tutorials")  # what featgen itself puts in a docs folder
PAGES_KIND = "featgen-pages-1"  # the manifest of the gallery's own pages
UNITS_JSON = "units.json"  # in the gallery's own pages: its layers and units (search, navigation)


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


def plain_parents(out: Path, rel: str) -> bool:
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
            extra: dict[str, Any] | None = None, during: dict[str, Any] | None = None) -> None:  # fmt: skip
    r"""Move the pages in ``staging`` into ``out`` and delete the files of the last build (as its
    manifest lists them) that this one neither wrote nor ``keep``\ s (files of the last build that
    did not change). The manifest is written first with both lists (and ``during``, by default
    ``extra``: what it says of the files while they move), then with the new one and ``extra``: a
    build cut anywhere leaves no file of featgen's unlisted.

    A folder moves whole (one rename) where ``out`` has none, or where everything ``out`` has there
    is featgen's and this build replaces or deletes it; else its files move one by one."""
    new = _files(staging)
    last = read_manifest_data(out, kind) if out.is_dir() else {"files": []}
    old = set(last["files"])
    final = set(new) | set(keep)
    _check_targets(out, new)  # every target checked before anything moves
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, sorted(old | final), kind, extra if during is None else during)
    entries = sorted(os.scandir(staging), key=lambda e: e.name)  # before the trash is made in it
    trash = Path(tempfile.mkdtemp(prefix=".old-", dir=staging))  # replaced folders: in staging's filesystem
    try:
        _Mover(out, trash, old, set(new), final).move(entries, "")
        for rel in sorted(old - final):
            target = out / rel
            if plain_parents(out, rel) and (target.is_symlink() or target.is_file()):
                target.unlink()
                for folder in list(target.parents)[: len(PurePosixPath(rel).parts) - 1]:  # emptied folders, up to out
                    try:
                        folder.rmdir()
                    except OSError:
                        break
        _write_manifest(out, sorted(final), kind, extra)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _files(root: Path) -> list[str]:
    """Every file below ``root``, relative to it, sorted."""
    return sorted(os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/") for d, _, names in os.walk(root) for n in names)


def _check_targets(out: Path, new: list[str]) -> None:
    """One line if a page of ``new`` would land below a link or on a folder in ``out``. Each folder
    on the way is looked at once (a layer's pages share their folders)."""
    seen: set[str] = set()
    for rel in new:
        folder = rel.rpartition("/")[0]
        if folder not in seen:
            seen.add(folder)
            if not plain_parents(out, rel):
                raise FeatgenError(f"a folder on the way to {str(out / rel)!r} is a link: featgen writes pages only inside "
                                   f"{str(out)!r}; replace the link by a folder.")  # fmt: skip
        try:
            if stat.S_ISDIR((out / rel).lstat().st_mode):
                raise FeatgenError(f"{str(out / rel)!r} is a folder where featgen writes a page: move it away.")
        except FileNotFoundError:
            pass


class _Mover:
    """Moves staged pages into ``out``: folders whole where that changes nothing else, files one by one
    elsewhere; replaced folders go to ``trash``."""

    def __init__(self, out: Path, trash: Path, old: set[str], new: set[str], final: set[str]):
        self.out, self.trash, self.old, self.new, self.final = out, trash, old, new, final
        # the staged folders that hold a page: those alone move (their paths were checked)
        self.folders = {rel[:i] for rel in new for i, c in enumerate(rel) if c == "/"}
        self.moved = 0

    def move(self, entries: list[os.DirEntry], rel_dir: str) -> None:
        """Move the staged ``entries`` of folder ``rel_dir`` (relative to ``out``, a plain folder
        there) into place."""
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            target = self.out / rel
            if not e.is_dir(follow_symlinks=False):
                os.replace(e.path, target)  # replaces a link itself, never what it points to
            elif rel not in self.folders:
                continue
            elif not os.path.lexists(target):
                os.rename(e.path, target)  # a new folder: all of it is this build's
            elif self._replaceable(target, rel):
                self.moved += 1
                os.rename(target, self.trash / str(self.moved))
                os.rename(e.path, target)
            else:
                self.move(sorted(os.scandir(e.path), key=lambda x: x.name), rel)

    def _replaceable(self, folder: Path, rel_dir: str) -> bool:
        """Whether ``out``'s folder ``rel_dir`` (a plain folder) holds featgen's files alone, each one
        this build writes anew or deletes, in plain folders: then it may go whole. A link, a user's
        file or a kept file in it means no."""
        try:
            if not stat.S_ISDIR(folder.lstat().st_mode):
                return False
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            return False
        if not entries:  # featgen leaves no empty folder: this one is a user's
            return False
        for e in entries:
            rel = f"{rel_dir}/{e.name}"
            if e.is_symlink():
                return False
            if e.is_dir(follow_symlinks=False):
                if not self._replaceable(Path(e.path), rel):
                    return False
            elif rel not in self.old or (rel in self.final and rel not in self.new):
                return False
        return True


def pages_of(docs: str | os.PathLike) -> Path | None:
    """The folder of the gallery's own pages that the last build of ``docs`` wrote (from its
    manifest), or None. (Here, not in :mod:`.write`: the mkdocs hook reads it without importing
    the page stage.)"""
    out = Path(docs) / GALLERIES
    if not (out / MANIFEST).is_file():
        return None
    rel = read_manifest_data(out).get("pages")
    return (out / rel).resolve() if isinstance(rel, str) else None


def clean_staging(docs: Path) -> None:
    """Remove staging and old trees that an interrupted build left (call with the docs lock held)."""
    for old in list(docs.glob(f".{GALLERIES}.tmp*")) + list(docs.glob(f".{GALLERIES}.old*")):
        shutil.rmtree(old, ignore_errors=True)
