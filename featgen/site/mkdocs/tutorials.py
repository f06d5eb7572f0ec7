"""Tutorials under mkdocs-gallery: re-run them when featgen changes, and drop the pages of changed ones."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ...files import atomic_write


def engine_hash() -> str:
    """Digest of featgen's own source: tutorials re-run when the engine changes."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def invalidate_stale_tutorials(gallery_dir: Path) -> bool:
    """mkdocs-gallery re-runs a script only when its text changes; fold the engine hash in by
    deleting its stored checksums when featgen's source changed. Returns True if it did."""
    stamp = gallery_dir / ".featgen-engine-hash"
    current = engine_hash()
    if stamp.is_file() and not stamp.is_symlink() and stamp.read_bytes()[:64] == current.encode():
        return False
    for md5 in gallery_dir.rglob("*.md5"):  # links to folders are not followed
        md5.unlink()
    gallery_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(stamp, current.encode())  # replaces a link planted there, never writes through it
    return True


def drop_stale_tutorial_pages(examples_dir: Path, gallery_dir: Path, pattern: str = "/plot_") -> list[str]:
    """Delete the generated page, notebook and images of every tutorial whose source changed since it
    last ran to the end (its ``.md5`` is missing or differs). mkdocs-gallery re-runs exactly those, so
    one that now raises fails the build with no stale page of it left behind. Returns their names."""
    examples_dir, gallery_dir = Path(examples_dir), Path(gallery_dir)
    dropped = []
    for src in sorted(examples_dir.rglob("*.py")):
        if not re.search(pattern, src.as_posix()):
            continue
        out = gallery_dir / src.parent.relative_to(examples_dir)
        md5 = out / f"{src.name}.md5"
        text = src.read_text(errors="surrogateescape").encode(errors="surrogateescape")  # as mkdocs-gallery
        if md5.exists() and md5.read_text() == hashlib.md5(text).hexdigest():
            continue
        stale = [out / f"{src.stem}.md", md5, out / f"{src.stem}.ipynb", out / f"{src.stem}_codeobj.pickle"]
        stale += list((out / "images").rglob(f"mkd_glr_{src.stem}_*"))
        if stale[0].exists():
            dropped.append(src.name)
        for p in stale:
            p.unlink(missing_ok=True)
    return dropped
