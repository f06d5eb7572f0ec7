"""The gallery's own pages in the built site: what the mkdocs hook calls around mkdocs's build. The
page stage wrote them (and their manifest) beside the docs; each listed file is hard-linked into the
site (copied where a link cannot be made), so the site stays a plain folder to publish. mkdocs
empties the site before each build: the hook first moves the gallery it published aside, and a
layer whose pages did not change moves back whole, so a rebuild after one layer changed links that
layer's files alone."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import FeatgenError
from .install import GALLERIES, PAGES_KIND, UNITS_JSON, pages_of, read_manifest_data


def _units(docs_dir: str | os.PathLike) -> tuple[Path | None, list[dict[str, Any]]]:
    pages = pages_of(docs_dir)
    if pages is None or not (pages / UNITS_JSON).is_file():
        return pages, []
    rows = json.loads((pages / UNITS_JSON).read_text(encoding="utf-8"))
    return pages, rows if isinstance(rows, list) else []


def gallery_layers(docs_dir: str | os.PathLike) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The layers of each (model folder, backend folder) with pages, in model order: ``layer``, ``path``."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in _units(docs_dir)[1]:
        m, b = row["path"].split("/")[:2]
        out.setdefault((m, b), []).append(row)
    return out


def search_entries(docs_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Search index entries of the layer pages: found by model, backend and layer, and saying all three.
    (A unit is found from these by number: ``featgen-search.js`` reads ``units.json``.)"""
    entries = []
    for row in _units(docs_dir)[1]:
        spans = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in row["units"])
        entries.append({"location": f"{GALLERIES}/{row['path']}", "title": f"{row['layer']} · {row['model']} · {row['backend']}",
                        "text": f"{row['model']} {row['backend']} {row['layer']} {row['type']} layer: units {spans}"})  # fmt: skip
    return entries


PUBLISHED = ".featgen-published.json"  # in SITE/galleries: the digest of each entry published there
ASIDE = ".featgen-galleries"  # SITE/<this>: the last build's gallery during a build (mkdocs cleans no dot-name)


def set_aside(site_dir: str | os.PathLike) -> None:
    """Before mkdocs cleans the site: move the gallery it published last aside (a dot-name, which
    mkdocs leaves), so that its unchanged layers can move back whole instead of being linked again."""
    site = Path(site_dir)
    current, aside = site / GALLERIES, site / ASIDE
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside)  # a build that stopped before it published
    if current.is_dir() and not current.is_symlink() and (current / PUBLISHED).is_file():
        os.rename(current, aside)


def _folder(files: list[str]) -> str | None:
    """The folder that holds exactly an entry's files (a layer's or a compare page's), or None."""
    parents = {f.rpartition("/")[0] or "." for f in files}  # string cuts: thousands of files a layer
    top = min(parents, key=len) if parents else "."
    return top if top != "." and all(p == top or p.startswith(top + "/") for p in parents) else None


def publish_pages(docs_dir: str | os.PathLike, site_dir: str | os.PathLike) -> int:
    """Put every file of the gallery's pages (as their manifest lists them) into ``site_dir/galleries``:
    a layer unchanged since the last build moves back whole from where :func:`set_aside` put it; the
    files of the others are hard-linked (copied where a link cannot be made). Returns how many files
    the gallery has. One line if mkdocs made a file at the same place."""
    pages = pages_of(docs_dir)
    if pages is None or not pages.is_dir():
        return 0
    data = read_manifest_data(pages, PAGES_KIND)
    site = Path(site_dir)
    target, aside = site / GALLERIES, site / ASIDE
    before = {}
    if (aside / PUBLISHED).is_file():
        before = json.loads((aside / PUBLISHED).read_text(encoding="utf-8"))
    entries = data.get("entries") or {"files": {"digest": None, "files": data["files"]}}
    published, count = {}, 0
    linker = _Linker()
    for key, entry in entries.items():
        files, folder = entry["files"], _folder(entry["files"])
        count += len(files)
        kept = folder is not None and entry["digest"] and before.get(key) == entry["digest"]
        if kept and (aside / folder).is_dir() and not (target / folder).exists():
            (target / folder).parent.mkdir(parents=True, exist_ok=True)
            os.rename(aside / folder, target / folder)  # the whole layer, as the last build published it
        else:
            for rel in files:
                linker.link(pages / rel, target / rel)
        published[key] = entry["digest"]
    target.mkdir(parents=True, exist_ok=True)
    (target / PUBLISHED).write_text(json.dumps(published, separators=(",", ":")), encoding="utf-8")
    shutil.rmtree(aside, ignore_errors=True)  # what is left there: stale layers, the last build's own pages
    return count


class _Linker:
    """Hard links, or copies once a link cannot be made (another filesystem)."""

    def __init__(self) -> None:
        self.can_link = True
        self.made: set[Path] = set()

    def link(self, src: Path, dst: Path) -> None:
        if dst.parent not in self.made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(dst.parent)
        if dst.exists():
            raise FeatgenError(f"{dst} is both a page mkdocs built and a gallery page: rename the one in docs/galleries.")
        if self.can_link:
            try:
                os.link(src, dst)
                return
            except OSError as exc:  # another filesystem, or links not allowed: copy from now on
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
                self.can_link = False
        shutil.copyfile(src, dst)
