"""``featgen layers``: a model's hookable layers with output shapes and channels."""

from __future__ import annotations

import argparse
import json

from .common import add_model_args, load_model_arg

NAME = "layers"
HELP = "list a model's hookable layers with output shapes and channels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    model = load_model_arg(args)
    rows = model.layer_table
    if args.json:
        print(json.dumps([{"name": r.name, "type": r.type, "shape": list(r.shape), "channels": r.channels} for r in rows], indent=1))
        return 0
    width = max(len(r.name) for r in rows)
    print(f"{model.name} ({model.backend.name}), input {model.input_size}x{model.input_size}x3, shapes are H x W x C")
    print(f"{'layer':<{width}}  {'type':<22} {'output shape':<16} channels")
    for r in rows:
        shape = " x ".join(map(str, r.shape)) if r.shape else "-"
        print(f"{r.name:<{width}}  {r.type:<22} {shape:<16} {r.channels if r.channels is not None else '-'}")
    return 0
