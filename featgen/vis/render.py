"""The render loops: naive gradient ascent (Keras tutorial), octaves, regularized (Lucid), MACO.

All units of a call are optimized together, in batches: image ``i`` of a batch maximizes unit
``units[i]``. Randomness comes from one NumPy generator per image, seeded by ``(seed, unit, k)``
where ``k`` counts the earlier images of the same unit in ``units`` (so ``units=[u] * 4`` gives four
different starts), so an image does not depend on which batch it landed in, and a seed reproduces
the bytes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FeatgenError, suggest
from ..models import LoadedModel
from ..progress import bar
from . import objectives as obj
from .optim import Adam
from .params import Param, fourier, maco, pixel
from .transforms import TransformStack, apply, get_transforms

METHODS = ("naive", "octaves", "regularized", "maco")
ALGORITHM_VERSION = "vis-2"  # bump when a change alters rendered pixels (render caches key on it)
REDIRECT_STEPS = 16  # Lucid: redirected ReLU gradients for the first steps, so dead units learn


@dataclass
class Render:
    """The result of :func:`visualize`. Arrays are NumPy; ``images`` is ``(N, H, W, 3)`` in [0, 1]."""

    images: np.ndarray
    units: list[int]
    layer: str
    method: str
    final_activation: np.ndarray
    start_activation: np.ndarray
    losses: np.ndarray  # (N, steps): the objective's value per unit and step (higher is better)
    settings: dict[str, Any]
    intermediate: dict[int, np.ndarray] = field(default_factory=dict)
    alpha: np.ndarray | None = None  # MACO transparency maps (N, H, W) in [0, 1]
    nan_events: list[tuple[int, int]] = field(default_factory=list)  # (unit, step)

    def summary(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per unit."""
        return [
            {
                "unit": int(u),
                "start_activation": float(self.start_activation[i]),
                "final_activation": float(self.final_activation[i]),
                "nan_steps": [s for uu, s in self.nan_events if uu == u],
            }
            for i, u in enumerate(self.units)
        ]


# --- checks -----------------------------------------------------------------------------------
def _check(model: LoadedModel, layer: str, units: Sequence[int], method: str, size: int, steps: int,
           stack: TransformStack, needs_spatial: bool) -> str:  # fmt: skip
    if method not in METHODS:
        raise FeatgenError(f"unknown method {method!r}: choose {', '.join(METHODS)}.{suggest(method, METHODS)}")
    if not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise FeatgenError(f"steps must be a positive integer, got {steps!r}.")
    if not units:
        raise FeatgenError("no units to render: pass units=range(...) or a list of channel indices.")
    name = model.resolve_layer(layer)
    info = model.layer_info(name)
    if needs_spatial and not info.spatial:
        raise FeatgenError(
            f"layer {name!r} is not spatial (output {info.shape}); a channel objective needs (H, W, C) "
            "activations. Use objective=featgen.vis.objectives.class_logit(...) or pick a conv layer."
        )
    for u in units:
        model.check_unit(name, u)
    if size < stack.min_size() or size < 16:
        raise FeatgenError(
            f"size {size} is too small for the {stack.name} transforms (pad {stack.pad}, jitter "
            f"{stack.jitter1}+{stack.jitter2}); use size >= {max(stack.min_size(), 16)} or transforms='none'."
        )
    return name


