"""Generate the per-model, per-layer and per-unit gallery pages (Microscope-style) for mkdocs.

Pages go to ``docs/galleries/`` (git-ignored) with stable URLs
``galleries/<model>/<backend>/<layer>/unit-<n>/``. Renders come from the content-addressed cache,
so a rebuild renders only what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from ..errors import FeatgenError, suggest
from ..images import grid, overlay, resize, sample_image, save_image
from ..progress import bar
from .cache import RenderCache, key_of
from .config import ModelGallery, Profile, get_profile
from .navigation import compare_units, layer_nav, planned_pairs, shared_layers
from .reproduce import reproduction
from .verdict import unit_extras

TEMPLATES = Path(__file__).with_name("templates")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """A file-name-safe version of a layer or model name: no separators, no '..', no markup.

    Safe names stay as they are (``blocks.4``); any other gets a short hash of the original, so two
    names that clean up alike (``a/b``, ``a_b``) never share a folder."""
    name = str(name)
    s = _SAFE.sub("_", name).strip("._").replace("..", "_") or "_"
    return s if s == name else f"{s}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


# Markdown and HTML metacharacters become numeric entities: a name renders as text in markdown, in
# raw HTML blocks and in attributes, and can open no tag, link, emphasis, code span or table cell.
_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'[]()*`\\_#|{}!"})


def _md_text(value: Any) -> Any:
    """Jinja ``finalize``: every ``{{ }}`` string in a template comes out as inert text."""
    return Markup(value.translate(_ENTITIES)) if isinstance(value, str) and not isinstance(value, Markup) else value


def _title(text: str) -> Markup:
    """A page title for YAML front matter: quoted, without the characters the theme's ``<title>``
    (which decodes entities) could turn into markup."""
    return Markup(json.dumps(" ".join(re.sub(r"[<>&\"'`\\]", " ", text).split()), ensure_ascii=False))


def env() -> Environment:
    """The templates' environment: autoescaped, and names made inert for markdown too."""
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True, default_for_string=True),
                       finalize=_md_text)  # fmt: skip


def engine_hash() -> str:
    """Digest of featgen's own source: tutorials re-run when the engine changes."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def invalidate_stale_tutorials(gallery_dir: Path) -> bool:
    """mkdocs-gallery re-runs a script only when its text changes; fold the engine hash in by
    deleting its stored checksums when featgen's source changed. Returns True if it did."""
    stamp = gallery_dir / ".featgen-engine-hash"
    current = engine_hash()
    if stamp.exists() and stamp.read_text() == current:
        return False
    for md5 in gallery_dir.rglob("*.md5"):
        md5.unlink()
    gallery_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current)
    return True


def drop_stale_tutorial_pages(examples_dir: Path, gallery_dir: Path, pattern: str = "/plot_") -> list[str]:
    """Delete the generated page, notebook and images of every tutorial whose source changed since it
    last ran to the end (its ``.md5`` is missing or differs). mkdocs-gallery re-runs exactly those, so
    one that now raises fails the build with no stale page of it left behind. Returns their names."""
    examples_dir, gallery_dir = Path(examples_dir), Path(gallery_dir)
    dropped = []
    for src in sorted(examples_dir.rglob("*.py")):
        if not re.search(pattern, src.as_posix()):
            continue
        out = gallery_dir / src.parent.relative_to(examples_dir)
        md5 = out / f"{src.name}.md5"
        text = src.read_text(errors="surrogateescape").encode(errors="surrogateescape")  # as mkdocs-gallery
        if md5.exists() and md5.read_text() == hashlib.md5(text).hexdigest():
            continue
        stale = [out / f"{src.stem}.md", md5, out / f"{src.stem}.ipynb", out / f"{src.stem}_codeobj.pickle"]
        stale += list((out / "images").rglob(f"mkd_glr_{src.stem}_*"))
        if stale[0].exists():
            dropped.append(src.name)
        for p in stale:
            p.unlink(missing_ok=True)
    return dropped


# --- planning --------------------------------------------------------------------------------------
def _layers(model, mg: ModelGallery) -> list[str]:
    if mg.layers is not None:
        for name in mg.layers:
            try:
                model.resolve_layer(name)
            except FeatgenError:
                raise FeatgenError(
                    f"gallery config: model {mg.model} has no layer {name!r}.{suggest(name, list(model.layer_aliases) + model.layer_names)}"
                ) from None
        return list(mg.layers)
    return [n for n in model.layer_names if model.backend.layer_kernels(model, n) is not None]


