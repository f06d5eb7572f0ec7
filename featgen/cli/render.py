"""``featgen render``: feature visualizations to a grid PNG, one PNG per unit and a JSON sidecar."""

from __future__ import annotations

import argparse
import math

from ..errors import FeatgenError
from .common import (
    MAX_SIZE,
    add_model_args,
    check_int,
    check_out_dir,
    load_model_arg,
    parse_units,
    write_json,
)

NAME = "render"
HELP = "render feature visualizations of a layer's units (grid, PNGs, JSON)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..vis.render import METHODS

    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name, see `featgen layers MODEL`")
    p.add_argument("--units", default="0:16", help="channels: a range 0:64 or a list 3,5,9 (default 0:16)")
    p.add_argument("--method", default="regularized", choices=METHODS)
    p.add_argument("--size", type=int, default=128, help=f"image side in pixels, 16..{MAX_SIZE} (default 128)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps (default: 30 naive, 512 regularized)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 10 naive, 0.05 regularized)")
    p.add_argument("--param", default="fourier", choices=("fourier", "pixel"),
                   help="image parameterization of the regularized method (default fourier)")
    p.add_argument("--decorrelate", action=argparse.BooleanOptionalAction, default=True,
                   help="optimize in decorrelated colour (regularized; default on)")
    p.add_argument("--transforms", default="lucid", help="lucid, distill2017 or none (regularized and maco)")
    p.add_argument("--batch-size", type=int, default=None, help="images per optimization (default: fit memory)")
    p.add_argument("--out", default=None, help="output folder (default: render-<model>-<layer>-<method>)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..images import grid, save_image
    from ..vis.render import visualize

    check_int(args.size, "--size", "size")
    check_int(args.batch_size, "--batch-size", "batch_size")
    check_int(args.steps, "--steps", "steps")
    check_int(args.seed, "--seed", "seed")
    if args.out is not None:
        check_out_dir(args.out)
    model = load_model_arg(args)
    layer = model.resolve_layer(args.layer)
    info = model.layer_info(layer)
    units = parse_units(args.units, info.channels)
    out = check_out_dir(args.out or f"render-{model.name}-{layer.replace('/', '_')}-{args.method}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise FeatgenError(f"--lr must be a positive number, got {args.lr}.")
    render = visualize(model, layer, units=units, method=args.method, size=args.size, steps=args.steps,
                       seed=args.seed, lr=args.lr, param=args.param, decorrelate=args.decorrelate,
                       transforms=args.transforms, batch_size=args.batch_size)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    save_image(grid(render.images, margin=5), out / "grid.png")
    for unit, img in zip(render.units, render.images):
        save_image(img, out / f"unit-{unit:04d}.png")
    if render.alpha is not None:
        for unit, a in zip(render.units, render.alpha):
            save_image(np.repeat(a[..., None], 3, -1), out / f"unit-{unit:04d}-alpha.png")
    sidecar = {"settings": render.settings, "units": render.summary(),
               "loss_curves": np.nan_to_num(render.losses).round(5).tolist()}  # fmt: skip
    write_json(out / "render.json", sidecar)
    ratio = np.median(render.final_activation - render.start_activation)
    print(f"wrote {out}/grid.png, {len(units)} unit PNGs and render.json "
          f"(median activation gain {ratio:+.3g} over the start image)")  # fmt: skip
    return 0

