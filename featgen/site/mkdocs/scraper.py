"""mkdocs-gallery image scraper for ``featgen.show_image``: PIL images and arrays, without matplotlib.

Enabled in mkdocs.yml next to matplotlib's: ``image_scrapers: [matplotlib, featgen.site.mkdocs.scraper]``.
mkdocs-gallery 0.10.4 takes a module name there and calls its ``_get_sg_image_scraper()``; the
scraper is called after each code block as ``scraper(block, script)`` and returns markdown.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...images import save_image, take_shown


def _alt(title: str) -> str:
    """Alt text that cannot break out of the markdown or the HTML attribute it lands in."""
    return html.escape(" ".join(title.split())).replace("[", "(").replace("]", ")")


def featgen_scraper(block: Any, script: Any) -> str:
    """Write each image queued by ``show_image`` to the next gallery image path; return their markdown."""
    shown = take_shown()
    if not shown:
        return ""
    from mkdocs_gallery.scrapers import HLIST_HEADER, figure_md_or_html

    paths = []
    for arr, _ in shown:
        path = Path(next(script.run_vars.image_path_iterator))  # .../images/mkd_glr_<script>_<n>.png
        paths.append(save_image(arr, path))
    if len(paths) == 1:
        return figure_md_or_html(paths, script, _alt(shown[0][1]))
    tags = [figure_md_or_html([p], script, _alt(t), raw_html=True) for p, (_, t) in zip(paths, shown)]
    return HLIST_HEADER % "".join(tags)


def _get_sg_image_scraper() -> Callable[[Any, Any], str]:
    """The hook mkdocs-gallery looks up when ``image_scrapers`` names this module."""
    return featgen_scraper
