"""The site's theme as the gallery's own HTML pages need it: mkdocs-material's stylesheets and script
(the files mkdocs copies into the built site), the site's name, tabs, palette and extra assets, read
from ``mkdocs.yml`` beside the docs folder. No mkdocs import: the page stage stays a plain function
of the cache, and the same inputs give the same pages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...errors import FeatgenError

MATERIAL = "mkdocs-material"
THEME_CSS = "theme.css"  # in the gallery's pages: the icons of the header, shared by every page


@dataclass(frozen=True)
class Palette:
    """One colour scheme of the palette toggle."""

    scheme: str
    primary: str
    accent: str
    toggle_icon: str  # inline SVG of the button that switches to the next scheme
    toggle_name: str


@dataclass(frozen=True)
class Theme:
    """What a gallery page takes from the site: paths are relative to the site's root."""

    site_name: str
    tabs: tuple[tuple[str, str], ...]  # (title, path) of the navigation's top level
    stylesheets: tuple[str, ...]
    scripts: tuple[str, ...]  # after material's bundle: the site's extra_javascript
    bundle: str
    search_worker: str
    features: tuple[str, ...]
    palettes: tuple[Palette, ...]
    icons: dict[str, str] = field(default_factory=dict)  # logo, menu, search, clear: SVG
    lightbox: bool = False
    language: str = "en"

    def digest(self) -> str:
        """What the pages depend on: a page written with another theme is written again."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class _Loader:
    """A YAML loader for mkdocs.yml: safe, with ``!ENV`` read as mkdocs reads it and any other tag
    (``!!python/name:...``) kept as its text: the page stage needs none of those values."""

    @staticmethod
    def load(text: str) -> Any:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def env(loader: Any, node: Any) -> Any:
            values = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else [loader.construct_scalar(node)]
            for name in values[:-1] if len(values) > 1 else values:
                if isinstance(name, str) and name in os.environ:
                    return os.environ[name]
            return values[-1] if len(values) > 1 else None

        def other(loader: Any, suffix: str, node: Any) -> Any:
            return getattr(node, "value", None) if isinstance(node, yaml.ScalarNode) else None

        Loader.add_constructor("!ENV", env)
        Loader.add_multi_constructor("!", other)
        Loader.add_multi_constructor("tag:yaml.org,2002:python/", other)
        return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)


def _page_path(target: str) -> str:
    """The site path of a nav target (``getting-started.md`` → ``getting-started/``, ``index.md`` → ``""``)."""
    if "://" in target:
        return target
    t = target.strip("/")
    if t.endswith(".md"):
        t = t[:-3]
        if t == "index" or t.endswith("/index"):
            t = t[: -len("index")]
        return t.rstrip("/") + "/" if t.rstrip("/") else ""
    return t + "/"


def _first_target(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, list):
        for e in entry:
            found = _first_target(e if not isinstance(e, dict) else next(iter(e.values()), None))
            if found:
                return found
    return None


def _tabs(nav: Any) -> tuple[tuple[str, str], ...]:
    tabs = []
    for item in nav or []:
        if isinstance(item, dict) and item:
            title, target = next(iter(item.items()))
            first = _first_target(target)
            if first is not None:
                tabs.append((str(title), _page_path(first)))
    return tuple(tabs)


def _material_dir() -> Path:
    spec = importlib.util.find_spec("material")
    if spec is None or not spec.submodule_search_locations:
        raise FeatgenError(f"the gallery pages use the site's theme, {MATERIAL}, which is not installed: "
                           "pip install 'featgen[docs]'.")  # fmt: skip
    return Path(next(iter(spec.submodule_search_locations))) / "templates"


def _asset(root: Path, pattern: str) -> str:
    hits = sorted(root.glob(pattern))
    if len(hits) != 1:
        raise FeatgenError(f"{MATERIAL} has {len(hits)} files {pattern} where one was expected: reinstall it "
                           "(pip install --force-reinstall mkdocs-material).")  # fmt: skip
    return hits[0].relative_to(root).as_posix()


def _icon(templates: Path, name: str | None, fallback: str) -> str:
    path = templates / ".icons" / f"{name or fallback}.svg"
    if not path.is_file():
        path = templates / ".icons" / f"{fallback}.svg"
    return path.read_text().strip()


def site_theme(docs: Path) -> Theme:
    """The theme of the site whose docs folder is ``docs``: its ``mkdocs.yml`` (beside the folder; a
    site without one gets material's defaults) and the installed mkdocs-material."""
    templates = _material_dir()
    config: dict[str, Any] = {}
    for name in ("mkdocs.yml", "mkdocs.yaml"):
        path = docs.parent / name
        if path.is_file():
            loaded = _Loader.load(path.read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else {}
            break
    theme = config.get("theme") if isinstance(config.get("theme"), dict) else {}
    raw = theme.get("palette") or [{"scheme": "default", "primary": "indigo", "accent": "indigo"}]
    raw = [raw] if isinstance(raw, dict) else [p for p in raw if isinstance(p, dict)]
    palettes = []
    for i, p in enumerate(raw):
        toggle = p.get("toggle") if isinstance(p.get("toggle"), dict) else {}
        palettes.append(Palette(str(p.get("scheme", "default")), str(p.get("primary", "indigo")), str(p.get("accent", "indigo")),
                                _icon(templates, toggle.get("icon"), "material/brightness-6"), str(toggle.get("name", f"palette {i + 1}"))))  # fmt: skip
    plugins = config.get("plugins") or []
    names = {next(iter(p)) if isinstance(p, dict) else p for p in plugins}
    extra_css = tuple(str(c) for c in config.get("extra_css") or [] if isinstance(c, str))
    extra_js = tuple(str(c) for c in config.get("extra_javascript") or [] if isinstance(c, str))
    lightbox = "glightbox" in names
    styles = (_asset(templates, "assets/stylesheets/main.*.min.css"), _asset(templates, "assets/stylesheets/palette.*.min.css"))
    if lightbox:
        styles += ("assets/stylesheets/glightbox.min.css",)
    features = tuple(f for f in theme.get("features") or [] if isinstance(f, str) and not f.startswith("navigation.instant"))
    icons = {"logo": _icon(templates, (theme.get("icon") or {}).get("logo"), "material/library"),
             "menu": _icon(templates, None, "material/menu"), "search": _icon(templates, None, "material/magnify"),
             "clear": _icon(templates, None, "material/close")}  # fmt: skip
    return Theme(site_name=str(config.get("site_name", "featgen")), tabs=_tabs(config.get("nav")),
                 stylesheets=styles + extra_css, scripts=(("assets/javascripts/glightbox.min.js",) if lightbox else ()) + extra_js,
                 bundle=_asset(templates, "assets/javascripts/bundle.*.min.js"),
                 search_worker=_asset(templates, "assets/javascripts/workers/search.*.min.js"),
                 features=features, palettes=tuple(palettes), icons=icons, lightbox=lightbox,
                 language=str(theme.get("language", "en")))  # fmt: skip


def theme_css(theme: Theme) -> str:
    """The stylesheet of the header's icons (one file every gallery page shares, instead of the same
    SVGs in each of tens of thousands of pages): each icon a mask in the text colour."""
    from urllib.parse import quote

    icons = {**theme.icons, **{f"palette-{i}": p.toggle_icon for i, p in enumerate(theme.palettes)}}
    rules = [".fg-i{display:block;width:1.2rem;height:1.2rem;background-color:currentColor;"
             "-webkit-mask:var(--fg-i) center/contain no-repeat;mask:var(--fg-i) center/contain no-repeat}"]
    for name, svg in icons.items():
        rules.append(f'.fg-i-{name}{{--fg-i:url("data:image/svg+xml,{quote(svg)}")}}')
    return "\n".join(rules) + "\n"