def plan(profile: Profile | str) -> list[dict[str, Any]]:
    """Rows of (model, backend, layer, units): what a profile renders, with counts."""
    from ..models import BUILTIN_MODELS, load_model

    profile = get_profile(profile) if isinstance(profile, str) else profile
    rows = []
    for mg in profile.galleries:
        if mg.model not in BUILTIN_MODELS:
            raise FeatgenError(f"gallery config: unknown model {mg.model!r}.{suggest(mg.model, BUILTIN_MODELS)}")
        model = load_model(mg.model, backend=mg.backend)
        for layer in _layers(model, mg):
            info = model.layer_info(layer)
            n = info.channels if mg.units is None else min(mg.units, info.channels or 0)
            rows.append({"model": mg.model, "backend": mg.backend, "layer": layer, "units": n, "channels": info.channels})
    return rows


# --- rendering ---------------------------------------------------------------------------------------
def _visualize_cached(cache: RenderCache, model, layer: str, units: list[int], stats: dict, **kw) -> dict[str, np.ndarray]:
    from ..vis import ALGORITHM_VERSION, objectives, visualize

    objective = kw.pop("objective", None)
    settings = {"model": model.name, "backend": model.backend.name, "weights": model.weights_digest,
                "algorithm": ALGORITHM_VERSION, "layer": layer, "units": units, "objective": objective, **kw}  # fmt: skip
    key = key_of(settings)
    hit = cache.get(key)
    if hit is not None:
        stats["cached"] += 1
        return hit
    name = model.resolve_layer(layer)
    obj = None
    if objective == "negative":
        obj = -objectives.channel(name, units)
    elif objective == "diversity":
        obj = objectives.channel(name, units) + 0.5 * objectives.diversity(name)
    r = visualize(model, name, units=units, objective=obj, progress=False, **kw)
    arrays = {"images": r.images, "start": r.start_activation, "final": r.final_activation, "losses": r.losses}
    cache.put(key, arrays, settings)
    stats["rendered"] += 1
    return arrays


