"""Faithfulness metrics: do the pixels a map ranks high really drive the model's score?

* Deletion / insertion AUC (Petsiuk et al., RISE): remove (or add) pixels in the map's order and
  integrate the class probability; a good map has low deletion and high insertion AUC.
* Average Drop and Increase in Confidence (Chattopadhyay et al., Grad-CAM++): the score on the
  image masked by the map, relative to the full image.
* ROAD (Rong et al. 2022): remove a fraction of pixels, most- or least-relevant first, and impute
  them from their neighbours instead of a constant, so the removal leaks less of the mask's shape.
  Imputation here is a 3×3 neighbour mean repeated until filled, plus small noise (documented
  simplification of ROAD's noisy linear imputation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..images import load_batch
from ..models import LoadedModel


def _probs(model: LoadedModel, batch: np.ndarray, cls: int) -> np.ndarray:
    out = []
    be = model.backend
    for s in range(0, len(batch), 16):
        with be.no_grad():
            z = be.to_numpy(be.forward(model, be.asarray(batch[s : s + 16].astype(np.float32))).logits).astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        out.append(z[:, cls] / z.sum(axis=1))
    return np.concatenate(out)


def _order(cam: np.ndarray) -> np.ndarray:
    return np.argsort(-cam.ravel(), kind="stable")


def deletion_insertion(model: LoadedModel, image: np.ndarray, cam: np.ndarray, cls: int, steps: int = 16,
                       blur_sigma: float = 5.0) -> tuple[float, float]:  # fmt: skip
    """(deletion AUC, insertion AUC) in [0, 1]; deletion paints pixels black, insertion reveals them
    on a blurred copy, in ``steps`` equal chunks of the map's ranking."""
    from PIL import Image, ImageFilter

    h, w, _ = image.shape
    order = _order(cam)
    blurred = np.asarray(
        Image.fromarray((image * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur_sigma)), np.float32
    ) / 255.0
    dele, ins = [], []
    flat_img = image.reshape(-1, 3)
    flat_blur = blurred.reshape(-1, 3)
    for k in range(steps + 1):
        n = int(round(k / steps * h * w))
        d = flat_img.copy()
        d[order[:n]] = 0.0
        i = flat_blur.copy()
        i[order[:n]] = flat_img[order[:n]]
        dele.append(d.reshape(h, w, 3))
        ins.append(i.reshape(h, w, 3))
    p_del = _probs(model, np.stack(dele), cls)
    p_ins = _probs(model, np.stack(ins), cls)
    return float(np.trapezoid(p_del, dx=1 / steps)), float(np.trapezoid(p_ins, dx=1 / steps))


def average_drop_increase(model: LoadedModel, image: np.ndarray, cam: np.ndarray, cls: int) -> tuple[float, float]:
    """(Average Drop %, Increase in Confidence 0/1) for one image: the image × map against the image."""
    p = _probs(model, np.stack([image, image * cam[..., None]]), cls)
    drop = max(0.0, p[0] - p[1]) / max(p[0], 1e-12) * 100
    return float(drop), float(p[1] > p[0])


def _impute(image: np.ndarray, removed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    known = ~removed
    out[removed] = 0.0
    for _ in range(64):
        if known.all():
            break
        pad_v = np.pad(out * known[..., None], ((1, 1), (1, 1), (0, 0)))
        pad_k = np.pad(known.astype(np.float32), 1)
        s = sum(pad_v[dy : dy + out.shape[0], dx : dx + out.shape[1]] for dy in range(3) for dx in range(3))
        c = sum(pad_k[dy : dy + out.shape[0], dx : dx + out.shape[1]] for dy in range(3) for dx in range(3))
        fill = (~known) & (c > 0)
        out[fill] = s[fill] / c[fill][:, None]
        known = known | fill
    out[removed] += rng.normal(0, 0.01, size=out[removed].shape)
    return np.clip(out, 0, 1)


def road(model: LoadedModel, image: np.ndarray, cam: np.ndarray, cls: int,
         fractions: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9), seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """(MoRF, LeRF): mean class probability after imputing the most / least relevant fractions.
    A faithful map gives a low MoRF and a high LeRF."""
    rng = np.random.default_rng(seed)
    h, w, _ = image.shape
    order = _order(cam)
    morf, lerf = [], []
    for f in fractions:
        n = int(round(f * h * w))
        for sel, bucket in ((order[:n], morf), (order[::-1][:n], lerf)):
            removed = np.zeros(h * w, bool)
            removed[sel] = True
            bucket.append(_impute(image, removed.reshape(h, w), rng))
    return float(_probs(model, np.stack(morf), cls).mean()), float(_probs(model, np.stack(lerf), cls).mean())


@dataclass
class Faithfulness:
    """All metrics for one map. Lower is better for deletion, average_drop and road_morf."""

    deletion_auc: float
    insertion_auc: float
    average_drop: float
    increase_in_confidence: float
    road_morf: float
    road_lerf: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def faithfulness(model: LoadedModel, image, cam: np.ndarray, target: int | str | None = None,
                 steps: int = 16) -> Faithfulness:  # fmt: skip
    """Every metric for one image and its map (at the model's input size)."""
    img = load_batch(image, size=model.input_size)[0]
    cam = np.asarray(cam, np.float32)
    cam = cam[0] if cam.ndim == 3 else cam
    if cam.shape != img.shape[:2]:
        from ..images import upsample

        cam = upsample(cam, img.shape[:2])
    cls = model.class_index(target) if target is not None else int(model.logits(img[None]).argmax())
    d, i = deletion_insertion(model, img, cam, cls, steps)
    drop, inc = average_drop_increase(model, img, cam, cls)
    morf, lerf = road(model, img, cam, cls)
    return Faithfulness(d, i, drop, inc, morf, lerf)
