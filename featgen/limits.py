"""The bounds on every number a user gives, in one place: the command line and ``galleries.yml``
check against the same limits, and the render cache and the model-info check use them too.

Each bound is what featgen can run in sane memory and time, not what a model could in principle take.
"""

from __future__ import annotations

import reprlib
from typing import Any

from .errors import FeatgenError

# name -> (lowest, highest), both included
LIMITS: dict[str, tuple[int, int]] = {
    "size": (16, 2048),  # image side: a 2048² batch of 16 already needs GBs of activations
    "steps": (1, 100_000),
    "naive_steps": (1, 100_000),
    "batch_size": (1, 1024),
    "diversity": (1, 64),  # images per unit
    "seed": (0, 2**32 - 1),  # NumPy's seed range
    "chunk": (1, 4096),  # units per job
    "units": (1, 1 << 20),  # a count of units
    "unit": (0, (1 << 20) - 1),  # a unit index
    "crop": (8, 2048),  # example crop side, px
    "top": (1, 64),  # top (and bottom) examples per unit
    "examples_limit": (1, 10_000_000),  # entries an examples folder walk may visit
    "examples_shard": (1, 1_000_000),  # images per scan job
    "threads": (1, 4096),  # CPU threads per worker
    "workers": (1, 100_000),
    "max_in_flight": (1, 1024),  # jobs queued on a worker
}
MAX_CHANNELS = LIMITS["units"][1]  # a layer wider than this is a corrupt table, not a model
MAX_INPUT_SIZE = 8192  # a model's input side
MAX_CONFIG_BYTES = 4 << 20  # galleries.yml: a few KB in practice
MAX_CONFIG_NODES = 200_000  # YAML nodes after alias expansion (a billion-laughs file has 10⁹)
MAX_CONFIG_TEXT = 16 << 20  # characters of scalars after alias expansion
EXAMPLES_LIMIT = 100_000  # default: files and folders an examples folder walk visits

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 160
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def short(value: Any) -> str:
    """``repr(value)`` cut to a readable length: a message never quotes a huge value in full."""
    return _SHORT.repr(value)


def cut(text: str, width: int = 160) -> str:
    """``text`` with its middle cut out if it is longer than ``width`` (a name or a path, unquoted)."""
    return text if len(text) <= width else f"{text[: width // 2]}...{text[-(width // 2) :]}"


def out_of_range(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` (an integer within :data:`LIMITS`), or None if it is."""
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        return f"must be an integer >= {lo} and <= {hi:,}, got {short(value)}"
    return None


def check(name: str, value: int | None, flag: str | None = None) -> None:
    """One line naming ``flag`` (default ``--name``) unless ``value`` is None or within the limit."""
    if value is None:
        return
    flag = flag or "--" + name.replace("_", "-")
    if out_of_range(name, value) is not None:
        lo, hi = LIMITS[name]
        raise FeatgenError(f"{flag} {short(value)} is out of range: use {lo}..{hi}.")


__all__ = ["LIMITS", "MAX_CHANNELS", "MAX_INPUT_SIZE", "EXAMPLES_LIMIT", "short", "cut", "out_of_range", "check"]