def _photo_views(model, layer: str, units: list[int], photos: list[np.ndarray], crop: int = 72
                 ) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:  # fmt: skip
    """Per unit: its 3 top-activating crops from ``photos``, and one strip of its activation map
    over every photo (on one scale per unit, so photos compare)."""
    from ..maps import batch_activations

    acts = batch_activations(model, photos, layer, size=model.input_size)  # (P, h, w, C)
    imgs = [resize(p, model.input_size) for p in photos]
    scale = model.input_size / acts.shape[1]
    crops, strips = [], []
    for u in units:
        a = acts[..., u]
        peaks = a.reshape(len(photos), -1)
        unit_crops = []
        for p in np.argsort(-peaks.max(axis=1))[:3]:
            y, x = divmod(int(peaks[p].argmax()), acts.shape[2])
            cy, cx = int((y + 0.5) * scale), int((x + 0.5) * scale)
            y0 = int(np.clip(cy - crop // 2, 0, model.input_size - crop))
            x0 = int(np.clip(cx - crop // 2, 0, model.input_size - crop))
            unit_crops.append(imgs[p][y0 : y0 + crop, x0 : x0 + crop])
        crops.append(unit_crops)
        top = max(float(a.max()), 1e-8)
        strips.append(grid([overlay(img, np.clip(m / top, 0, 1)) for img, m in zip(imgs, a)], cols=len(imgs), margin=4))
    return crops, strips


def _stem_kernels(model, native: str, channels: int | None) -> np.ndarray | None:
    """The first conv layer's RGB kernels ``(kh, kw, 3, C)`` for the layer ``native`` if it is that conv
    or follows it before any other conv with the same channels (its ReLU: a Keras name of a torch
    model points there); else None."""
    found = None
    for name, _ in model.backend.iter_layers(model):
        k = model.backend.layer_kernels(model, name)
        if k is not None:
            if found is not None:
                return None  # a second conv comes before the layer
            found = k
        if name == native:
            ok = found is not None and found.shape[2] == 3 and found.shape[-1] == channels
            return found if ok else None
    return None


def _loss_plot(curves: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.4))
    ax.plot(np.nan_to_num(curves), color="#3f51b5")
    ax.set_xlabel("step")
    ax.set_ylabel("objective (mean activation)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def render(template: str, **ctx: Any) -> str:
    """Render one of the page templates; they get ``slug`` and ``title`` besides ``ctx``."""
    return env().get_template(template).render(**ctx, slug=lambda name: Markup(slug(name)), title=_title)


def _write(template: str, path: Path, **ctx: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(template, **ctx))


def write_index_pages(root: Path, galleries: dict[str, list[dict[str, Any]]], profile: Profile) -> None:
    """The galleries index, one page per model (its backends) and per model and backend (its layers).

    ``galleries`` maps a model name to one entry per backend: ``backend``, ``source``, ``input_size``,
    ``layers`` (layer page contexts), ``table`` (``LayerInfo`` rows) and ``aliases`` (native -> alias).
    """
    for name, backends in galleries.items():
        for b in backends:
            others = [o["backend"] for o in backends if o is not b]
            _write("backend.md.j2", root / slug(name) / slug(b["backend"]) / "index.md", model=name, **b, others=others)
        _write("model.md.j2", root / slug(name) / "index.md", model=name, backends=backends)
    _write("index.md.j2", root / "index.md", galleries=galleries, profile=profile)


def write_compare_pages(root: Path, galleries: dict[str, list[dict[str, Any]]]) -> None:
    """One torch | TensorFlow page per layer rendered in both backends, with the correlation of each
    unit's two regularized images, read back from the pages' PNGs one layer at a time (so memory
    stays flat on the full plan); each backend entry of ``galleries`` gains ``compared``."""
    from ..images import load_image

    for name, backends in galleries.items():
        by_backend = {b["backend"]: [lay["layer"] for lay in b["layers"]] for b in backends}
        units_of = {(b["backend"], lay["layer"]): [u["unit"] for u in lay["units"]] for b in backends for lay in b["layers"]}
        compared = []
        for layer in shared_layers(by_backend):
            units = [u for u in units_of[("torch", layer)] if u in set(units_of[("tensorflow", layer)])]
            a, b = ([load_image(root / slug(name) / slug(bk) / slug(layer) / f"unit-{u}" / "regularized.png") for u in units]
                    for bk in ("torch", "tensorflow"))  # fmt: skip
            rows = compare_units(np.stack(a), np.stack(b), units)
            _write("compare.md.j2", root / slug(name) / "compare" / slug(layer) / "index.md", model=name, layer=layer,
                   rows=rows, layers=shared_layers(by_backend))  # fmt: skip
            compared.append({"layer": layer, "median": float(np.nanmedian([r["correlation"] for r in rows]))})
        for bk in backends:
            bk["compared"] = compared


def build(profile: str = "quick", docs: str | os.PathLike = "docs", cache_dir: str | os.PathLike = ".featgen-cache",
          device: str | None = None, pages: bool = True) -> dict[str, Any]:  # fmt: skip
    """Render (or fetch from cache) every gallery of ``profile`` and write its pages under ``docs/galleries``.

    Pages: ``galleries/index.md`` (models → backends → layers), ``<model>/index.md`` (its backends),
    ``<model>/<backend>/index.md`` (its layers), ``.../<layer>/index.md`` and ``.../<layer>/unit-<n>/``.
    Returns counts: ``rendered``, ``cached``, ``corrupt`` entries and seconds taken.
    """
    from ..maps import kernel_tiles
    from ..models import load_model

    t0 = time.perf_counter()
    prof = get_profile(profile)
    cache = RenderCache(Path(cache_dir) / "renders")
    stats = {"rendered": 0, "cached": 0}
    photos = [sample_image(p) for p in prof.photos]
    out_root = Path(docs) / "galleries"
    for old in Path(docs).glob(".galleries.tmp*"):  # left by an interrupted build
        shutil.rmtree(old, ignore_errors=True)
    staging = Path(docs) / f".galleries.tmp{os.getpid()}"
    galleries: dict[str, list[dict[str, Any]]] = {}  # model -> one entry per backend
    rows = plan(prof)
    with bar(total=sum(r["units"] for r in rows), desc=f"galleries ({profile})", unit="unit") as pb:
        for mg in prof.galleries:
            model = load_model(mg.model, backend=mg.backend, device=device)
            layers_ctx = []
            for row in (r for r in rows if r["model"] == mg.model and r["backend"] == mg.backend):
                layer, units = row["layer"], list(range(row["units"]))
                kw = dict(size=mg.size, seed=0)
                reg = _visualize_cached(cache, model, layer, units, stats, method="regularized", steps=mg.steps, **kw)
                naive = _visualize_cached(cache, model, layer, units, stats, method="naive", steps=mg.naive_steps, **kw)
                neg = _visualize_cached(cache, model, layer, units, stats, method="regularized", steps=mg.steps,
                                        objective="negative", **kw) if mg.negative else None  # fmt: skip
                div = [
                    _visualize_cached(cache, model, layer, [u] * mg.diversity, stats, method="regularized",
                                      steps=mg.steps, objective="diversity", **kw)  # fmt: skip
                    for u in units
                ] if mg.diversity else []  # fmt: skip
                if not pages:
                    pb.update(len(units))
                    continue
                native = model.resolve_layer(layer)
                crops, strips = _photo_views(model, layer, units, photos)
                info = model.layer_info(layer)
                kernels = _stem_kernels(model, native, info.channels)
                layer_dir = staging / slug(mg.model) / slug(mg.backend) / slug(layer)
                units_ctx = []
                for i, u in enumerate(units):
                    udir = layer_dir / f"unit-{u}"
                    save_image(reg["images"][i], udir / "regularized.png")
                    save_image(naive["images"][i], udir / "naive.png")
                    if neg is not None:
                        save_image(neg["images"][i], udir / "negative.png")
                    for j, im in enumerate(div[i]["images"] if div else []):
                        save_image(im, udir / f"diversity-{j}.png")
                    for j, im in enumerate(crops[i]):
                        save_image(im, udir / f"crop-{j}.png")
                    save_image(strips[i], udir / "photos.png")
                    if kernels is not None:
                        save_image(kernel_tiles(kernels[..., u : u + 1], scale=16), udir / "kernel.png")
                    _loss_plot(reg["losses"][i], udir / "curve.png")
                    ctx = {
                        "model": mg.model, "backend": mg.backend, "layer": layer, "unit": u, "shape": info.shape,
                        "start": float(reg["start"][i]), "final": float(reg["final"][i]),
                        "naive_final": float(naive["final"][i]),
                        "negative": neg is not None, "diversity": len(div[i]["images"]) if div else 0,
                        "crops": len(crops[i]), "kernel": kernels is not None, "photos": list(prof.photos),
                        "prev": units[i - 1] if i else None, "next": units[i + 1] if i + 1 < len(units) else None,
                        "steps": mg.steps, "size": mg.size, "naive_steps": mg.naive_steps,
                    }  # fmt: skip
                    # --- page extras: verdict and reproduction (featgen/site/verdict.py, reproduce.py) ---
                    ctx.update(unit_extras(ctx, -float(neg["final"][i]) if neg is not None else None, info.type))
                    ctx["reproduce"] = reproduction({"model": mg.model, "backend": mg.backend, "layer": layer,
                                                     "method": "regularized", "size": mg.size, "steps": mg.steps,
                                                     "seed": 0}, u, out="regularized.png")  # fmt: skip
                    # --- end page extras ---
                    _write("unit.md.j2", udir / "index.md", **ctx)
                    units_ctx.append(ctx)
                    pb.update()
                save_image(grid(reg["images"], margin=4), layer_dir / "grid.png")
                lctx = {"model": mg.model, "backend": mg.backend, "layer": layer, "type": info.type, "shape": info.shape,
                        "channels": info.channels, "units": units_ctx, "native": native}  # fmt: skip
                # --- page extras: neighbours, layer strip, reproduction, backend pairs (navigation.py) ---
                lctx.update(layer_nav([r["layer"] for r in rows if r["model"] == mg.model and r["backend"] == mg.backend], layer))
                lctx["reproduce"] = reproduction({"model": mg.model, "backend": mg.backend, "layer": layer,
                                                  "method": "regularized", "size": mg.size, "steps": mg.steps,
                                                  "seed": 0}, units, out="grid.png")  # fmt: skip
                lctx["compare"] = layer in planned_pairs(rows, mg.model)
                # --- end page extras ---
                _write("layer.md.j2", layer_dir / "index.md", **lctx)
                layers_ctx.append(lctx)
            galleries.setdefault(mg.model, []).append({
                "backend": mg.backend, "source": model.source, "input_size": model.input_size,
                "layers": layers_ctx, "table": model.layer_table, "aliases": {v: k for k, v in model.layer_aliases.items()},
            })  # fmt: skip
    if pages:
        write_compare_pages(staging, galleries)  # page extras: torch | TensorFlow pages
        write_index_pages(staging, galleries, prof)
        shutil.rmtree(out_root, ignore_errors=True)  # swap in the new tree at once: no half-written gallery
        os.replace(staging, out_root)
    stats["corrupt"] = list(cache.corrupt)
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    (Path(cache_dir)).mkdir(parents=True, exist_ok=True)
    (Path(cache_dir) / "last-build.json").write_text(json.dumps({"profile": profile, **stats,
                                                                  "plan": rows, "config": asdict(prof)}, indent=1, default=str))  # fmt: skip
    return stats
