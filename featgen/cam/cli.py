"""``featgen cam``: every method's overlay in one labelled grid, plus a JSON of faithfulness metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import add_model_args

    add_model_args(p)
    p.add_argument("image", help="a photo, or sample:NAME (chelsea, coffee, ...)")
    p.add_argument("--method", default="all", help="all, or a comma list: gradcam,scorecam,...")
    p.add_argument("--layer", default=None, help="target layer (default: the last spatial layer)")
    p.add_argument("--target", default=None, help="class index or label, e.g. 'Egyptian cat' (default: top class)")
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
    from ..cli import load_model_arg, read_image_arg
    from ..errors import FeatgenError
    from ..images import load_image, overlay
    from ..progress import bar
    from . import METHODS, cam, default_layer
    from .metrics import faithfulness

    image = load_image(read_image_arg(args.image))
    methods = list(METHODS) if args.method == "all" else [m.strip().lower() for m in args.method.split(",")]
    for m in methods:
        if m not in METHODS:
            from ..errors import suggest

            raise FeatgenError(f"unknown CAM method {m!r}.{suggest(m, METHODS)}")
    model = load_model_arg(args)
    layer = model.resolve_layer(args.layer) if args.layer else default_layer(model)
    target = model.class_index(args.target) if args.target is not None else int(model.logits(image).argmax())
    label = model.label(target)
    small = model.prepare(image)[0]
    out = Path(args.out or f"cam-{model.name}")
    out.mkdir(parents=True, exist_ok=True)
    tiles, titles, metrics = [small], [f"input: {label}"], {}
    for m in bar(methods, desc="cam"):
        c = cam(model, small, m, layer=None if m == "fullgrad" else layer, target=target)[0]  # fullgrad: every bias
        tiles.append(overlay(small, c))
        titles.append(m)
        if not args.no_metrics:
            metrics[m] = faithfulness(model, small, c, target).as_dict()
    fig = labelled_grid(tiles, titles)
    fig.savefig(out / "cams.png", dpi=100)
    (out / "metrics.json").write_text(json.dumps(
        {"model": model.name, "layer": layer, "target": target, "label": label, "metrics": metrics}, indent=1))  # fmt: skip
    print(f"wrote {out}/cams.png and {out}/metrics.json ({len(methods)} methods, layer {layer}, target {label!r})")
    return 0
