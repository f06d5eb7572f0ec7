"""mkdocs hooks (``hooks:`` in mkdocs.yml).

- Before mkdocs-gallery runs the tutorials, drop the pages of those that changed, so a tutorial that
  now raises fails the build and leaves no stale page.
- The generated galleries join the navigation: a Galleries section with each model, each backend and
  its layers (unit pages stay out of it: tens of thousands of links would weigh on every page).
- After the build, the gallery's own pages (layers, units, torch | TensorFlow; written as HTML by
  the page stage, :mod:`featgen.site.pages.write`) join the site: each file its manifest lists is
  hard-linked (or copied) into ``site/galleries``, and the search index gains the layer pages.
  Before the build (mkdocs empties the site), the gallery published last is moved aside, and its
  unchanged layers move back whole (:mod:`featgen.site.pages.publish`).
- mkdocs-gallery's execution-times page is a grid table that markdown shows as ``+----+`` text: it
  becomes a pipe table.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.nav import Link, Section

from featgen.site.mkdocs.tutorials import drop_stale_tutorial_pages
from featgen.site.pages.publish import gallery_layers, publish_pages, search_entries, set_aside

log = logging.getLogger("mkdocs.featgen")


def _absl_logging_on_real_stderr() -> None:
    """absl (TensorFlow's logger) keeps the ``sys.stderr`` it first sees. If a tutorial is the
    first to import it, that is mkdocs-gallery's output tee, which has no ``close()``, and Python's
    logging shutdown then prints a traceback after a successful build. Importing it here first
    hands it the real stream."""
    try:
        import absl.logging  # noqa: F401  (only present with the tensorflow extra)
    except ImportError:
        pass


@event_priority(100)  # before the gallery plugin's own on_pre_build, and before mkdocs empties the site
def on_pre_build(config: Any) -> None:
    _absl_logging_on_real_stderr()
    set_aside(config["site_dir"])  # the gallery published last: its unchanged layers move back whole
    gallery = config.plugins.get("gallery")
    if gallery is None:
        return
    conf = gallery.config
    for src, out in zip(conf["examples_dirs"], conf["gallery_dirs"]):
        for name in drop_stale_tutorial_pages(Path(src), Path(out), conf["filename_pattern"]):
            log.info(f"featgen: {name} changed: its old page is dropped until it runs again")


GALLERIES = "galleries/"


def _gallery_page(files: Any, uri: str) -> Any:
    f = files.get_file_from_path(uri)
    return f.page if f is not None else None


def on_nav(nav: Any, config: Any, files: Any) -> Any:
    """Replace the Galleries entry (``galleries/index.md``) with a section: index, then per model its
    page and per backend its page and its layers (links to the gallery's own pages)."""
    for i, item in enumerate(nav.items):
        if getattr(item, "file", None) is None or item.file.src_uri != GALLERIES + "index.md":
            continue
        models = sorted({f.src_uri.split("/")[1] for f in files.documentation_pages()
                         if f.src_uri.startswith(GALLERIES) and f.src_uri.count("/") == 2
                         and f.src_uri.endswith("/index.md")})  # fmt: skip
        layers = gallery_layers(config["docs_dir"])
        children = [item]
        for m in models:
            model_page = _gallery_page(files, f"{GALLERIES}{m}/index.md")
            kids: list[Any] = [model_page]
            for f in files.documentation_pages():
                if f.src_uri.startswith(f"{GALLERIES}{m}/") and f.src_uri.count("/") == 3 and f.src_uri.endswith("/index.md") \
                        and f.page is not None:  # fmt: skip
                    backend = f.src_uri.split("/")[2]
                    links = [Link(row["layer"], GALLERIES + row["path"]) for row in layers.get((m, backend), [])]
                    kids.append(Section(f.page.title or backend, [f.page, *links]) if links else f.page)
            children.append(Section(m, [k for k in kids if k is not None]))
        if len(children) == 1:
            return nav
        section = Section(item.title or "Galleries", children)
        _adopt(section)
        nav.items[i] = section
        nav.pages = [p for p in _walk(nav.items)]
        _link_pages(nav.pages)
        return nav
    return nav


def _adopt(section: Any) -> None:
    for child in section.children:
        child.parent = section
        if getattr(child, "children", None):
            _adopt(child)


def _walk(items: list) -> list:
    out = []
    for it in items:
        if getattr(it, "children", None):
            out += _walk(it.children)
        elif getattr(it, "is_page", False):
            out.append(it)
    return out


def _link_pages(pages: list) -> None:
    for a, b in zip([None] + pages[:-1], pages):
        if b is not None:
            b.previous_page = a
        if a is not None:
            a.next_page = b


@event_priority(-100)  # after the search plugin has written its index
def on_post_build(config: Any) -> None:
    """The gallery's own pages join the built site, and its layer pages the search index."""
    from mkdocs.exceptions import PluginError

    from featgen.errors import FeatgenError

    try:
        n = publish_pages(config["docs_dir"], config["site_dir"])
    except FeatgenError as exc:  # one line, as mkdocs reports a plugin's error
        raise PluginError(f"featgen: {exc}") from None
    if n:
        log.info(f"featgen: the gallery's {n} files are in the site")
    index = Path(config["site_dir"]) / "search" / "search_index.json"
    if index.is_file():
        import json

        data = json.loads(index.read_text(encoding="utf-8"))
        data["docs"] = data.get("docs", []) + search_entries(config["docs_dir"])
        index.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


_GRID_RULE = re.compile(r"^\+(-+\+)+\s*$")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs-gallery's ``mg_execution_times.md`` grid table as a pipe table."""
    if not page.file.src_uri.endswith("mg_execution_times.md"):
        return markdown
    out, header = [], False
    for line in markdown.splitlines():
        if _GRID_RULE.match(line):
            continue
        if line.startswith("| ") and not header:
            out += ["| script | time | memory |", "|---|---:|---:|"]
            header = True
        out.append(line)
    return "\n".join(out) + "\n"


# Docstrings use Sphinx roles (:class:`~a.b.C`); markdown renders them as ":class:" before a code span.
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|obj|data|exc|py:\w+):<code>(~?)([\w.]+)</code>")


def _unrole(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Sphinx roles in docstrings become plain code (``~`` keeps the last name, as Sphinx does)."""
    return _ROLE.sub(_unrole, html) if ":<code>" in html else html
