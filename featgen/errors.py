"""Errors that reach users: one line, saying what went wrong and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FeatgenError(ValueError):
    """An error caused by the user's input or environment, with a one-line, actionable message.

    The CLI prints these without a traceback. Subclass of ``ValueError`` so that
    callers who catch ``ValueError`` keep working.
    """


class WeightsUnavailableError(FeatgenError):
    """Pretrained weights could not be fetched (e.g. offline)."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean: a, b?"`` for the closest names, or ``""``."""
    if len(name) > 200:  # no name is that long: a runaway value, whose comparison would take minutes
        return ""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        low = name.lower()
        close = [c for c in choices if low and low in c.lower()][:n]
    return f" Did you mean: {', '.join(close)}?" if close else ""
