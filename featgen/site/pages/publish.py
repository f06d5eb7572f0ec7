"""The gallery's own pages in the built site: what the mkdocs hook calls after mkdocs has built the
rest. The page stage wrote them (and their manifest) beside the docs; each listed file is
hard-linked into the site (copied where a link cannot be made), so a build of tens of thousands of
units adds seconds to mkdocs, and the site stays a plain folder to publish."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import FeatgenError
from .install import GALLERIES, read_manifest_data
from .write import PAGES_KIND, UNITS_JSON, pages_of


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


def publish_pages(docs_dir: str | os.PathLike, site_dir: str | os.PathLike) -> int:
    """Link every file of the gallery's pages (as their manifest lists them) into ``site_dir/galleries``;
    return how many. One line if mkdocs made a file at the same place."""
    pages = pages_of(docs_dir)
    if pages is None or not pages.is_dir():
        return 0
    files = read_manifest_data(pages, PAGES_KIND)["files"]
    target = Path(site_dir) / GALLERIES
    made: set[Path] = set()
    can_link = True
    for rel in files:
        src, dst = pages / rel, target / rel
        if dst.parent not in made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        if dst.exists():
            raise FeatgenError(f"{dst} is both a page mkdocs built and a gallery page: rename the one in docs/galleries.")
        if can_link:
            try:
                os.link(src, dst)
                continue
            except OSError as exc:  # another filesystem, or links not allowed: copy from now on
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
                can_link = False
        shutil.copyfile(src, dst)
    return len(files)
