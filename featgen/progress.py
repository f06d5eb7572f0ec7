"""Progress bars (tqdm on stderr), switched off with FEATGEN_PROGRESS=0 or ``quiet=True``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def enabled(quiet: bool = False) -> bool:
    return not quiet and os.environ.get("FEATGEN_PROGRESS", "1") != "0"


def bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", quiet: bool = False, **kw: Any):
    """A tqdm bar; a no-op bar when progress is off."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled(quiet), leave=False, dynamic_ncols=True, **kw)
