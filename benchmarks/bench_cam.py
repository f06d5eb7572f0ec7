"""featgen's CAMs against pytorch-grad-cam 1.5.7, in one process: seconds per image and agreement.

Same model (efficientnet_lite0, torch), photo, layer (default: bn2, the last spatial layer, which is
also pytorch-grad-cam's usual choice) and target class; each library at its default settings.

    python benchmarks/bench_cam.py [--layer bn2] [--methods ScoreCAM,AblationCAM,GradCAM] [--repeat 1] [--keras]

``--keras`` also times featgen's TensorFlow backend on the same weights (converted at load time).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np

OURS = {"GradCAM": "gradcam", "HiResCAM": "hirescam", "GradCAMPlusPlus": "gradcam++", "XGradCAM": "xgradcam",
        "LayerCAM": "layercam", "EigenCAM": "eigencam", "ScoreCAM": "scorecam", "AblationCAM": "ablationcam"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="bn2")
    ap.add_argument("--methods", default="ScoreCAM,AblationCAM,GradCAM")
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--target", type=int, default=285)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keras", action="store_true", help="also time featgen's TensorFlow backend")
    args = ap.parse_args()

    import torch

    import featgen
    from featgen.backends.torchvision_compat import import_torchvision

    import_torchvision()
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = featgen.load_model("efficientnet_lite0", device="cpu")
    net = copy.deepcopy(model.module).requires_grad_(True)  # pytorch-grad-cam needs a graph through the weights
    image = featgen.sample_image(args.photo)
    x = model.preprocess(image).contiguous()
    layer = dict(net.named_modules())[args.layer]
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"efficientnet_lite0 layer {args.layer}, {args.photo}, target {args.target}")  # fmt: skip
    featgen.cam(model, image, "gradcam", layer=args.layer)  # warm-up
    keras_model = featgen.load_model("efficientnet_lite0", backend="tensorflow") if args.keras else None
    if keras_model is not None:
        featgen.cam(keras_model, image, "gradcam", layer=args.layer)  # warm-up (traces the graph)
    for name in args.methods.split(","):
        ref = getattr(pgc, name)(model=net, target_layers=[layer])
        theirs, t_ref = timed(args.repeat, ref, input_tensor=x, targets=[ClassifierOutputTarget(args.target)])
        ours, t_ours = timed(args.repeat, featgen.cam, model, image, OURS[name], layer=args.layer, target=args.target)
        corr = np.corrcoef(theirs.ravel(), ours.ravel())[0, 1]
        print(f"{name:<16} pytorch-grad-cam {t_ref:7.2f} s/img   featgen {t_ours:7.2f} s/img   "
              f"speed-up x{t_ref / t_ours:6.1f}   map correlation {corr:.4f}")  # fmt: skip
        if keras_model is not None:
            keras_map, t_keras = timed(args.repeat, featgen.cam, keras_model, image, OURS[name], layer=args.layer,
                                       target=args.target)  # fmt: skip
            corr_k = np.corrcoef(theirs.ravel(), keras_map.ravel())[0, 1]
            print(f"{'':<16} featgen (Keras backend) {t_keras:7.2f} s/img   speed-up x{t_ref / t_keras:6.1f}   "
                  f"map correlation {corr_k:.4f}")  # fmt: skip


def timed(repeat: int, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``'s last result and its mean seconds over ``repeat`` calls."""
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t0) / repeat


if __name__ == "__main__":
    main()
