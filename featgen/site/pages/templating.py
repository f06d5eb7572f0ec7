"""Page templates: safe folder names (slugs), names made inert in markdown and HTML, and the two
template environments: markdown pages for mkdocs (``*.md.j2``) and the gallery's own HTML pages
(``*.html.j2``, with each view's block, :meth:`featgen.site.views.View.template`)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, FunctionLoader, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).with_name("templates")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# names the generated tree uses itself: a model or layer called so would collide with a page
_RESERVED = re.compile(r"(?i)^(index|unit-\d+|classes)$|\.md$")


def slug(name: str) -> str:
    """A file-name-safe version of a layer or model name: no separators, no '..', no markup.

    Safe names stay as they are (``blocks.4``); any other gets a short hash of the original, so two
    names that clean up alike (``a/b``, ``a_b``) never share a folder. A name that would collide with a
    generated page (``index.md``, ``index``, ``unit-3``, ``classes``) gets the hash too."""
    name = str(name)
    s = _SAFE.sub("_", name).strip("._").replace("..", "_") or "_"
    return s if s == name and not _RESERVED.search(s) else f"{s}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


# Markdown and HTML metacharacters become numeric entities: a name renders as text in markdown, in
# raw HTML blocks and in attributes, and can open no tag, link, emphasis, code span or table cell.
_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'[]()*`\\_#|{}!"})
# Line breaks and other control characters become numeric entities too: a name stays on its line, so
# it cannot start a heading, list, fence or front-matter block, while text that is meant to span lines
# (code in a <pre>) still shows its line breaks once the browser decodes them. NUL is dropped.
_ENTITIES.update({c: f"&#{c};" for c in [*range(1, 32), 0x7F, 0x85, 0x2028, 0x2029]})
_ENTITIES[0] = None


def md_text(value: Any) -> Any:
    """Jinja ``finalize``: every ``{{ }}`` string in a template comes out as inert text on one line."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return Markup(value.translate(_ENTITIES))
    return value


def title(text: str) -> Markup:
    """A page title for YAML front matter: quoted, on one line, without the characters the theme's
    ``<title>`` (which decodes entities) could turn into markup."""
    return Markup(json.dumps(" ".join(re.sub(r"[<>&\"'`\\\x00-\x1f\x7f\x85\u2028\u2029]", " ", text).split()), ensure_ascii=False))


@functools.cache
def env() -> Environment:
    """The templates' environment: autoescaped, and names made inert for markdown too (built once,
    so each template compiles once)."""
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True, default_for_string=True),
                       finalize=md_text)  # fmt: skip


def _inline_block(name: str) -> tuple[str, None, Any] | None:
    """The Jinja source of a view whose block is inline (``View.block``), looked up on every use."""
    from .. import views

    for view in views.all_views():
        if view.block is not None and view.template() == name:
            return view.block, None, lambda: False
    return None


@functools.cache
def html_env() -> Environment:
    """The gallery's HTML pages' environment: autoescaped (a name is text, never markup)."""
    loader = ChoiceLoader([FunctionLoader(_inline_block), FileSystemLoader(str(TEMPLATES))])
    return Environment(loader=loader, autoescape=True, trim_blocks=False, keep_trailing_newline=True)


def render(template: str, **ctx: Any) -> str:
    """Render one of the markdown page templates; they get ``slug`` and ``title`` besides ``ctx``."""
    return env().get_template(template).render(**ctx, slug=lambda name: Markup(slug(name)), title=title)


def render_html(template: str, **ctx: Any) -> str:
    """Render one of the HTML page templates."""
    return html_env().get_template(template).render(**ctx)


def write_page(template: str, path: Path, **ctx: Any) -> None:
    """Render ``template`` with ``ctx`` into ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(template, **ctx))
