"""mkdocs hooks (``hooks:`` in mkdocs.yml). Before mkdocs-gallery runs the tutorials, drop the pages
of those that changed, so a tutorial that now raises fails the build and leaves no stale page."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

from featgen.site.tutorials import drop_stale_tutorial_pages

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


@event_priority(100)  # before the gallery plugin's own on_pre_build
def on_pre_build(config: Any) -> None:
    _absl_logging_on_real_stderr()
    gallery = config.plugins.get("gallery")
    if gallery is None:
        return
    conf = gallery.config
    for src, out in zip(conf["examples_dirs"], conf["gallery_dirs"]):
        for name in drop_stale_tutorial_pages(Path(src), Path(out), conf["filename_pattern"]):
            log.info(f"featgen: {name} changed: its old page is dropped until it runs again")
