"""``featgen cam``: every method's overlay in one labelled grid, plus a JSON of faithfulness metrics."""

from __future__ import annotations

import argparse
import os

from .common import add_model_args, check_out_dir, load_model_arg, parse_target, read_image_arg, write_json

NAME = "cam"
HELP = "class activation maps of every method for an image, with faithfulness metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("image", help="a photo, or sample:NAME (chelsea, coffee, ...)")
    p.add_argument("--method", default="all", help="all, or a comma list: gradcam,scorecam,...")
    p.add_argument("--layer", default=None, help="target layer (default: the last spatial layer)")
    p.add_argument("--target", default=None,
                   help="class index or label, e.g. 'Egyptian cat' (default: top class); for a model without "
                        "a classifier, the output channel to explain")  # fmt: skip
    p.add_argument("--no-metrics", action="store_true", help="skip the faithfulness metrics (faster)")
    p.add_argument("--out", default=None, help="output folder (default: cam-<model>)")


def labelled_grid(tiles, titles, cols: int = 4):
    """A matplotlib figure of images with titles."""
    import matplotlib.pyplot as plt

    rows = (len(tiles) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile, title in zip(axes.ravel(), tiles, titles):
        ax.imshow(tile)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def run(args: argparse.Namespace) -> int:
    from ..cam import METHODS, cam, check_method, default_layer, resolve_targets
    from ..cam.metrics import faithfulness
    from ..images import load_image, overlay
    from ..progress import bar

    if args.out is not None:
        check_out_dir(args.out)
    image = load_image(read_image_arg(args.image))
    methods = list(METHODS) if args.method == "all" else [check_method(m) for m in args.method.split(",")]
    model = load_model_arg(args)
    out = check_out_dir(args.out or f"cam-{model.name}")
    layer = model.resolve_layer(args.layer) if args.layer else default_layer(model)
    small = model.prepare(image)[0]
    target, classifier = resolve_targets(model, small[None], parse_target(args.target))
    target = target[0]
    label = model.label(target) if classifier else f"channel {target}"
    tiles, titles, metrics = [small], [f"input: {label}"], {}
    for m in bar(methods, desc="cam"):
        c = cam(model, small, m, layer=None if m == "fullgrad" else layer, target=target)[0]  # fullgrad: every bias
        tiles.append(overlay(small, c))
        titles.append(m)
        if classifier and not args.no_metrics:  # the metrics read class probabilities
            metrics[m] = faithfulness(model, small, c, target).as_dict()
    fig = labelled_grid(tiles, titles)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".cams.png.tmp{os.getpid()}"
    try:
        fig.savefig(tmp, dpi=100, format="png")
        tmp.replace(out / "cams.png")
    finally:
        tmp.unlink(missing_ok=True)
    write_json(out / "metrics.json", {"model": model.name, "layer": layer, "target": target, "label": label, "metrics": metrics})
    print(f"wrote {out}/cams.png and {out}/metrics.json ({len(methods)} methods, layer {layer}, target {label!r})")
    return 0