def auto_batch_size(model: LoadedModel, layer: str, size: int, n: int) -> int:
    """How many images fit: activation memory up to ``layer`` (with gradients) within a budget."""
    scale = (size / model.input_size) ** 2
    per_image = 0.0
    for row in model.layer_table:
        if row.shape:
            per_image += float(np.prod(row.shape)) * scale
        if row.name == layer:
            break
    per_image_bytes = per_image * 4 * 3  # activations, their gradients, and autograd temporaries
    budget = 8e9 if getattr(model.backend, "device", "cpu").startswith("cuda") else 3e9
    return int(max(1, min(n, budget // max(per_image_bytes, 1.0))))


def occurrences(units: Sequence[int]) -> list[int]:
    """For each image, how many earlier images render the same unit: ``[5, 5, 7, 5]`` → ``[0, 1, 0, 2]``."""
    seen: dict[int, int] = {}
    out = []
    for u in units:
        out.append(seen.get(int(u), 0))
        seen[int(u)] = out[-1] + 1
    return out


def _rngs(seed: int, units: Sequence[int], occ: Sequence[int], stream: int = 0) -> list[np.random.Generator]:
    """One generator per image, keyed by (seed, unit, stream, occurrence): independent of batching."""
    return [np.random.default_rng([seed, int(u), stream, int(k)]) for u, k in zip(units, occ)]


def _evaluate(be, model, objective: obj.Objective, images) -> np.ndarray:
    with be.no_grad():
        out = be.forward(model, images, capture=objective.layers, logits=objective.needs_logits)
        return be.to_numpy(objective(be, out.activations, out.logits))


def _finite_rows(be, values, grad) -> np.ndarray:
    v = np.isfinite(be.to_numpy(values))
    g = be.to_numpy(be.isfinite(grad))
    return v & g.reshape(g.shape[0], -1).all(axis=1)


def _mask_rows(be, t, keep: np.ndarray):
    m = be.asarray(keep.astype(np.float32).reshape((-1,) + (1,) * (len(be.shape(t)) - 1)))
    return be.where(be.isfinite(t), t, t * 0.0) * m


# --- naive (Keras tutorial) and octaves -------------------------------------------------------------
def deprocess(images: np.ndarray, crop: int = 25) -> np.ndarray:
    """Keras tutorial: standardize to std 0.15 around 0.5, crop ``crop`` px, clip to [0, 1]."""
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) / (std + 1e-5) * 0.15 + 0.5
    h = x.shape[1]
    c = crop if h > 2 * crop + 16 else 0  # small renders keep their border
    if c:
        x = x[:, c:-c, c:-c, :]
    return np.clip(x, 0.0, 1.0)


def _ascend(be, model, objective, x, steps: int, lr: float, history: list, nans: list, units, step0: int):
    """Plain gradient ascent with an L2-normalized gradient (per image), ``steps`` times."""
    for step in range(steps):
        def loss_fn(t):
            out = be.forward(model, t, capture=objective.layers, logits=objective.needs_logits)
            values = objective(be, out.activations, out.logits)
            return -be.sum(values), values

        (_, values), grad = be.value_and_grad(loss_fn, x, has_aux=True)
        ok = _finite_rows(be, values, grad)
        for i in np.flatnonzero(~ok):
            nans.append((int(units[i]), step0 + step))
        grad = _mask_rows(be, grad, ok)
        norm = be.sqrt(be.sum(grad * grad, axis=(1, 2, 3), keepdims=True)) + 1e-12
        x = x - grad / norm * lr  # minus: grad is of the loss, i.e. minus the objective
        history.append(np.where(ok, be.to_numpy(values), np.nan))
    return x


def _start_images(start, units, occ, seed: int, side: int) -> np.ndarray:
    """The naive start: ``"noise"`` (grey ± 0.125, the tutorial), ``"grey"``, or an image for all units."""
    if isinstance(start, str) and start == "noise":
        rngs = _rngs(seed, units, occ)
        return np.stack([0.5 + r.uniform(-0.125, 0.125, size=(side, side, 3)) for r in rngs]).astype(np.float32)
    if isinstance(start, str) and start == "grey":
        return np.full((len(units), side, side, 3), 0.5, np.float32)
    from ..images import load_image, resize

    img = resize(load_image(start), side, crop=True)
    return np.repeat(img[None], len(units), axis=0).astype(np.float32)


def _naive(be, model, objective, units, occ, size, steps, seed, lr, octaves, octave_scale, bar_, start="noise"):
    n_oct = max(1, octaves)
    first = max(16, int(round(size / octave_scale ** (n_oct - 1))))
    x = be.asarray(_start_images(start, units, occ, seed, first))
    start_act = _evaluate(be, model, objective, be.asarray(_start_images(start, units, occ, seed, size)))
    history: list = []
    nans: list = []
    for o in range(n_oct):
        if o:
            side = size if o == n_oct - 1 else int(round(first * octave_scale**o))
            x = be.resize(x, (side, side))
        x = _ascend(be, model, objective, x, steps, lr, history, nans, units, o * steps)
        bar_.update(steps * len(units))
    raw = be.to_numpy(x)
    final_act = _evaluate(be, model, objective, be.asarray(raw))
    return deprocess(raw), start_act, final_act, np.stack(history, 1), nans, {}, None


# --- regularized (Lucid) and MACO --------------------------------------------------------------
def _regularized(be, model, objective, units, occ, size, steps, seed, lr, param: str, decorrelate: bool,
                 stack: TransformStack, thresholds, bar_, method: str):  # fmt: skip
    rngs = _rngs(seed, units, occ)
    if method == "maco":
        p: Param = maco(be, rngs, size)
    elif param == "fourier":
        p = fourier(be, rngs, size, decorrelate=decorrelate)
    elif param == "pixel":
        p = pixel(be, rngs, size, decorrelate=decorrelate)
    else:
        raise FeatgenError(f"unknown param {param!r}: choose fourier or pixel.")
    t_rngs = _rngs(seed, units, occ, stream=1)
    noise_rngs = _rngs(seed, units, occ, stream=2)
    identity = stack.name == "none"
    adam = Adam(be, lr)
    tensor = p.tensor
    initial = tensor
    with be.no_grad():
        start_act = _evaluate(be, model, objective, p.image_fn(tensor))
    history, nans, inter = [], [], {}
    alpha = np.zeros((len(units), size, size), np.float32) if method == "maco" else None
    keep_at = set(thresholds or ())
    for step in range(steps):
        mats = None if identity else stack.sample(t_rngs, size)
        noise = None
        if method == "maco":
            noise = be.asarray(np.stack([r.normal(0, 0.02, (size, size, 3)) for r in noise_rngs]).astype(np.float32))

        def model_loss(img, mats=mats, noise=noise):
            x = img if noise is None else img + noise
            x = x if identity else apply(be, x, mats, stack, size)
            out = be.forward(model, x, capture=objective.layers, logits=objective.needs_logits)
            values = objective(be, out.activations, out.logits)
            return -be.sum(values), values

        if method == "maco":
            # two-stage chain rule: dL/dimage (the transparency) then through the cheap FFT param
            with be.no_grad():
                img = p.image_fn(tensor)
            (_, values), g_img = be.value_and_grad(model_loss, img, has_aux=True)
            alpha += np.abs(be.to_numpy(g_img)).sum(-1)
            (_, _), grad = be.value_and_grad(lambda t, g=g_img: (be.sum(p.image_fn(t) * g), 0.0), tensor, has_aux=True)
        else:
            def loss_fn(t, model_loss=model_loss):
                return model_loss(p.image_fn(t))

            if step < REDIRECT_STEPS:
                with be.redirected_relu(model):
                    (_, values), grad = be.value_and_grad(loss_fn, tensor, has_aux=True)
            else:
                (_, values), grad = be.value_and_grad(loss_fn, tensor, has_aux=True)
        ok = _finite_rows(be, values, grad)
        if not ok.all():
            for i in np.flatnonzero(~ok):
                nans.append((int(units[i]), step))
            grad = _mask_rows(be, grad, ok)
        tensor = adam.step(tensor, grad)
        if not ok.all():  # a unit whose parameters went bad restarts from its initial values
            bad = be.asarray((~ok).astype(np.float32).reshape((-1,) + (1,) * (len(be.shape(tensor)) - 1)))
            tensor = tensor * (1.0 - bad) + initial * bad
        history.append(np.where(ok, be.to_numpy(values), np.nan))
        if step + 1 in keep_at:
            with be.no_grad():
                inter[step + 1] = be.to_numpy(p.image_fn(tensor))
        bar_.update(len(units))
    with be.no_grad():
        final = p.image_fn(tensor)
        final_act = _evaluate(be, model, objective, final)
        images = be.to_numpy(final)
    if alpha is not None:
        alpha = alpha / np.maximum(alpha.reshape(len(units), -1).max(axis=1)[:, None, None], 1e-12)
    return images, start_act, final_act, np.stack(history, 1), nans, inter, alpha


# --- public entry point ----------------------------------------------------------------------
def visualize(
    model: LoadedModel | str,
    layer: str,
    units: Sequence[int] | int = range(64),
    method: str = "regularized",
    size: int = 128,
    steps: int | None = None,
    seed: int = 0,
    *,
    objective: obj.Objective | None = None,
    param: str = "fourier",
    decorrelate: bool = True,
    transforms: str | TransformStack | None = "lucid",
    lr: float | None = None,
    batch_size: int | None = None,
    thresholds: Sequence[int] = (),
    octaves: int = 4,
    octave_scale: float = 1.2,
    start: Any = "noise",
    backend: str = "torch",
    progress: bool = True,
) -> Render:
    """Render one image per unit of ``layer`` that maximizes it, all units in batched optimizations.

    Args:
        model: a LoadedModel or a model spec.
        layer: the layer's name in the model (``featgen layers MODEL`` lists them).
        units: channel indices; image ``i`` maximizes ``units[i]``.
        method: ``"naive"`` (Keras tutorial: L2-normalized gradient ascent from grey noise, lr 10,
            30 steps), ``"octaves"`` (naive, upscaling ×``octave_scale`` between runs),
            ``"regularized"`` (Lucid: Fourier + decorrelated colour, random transforms, Adam 0.05,
            512 steps) or ``"maco"`` (phase-only Fourier with a natural-image magnitude).
        size: side of the rendered image in pixels.
        steps: optimization steps (per octave for ``"octaves"``); default per method.
        seed: the same seed gives the same bytes on the same device.
        objective: what to maximize, per image of the call (each batch gets its rows through
            :meth:`~featgen.vis.objectives.Objective.rows`); default: channel ``units[i]`` of
            ``layer`` (naive methods skip a 2-pixel border, as the tutorial).
        transforms: ``"lucid"``, ``"distill2017"``, ``"none"`` or a TransformStack (regularized, MACO).
        thresholds: steps at which to keep intermediate images (``Render.intermediate``).
        batch_size: images per optimization; default from a memory estimate.
        start: naive methods' start image: ``"noise"`` (grey ± 0.125), ``"grey"`` or an image.
    """
    from ..maps import as_model

    model = as_model(model, backend=backend)
    be = model.backend
    units = [int(units)] if isinstance(units, (int, np.integer)) else [int(u) for u in units]
    naive = method in ("naive", "octaves")
    steps = steps if steps is not None else {"naive": 30, "octaves": 20, "regularized": 512, "maco": 256}.get(method, 0)
    stack = get_transforms(None if naive else transforms)
    name = _check(model, layer, units, method, size, steps, stack, needs_spatial=objective is None)
    lr = lr if lr is not None else (10.0 if naive else 0.05)
    n_oct = octaves if method == "octaves" else 1
    batch = batch_size or auto_batch_size(model, name, max(size, stack.out_size(size)), len(units))
    parts: list[tuple] = []
    total = len(units) * steps * n_oct
    occ = occurrences(units)
    whole = objective or obj.channel(name, units, border=2 if naive else 0)
    with bar(total=total, desc=f"{method} {name}", quiet=not progress, unit="unit-step") as bar_:
        for b0 in range(0, len(units), batch):
            chunk, keys = units[b0 : b0 + batch], occ[b0 : b0 + batch]
            o = whole.rows(b0, b0 + len(chunk))
            if naive:
                parts.append(_naive(be, model, o, chunk, keys, size, steps, seed, lr, n_oct, octave_scale, bar_, start))
            else:
                parts.append(_regularized(be, model, o, chunk, keys, size, steps, seed, lr, param, decorrelate,
                                          stack, thresholds, bar_, method))  # fmt: skip
    images = np.concatenate([p[0] for p in parts]).astype(np.float32)
    nans = [e for p in parts for e in p[4]]
    for unit in dict.fromkeys(u for u, _ in nans):
        bad = [s for u, s in nans if u == unit]
        warnings.warn(f"unit {unit} of {name}: non-finite loss or gradient at step {bad[0]} ({len(bad)} steps in all); "
                      "its update was skipped and the other units went on.", RuntimeWarning, stacklevel=2)  # fmt: skip
    inter_keys = sorted(set().union(*[p[5].keys() for p in parts]))
    settings = {
        "model": model.name, "backend": be.name, "precision": be.dtype, "layer": name, "method": method, "size": size,
        "steps": steps, "seed": seed, "lr": lr, "param": "maco" if method == "maco" else (None if naive else param),
        "decorrelate": None if naive else decorrelate, "transforms": None if naive else stack.name,
        "octaves": n_oct if method == "octaves" else None, "octave_scale": octave_scale if method == "octaves" else None,
        "objective": "custom" if objective is not None else "channel", "batch_size": batch,
        "start": start if isinstance(start, str) else "image",
        "weights_digest": model.weights_digest, "algorithm": ALGORITHM_VERSION,
    }  # fmt: skip
    alpha = np.concatenate([p[6] for p in parts]) if method == "maco" else None
    return Render(
        images=images,
        units=units,
        layer=name,
        method=method,
        final_activation=np.concatenate([p[2] for p in parts]),
        start_activation=np.concatenate([p[1] for p in parts]),
        losses=np.concatenate([p[3] for p in parts]),
        settings=settings,
        intermediate={k: np.concatenate([p[5][k] for p in parts]) for k in inter_keys},
        alpha=alpha,
        nan_events=nans,
    )


def high_frequency_share(images: np.ndarray) -> np.ndarray:
    """Share of spectral power above half the Nyquist frequency, per image (grey, mean removed)."""
    x = np.asarray(images, np.float64).mean(-1)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x)) ** 2
    fy = np.fft.fftfreq(x.shape[1])[:, None]
    fx = np.fft.fftfreq(x.shape[2])[None, :]
    high = np.sqrt(fx**2 + fy**2) > 0.25  # Nyquist is 0.5 cycles/pixel
    return (power[:, high].sum(axis=1) / np.maximum(power.reshape(len(x), -1).sum(axis=1), 1e-20)).astype(np.float64)


__all__ = ["visualize", "Render", "deprocess", "high_frequency_share", "METHODS"]
