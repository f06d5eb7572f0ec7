"""``featgen maps``: a grid of a layer's feature maps for an image."""

from __future__ import annotations

import argparse

import numpy as np

from .common import add_model_args, check_out_file, load_model_arg, parse_units, read_image_arg

NAME = "maps"
HELP = "write a grid of a layer's feature maps for an image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name, see `featgen layers MODEL`")
    p.add_argument("--image", required=True, help="path to a photo, or sample:NAME (chelsea, coffee, astronaut, ...)")
    p.add_argument("--channels", default=None, help="channel range a:b or list a,b,c (default: the first 64)")
    p.add_argument("--colormap", default="viridis")
    p.add_argument("--shared-scale", action="store_true", help="one colour scale for all maps instead of one per map")
    p.add_argument("--out", default=None, help="output PNG (default: maps-<model>-<layer>.png)")


def run(args: argparse.Namespace) -> int:
    from ..images import colorize, load_image, save_image
    from ..maps import activations, feature_map_grid
    from ..progress import bar

    if args.out is not None:
        check_out_file(args.out)
    colorize(np.zeros(1), args.colormap)  # an unknown colormap fails here, not after the forward pass
    with bar(total=3, desc="maps") as pb:
        image = load_image(read_image_arg(args.image))  # fail fast on a bad file, before loading a model
        pb.set_postfix_str("loading model")
        model = load_model_arg(args)
        pb.update()
        layer = model.resolve_layer(args.layer)
        out = check_out_file(args.out or f"maps-{model.name}-{layer.replace('/', '_')}.png")
        info = model.layer_info(layer)
        channels = parse_units(args.channels, info.channels, "--channels")
        acts = activations(model, image, layer)
        pb.update()
        img = feature_map_grid(acts, channels=channels, colormap=args.colormap, per_map=not args.shared_scale)
        save_image(img, out)
        pb.update()
    print(f"wrote {out} ({acts.shape[-1]} channels of {layer}, maps {acts.shape[0]}x{acts.shape[1]})")
    return 0
