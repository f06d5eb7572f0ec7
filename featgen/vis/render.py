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
from . import params
from .loop import Config, Randomness, draw, run
from .transforms import TransformStack, get_transforms

METHODS = ("naive", "octaves", "regularized", "maco")
ALGORITHM_VERSION = "vis-4"  # bump when a change alters rendered pixels (render caches key on it)
# a change that alters pixels on one backend only: that backend's renders get a new key, the rest keep theirs
BACKEND_REVISIONS = {"tensorflow": "keras-2"}  # keras-2: conv → BatchNorm pairs folded
REDIRECT_STEPS = 16  # Lucid: redirected ReLU gradients for the first steps, so dead units learn
MACO_NOISE = 0.02  # std of the noise added to MACO's image at every step


def algorithm_version(backend: str) -> str:
    """The render-cache key of the algorithm that renders on ``backend`` (a backend name)."""
    from ..backends import canonical_name

    revision = BACKEND_REVISIONS.get(canonical_name(backend))
    return f"{ALGORITHM_VERSION}+{revision}" if revision else ALGORITHM_VERSION


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
    # naive methods: the objective on the final image clipped to [0, 1]. Naive ascent never clips
    # while it runs, so ``final_activation`` can be several times what any real image reaches.
    valid_final_activation: np.ndarray | None = None

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


def _evaluate(be, model, objective: obj.Objective, images):
    """The objective on ``images``, left on the device (read with the rest at the end)."""
    with be.no_grad():
        out = be.forward(model, images, capture=objective.layers, logits=objective.needs_logits)
        return objective(be, out.activations, out.logits)


# --- one batch: the method as a configuration of the loop ------------------------------------
def deprocessed_side(side: int, crop: int = 25) -> int:
    """The side of a ``side``-px naive render after :func:`deprocess` (small renders keep their border)."""
    return side - 2 * crop if side > 2 * crop + 16 else side


def deprocess(images: np.ndarray, crop: int = 25) -> np.ndarray:
    """Keras tutorial: standardize to std 0.15 around 0.5, crop ``crop`` px, clip to [0, 1]."""
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) / (std + 1e-5) * 0.15 + 0.5
    h = x.shape[1]
    c = (h - deprocessed_side(h, crop)) // 2
    if c:
        x = x[:, c:-c, c:-c, :]
    return np.clip(x, 0.0, 1.0)


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


