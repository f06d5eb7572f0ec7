"""The one render loop: a parameterization × transforms × optimizer × step rule.

Naive ascent, octaves, the regularized (Lucid) recipe and MACO are configurations of :func:`run`:

============  ==============  ===========  ==========================  ==================================
method        parameter       transforms   optimizer                   extras
============  ==============  ===========  ==========================  ==================================
naive         the image       none         L2-normalized ascent, lr 10
octaves       the image       none         the same, per octave        image grown between octaves
regularized   Fourier, pixel  random warp  Adam 0.05                   redirected ReLU for 16 steps
maco          Fourier phase   random warp  Adam                        input noise, transparency map
============  ==============  ===========  ==========================  ==================================

Nothing crosses to the host inside the loop except the images kept at ``thresholds``: the
objective's history, the finite flags and the transparency stay on the device, and random
transform matrices and noise weights for every step are uploaded once, before the first step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import objectives as obj
from .optim import OPTIMIZERS
from .params import Param
from .transforms import TransformStack, apply

NOISE_BANK = 4  # noise frames per image; each step mixes them with random unit weights


@dataclass(frozen=True)
class Config:
    """How one optimization runs. ``noise``: std of per-step input noise (MACO); ``transparency``:
    accumulate |∂L/∂image| (MACO's transparency map); ``redirect_steps``: Lucid's redirected ReLU."""

    optimizer: str = "adam"
    lr: float = 0.05
    redirect_steps: int = 0
    noise: float = 0.0
    transparency: bool = False


@dataclass
class Trace:
    """What one run leaves on the device. ``values``/``ok``: ``(N, steps)``; ``alpha``: ``(N, H, W)``."""

    tensor: Any
    values: Any
    ok: Any
    alpha: Any = None
    intermediate: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Randomness:
    """Per-step random inputs drawn up front (NumPy), one stream per image. ``mats``:
    ``(steps, N, 2, 3)``; ``noise_bank``: ``(N, K, H, W, 3)``; ``noise_mix``: ``(steps, N, K)``."""

    mats: np.ndarray | None = None
    noise_bank: np.ndarray | None = None
    noise_mix: np.ndarray | None = None


def draw(rngs_t: Sequence[np.random.Generator], rngs_n: Sequence[np.random.Generator], stack: TransformStack,
         size: int, steps: int, noise: float) -> Randomness:  # fmt: skip
    """All random inputs of a run, from per-image generators (so batching does not change them).

    MACO's noise: each image gets ``NOISE_BANK`` frames of N(0, noise²) and, per step, a random
    unit vector of weights: a weighted sum of independent Gaussians with unit-norm weights is again
    N(0, noise²) per pixel, so every step sees fresh-looking noise from a small upload.
    """
    mats = None if stack.name == "none" else stack.sample_steps(rngs_t, size, steps).astype(np.float32)
    if not noise:
        return Randomness(mats)
    bank = np.stack([r.normal(0.0, noise, (NOISE_BANK, size, size, 3)) for r in rngs_n]).astype(np.float32)
    mix = np.stack([r.normal(size=(steps, NOISE_BANK)) for r in rngs_n], axis=1)
    mix = (mix / np.linalg.norm(mix, axis=-1, keepdims=True)).astype(np.float32)
    return Randomness(mats, bank, mix)


def run(be, model, objective: obj.Objective, param: Param, size: int, stack: TransformStack, steps: int,
        config: Config, rand: Randomness, thresholds: Sequence[int] = (), bar_: Any = None, step0: int = 0) -> Trace:  # fmt: skip
    """Optimize ``param`` (images of side ``size``) for ``steps`` steps to raise ``objective``.
    ``step0``: steps already run (octaves), for ``thresholds`` and the redirected-ReLU steps."""
    mats = None if rand.mats is None else be.asarray(rand.mats)
    bank = None if rand.noise_bank is None else be.asarray(rand.noise_bank)
    mix = None if rand.noise_mix is None else be.asarray(rand.noise_mix)
    zero, nan = be.asarray(0.0), be.asarray(np.nan)
    opt = OPTIMIZERS[config.optimizer](be, config.lr)
    tensor = param.tensor
    n = be.shape(tensor)[0]
    row = (n,) + (1,) * (len(be.shape(tensor)) - 1)
    axes = tuple(range(1, len(be.shape(tensor))))
    keep_at = {t - step0 for t in thresholds if step0 < t <= step0 + steps}
    picks = objective.channels(n)
    values_h, ok_h, inter = [], [], {}
    alpha = None

    def model_loss(img, m, k):
        x = img
        if bank is not None:
            x = x + be.einsum("nk,nkhwc->nhwc", k, bank)
        if mats is not None:
            x = apply(be, x, m, stack, size)
        out = be.forward(model, x, capture=objective.layers, logits=objective.needs_logits, channels=picks)
        values = objective(be, out.activations, out.logits)
        return -be.sum(values), values

    def gradient(t, m, k):
        """The objective's values and its gradient w.r.t. the parameters (and, for MACO, the
        per-pixel |∂L/∂image|) for one step's transform matrices ``m`` and noise weights ``k``."""
        if not config.transparency:
            (_, values), grad = be.value_and_grad(lambda p: model_loss(param.image_fn(p), m, k), t, has_aux=True)
            return values, grad, zero
        with be.no_grad():  # two-stage chain rule: dL/dimage (the transparency), then the cheap param
            img = param.image_fn(t)
        (_, values), g_img = be.value_and_grad(lambda im: model_loss(im, m, k), img, has_aux=True)
        g_abs = be.sum(be.abs(be.where(be.isfinite(g_img), g_img, zero)), axis=-1)
        _, grad = be.value_and_grad(lambda p: (be.sum(param.image_fn(p) * g_img), 0.0), t, has_aux=True)
        return values, grad, g_abs

    # one traced function per ReLU mode (TensorFlow: a graph each; torch runs them as they are)
    plain, redirected = be.jit(gradient, model), be.jit(gradient, model)
    for step in range(steps):
        m = zero if mats is None else mats[step]
        k = zero if mix is None else mix[step]
        if step + step0 < config.redirect_steps:
            with be.redirected_relu(model):
                values, grad, g_abs = redirected(tensor, m, k)
        else:
            values, grad, g_abs = plain(tensor, m, k)
        if config.transparency:
            alpha = g_abs if alpha is None else alpha + g_abs
        # a non-finite row skips its update (the others go on); all on the device
        ok = be.isfinite(values) & be.isfinite(be.sum(grad * 0.0, axis=axes))
        ok_rows = be.reshape(ok, row)
        grad = be.where(ok_rows & be.isfinite(grad), grad, zero)
        tensor = be.where(ok_rows, opt.step(tensor, grad), tensor)
        values_h.append(be.where(ok, values, nan))
        ok_h.append(ok)
        if step + 1 in keep_at:
            with be.no_grad():
                inter[step0 + step + 1] = be.to_numpy(param.image_fn(tensor))
        if bar_ is not None:
            bar_.update(n)
    return Trace(tensor, be.stack(values_h, axis=1), be.stack(ok_h, axis=1), alpha, inter)