def _render_batch(be, model, objective: obj.Objective, units: list[int], occ: list[int], *, method: str,
                  size: int, steps: int, seed: int, lr: float, param: str, decorrelate: bool,
                  stack: TransformStack, thresholds: Sequence[int], octaves: int, octave_scale: float,
                  start: Any, bar_: Any) -> Render:  # fmt: skip
    """One batch through the loop, configured for ``method``; host reads only at the end."""
    if method in ("naive", "octaves"):
        n_oct = max(1, octaves)
        first = max(16, int(round(size / octave_scale ** (n_oct - 1))))
        p = params.image(be, _start_images(start, units, occ, seed, first))
        start_act = _evaluate(be, model, objective, be.asarray(_start_images(start, units, occ, seed, size)))
        config = Config("ascent", lr)
        traces, side = [], first
        for o in range(n_oct):
            if o:
                side = size if o == n_oct - 1 else int(round(first * octave_scale**o))
                p = params.image(be, be.resize(traces[-1].tensor, (side, side)))
            traces.append(run(be, model, objective, p, side, stack, steps, config, Randomness(), thresholds,
                              bar_, step0=o * steps))  # fmt: skip
        final = traces[-1].tensor
    else:
        rngs = _rngs(seed, units, occ)
        if method == "maco":
            p = params.maco(be, rngs, size)
        elif param in ("fourier", "pixel"):
            p = getattr(params, param)(be, rngs, size, decorrelate=decorrelate)
        else:
            raise FeatgenError(f"unknown param {param!r}: choose fourier or pixel.{suggest(param, ('fourier', 'pixel'))}")
        config = Config("adam", lr, redirect_steps=REDIRECT_STEPS if method == "regularized" else 0,
                        noise=MACO_NOISE if method == "maco" else 0.0, transparency=method == "maco")  # fmt: skip
        rand = draw(_rngs(seed, units, occ, stream=1), _rngs(seed, units, occ, stream=2), stack, size, steps, config.noise)
        with be.no_grad():
            start_act = _evaluate(be, model, objective, p.image_fn(p.tensor))
        traces = [run(be, model, objective, p, size, stack, steps, config, rand, thresholds, bar_)]
        with be.no_grad():
            final = p.image_fn(traces[0].tensor)
    final_act = _evaluate(be, model, objective, final)
    naive = method in ("naive", "octaves")
    valid_act = _evaluate(be, model, objective, be.clip(final, 0.0, 1.0)) if naive else None
    # the end: everything comes to the host here, once
    raw = be.to_numpy(final)
    values = np.concatenate([be.to_numpy(t.values) for t in traces], axis=1)
    ok = np.concatenate([be.to_numpy(t.ok) for t in traces], axis=1).astype(bool)
    alpha = None
    if traces[0].alpha is not None:
        alpha = be.to_numpy(traces[0].alpha)
        alpha = alpha / np.maximum(alpha.reshape(len(units), -1).max(axis=1)[:, None, None], 1e-12)
    inter = {k: (deprocess(v) if naive else v) for t in traces for k, v in t.intermediate.items()}
    steps_bad, rows_bad = np.nonzero(~ok.T)
    return Render(
        images=deprocess(raw) if naive else raw,
        units=list(units),
        layer="",
        method=method,
        final_activation=be.to_numpy(final_act),
        start_activation=be.to_numpy(start_act),
        losses=values,
        settings={},
        intermediate=inter,
        alpha=alpha,
        nan_events=[(int(units[i]), int(s)) for s, i in zip(steps_bad, rows_bad)],
        valid_final_activation=None if valid_act is None else be.to_numpy(valid_act),
    )


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
    parts: list[Render] = []
    total = len(units) * steps * n_oct
    occ = occurrences(units)
    whole = objective or obj.channel(name, units, border=2 if naive else 0)
    with bar(total=total, desc=f"{method} {name}", quiet=not progress, unit="unit-step") as bar_:
        for b0 in range(0, len(units), batch):
            chunk, keys = units[b0 : b0 + batch], occ[b0 : b0 + batch]
            o = whole.rows(b0, b0 + len(chunk))
            parts.append(_render_batch(be, model, o, chunk, keys, method=method, size=size, steps=steps, seed=seed,
                                       lr=lr, param=param, decorrelate=decorrelate, stack=stack,
                                       thresholds=thresholds, octaves=n_oct, octave_scale=octave_scale,
                                       start=start, bar_=bar_))  # fmt: skip
    nans = [e for p in parts for e in p.nan_events]
    for unit in dict.fromkeys(u for u, _ in nans):
        bad = [s for u, s in nans if u == unit]
        warnings.warn(f"unit {unit} of {name}: non-finite loss or gradient at step {bad[0]} ({len(bad)} steps in all); "
                      "its update was skipped and the other units went on.", RuntimeWarning, stacklevel=2)  # fmt: skip
    inter_keys = sorted(set().union(*[p.intermediate.keys() for p in parts]))
    settings = {
        "model": model.name, "backend": be.name, "precision": be.precision, "layer": name, "method": method, "size": size,
        "steps": steps, "seed": seed, "lr": lr, "param": "maco" if method == "maco" else (None if naive else param),
        "decorrelate": None if naive else decorrelate, "transforms": None if naive else stack.name,
        "octaves": n_oct if method == "octaves" else None, "octave_scale": octave_scale if method == "octaves" else None,
        "objective": "custom" if objective is not None else "channel", "batch_size": batch,
        "start": start if isinstance(start, str) else "image",
        "weights_digest": model.weights_digest, "algorithm": algorithm_version(be.name),
    }  # fmt: skip
    return Render(
        images=np.concatenate([p.images for p in parts]).astype(np.float32),
        units=units,
        layer=name,
        method=method,
        final_activation=np.concatenate([p.final_activation for p in parts]),
        start_activation=np.concatenate([p.start_activation for p in parts]),
        losses=np.concatenate([p.losses for p in parts]),
        settings=settings,
        intermediate={k: np.concatenate([p.intermediate[k] for p in parts]) for k in inter_keys},
        alpha=np.concatenate([p.alpha for p in parts]) if method == "maco" else None,
        nan_events=nans,
        valid_final_activation=np.concatenate([p.valid_final_activation for p in parts]) if naive else None,
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


__all__ = ["visualize", "Render", "deprocess", "deprocessed_side", "high_frequency_share", "METHODS"]
