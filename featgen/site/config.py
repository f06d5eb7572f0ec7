"""What the galleries render: ``galleries.yml`` (profiles of galleries), read and validated.

The file is read with ``yaml.safe_load`` and checked before anything loads or renders: every unknown
key, model, backend, view, transform or bad number gets one line naming it, with a suggestion. Layer
names are checked by the plan, against the model's layer table, still before any render.

Shape of the file::

    x-recipe: &early {param: pixel}   # keys starting with x- are free: YAML anchors to reuse
    defaults: {size: 96}              # optional: every gallery's defaults
    profiles:
      quick:
        description: ...
        photos: [chelsea, coffee]     # sample photos of the activation strip
        examples: offline             # the example scan: offline photos of installed packages, or a folder
        chunk: 64                     # at most this many units per job
        galleries:
          - model: efficientnet_lite0 # any spec featgen loads: timm:..., torchvision:..., keras:..., file:...
            backend: torch
            layers: [conv_stem, "blocks.*"]   # names or globs; "conv" (or omitted): every conv layer
            units: 4                  # the first N units; a list of indices; or "all" (default)
            size: 96
            steps: 48
            views: [regularized, naive, negative, diversity, photos]
            layer_options: {conv_stem: *early}    # a layer-specific recipe (lr, transforms, param, ...)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import FeatgenError, suggest
from .jobs import DEVICES, VIEWS

CONFIG_NAME = "galleries.yml"
ALL_CONV = "conv"
TRANSFORMS = ("lucid", "distill2017", "none")
PARAMS = ("fourier", "pixel")
PRECISIONS = ("float32", "float64")
LAYER_OPTIONS = ("lr", "transforms", "param", "decorrelate", "steps", "naive_steps", "naive_lr")


@dataclass(frozen=True)
class Gallery:
    """One model in one backend: which layers and units to render, which views, and how."""

    model: str
    backend: str = "torch"
    layers: tuple[str, ...] = (ALL_CONV,)  # names or globs; ("conv",): every conv layer
    units: int | tuple[int, ...] | None = None  # the first N units; explicit indices; None: all
    size: int = 96
    steps: int = 48  # regularized, negative and diversity
    naive_steps: int = 30
    seed: int = 0
    diversity: int = 4  # diversity images per unit
    views: tuple[str, ...] = VIEWS
    device: str = "auto"
    precision: str = "float32"
    lr: float = 0.05
    naive_lr: float = 10.0
    transforms: str = "lucid"
    param: str = "fourier"
    decorrelate: bool = True
    layer_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # layer -> overrides

    def options_for(self, layer: str) -> Gallery:
        """This gallery with the overrides of ``layer`` (from ``layer_options``) applied."""
        for name, opts in self.layer_options:
            if name == layer:
                return replace(self, **dict(opts))
        return self


@dataclass(frozen=True)
class Profile:
    """A named set of galleries and what they share."""

    name: str
    galleries: tuple[Gallery, ...]
    photos: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper")
    description: str = ""
    chunk: int = 64  # at most this many units per job
    crop: int = 72  # photo crop side, px
    top: int = 3  # top (and bottom) example photos per unit
    examples: str | None = "offline"  # what the example scan reads: "offline" photos, a folder, or None
    source: str = ""  # the file it came from


GALLERY_KEYS = tuple(f.name for f in fields(Gallery))
PROFILE_KEYS = ("description", "photos", "chunk", "crop", "top", "examples", "galleries")


def find_config(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``galleries.yml`` in the current folder, else the one next to the package."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FeatgenError(f"no gallery config at {str(p)!r}: pass --config with the path of a galleries.yml.")
        return p
    for p in (Path.cwd() / CONFIG_NAME, Path(__file__).resolve().parents[2] / CONFIG_NAME):
        if p.is_file():
            return p
    raise FeatgenError(f"no {CONFIG_NAME} in the current folder: run from the repository root or pass --config PATH.")


class _Errors:
    def __init__(self, source: str):
        self.source = source
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{self.source}: {where}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise FeatgenError("\n".join(self.lines))


def _keys(errors: _Errors, where: str, data: dict, allowed: tuple[str, ...]) -> None:
    for k in data:
        if k not in allowed:
            errors.add(where, f"unknown key {k!r}.{suggest(str(k), allowed) or ' Allowed: ' + ', '.join(allowed) + '.'}")


def _int(errors: _Errors, where: str, name: str, value: Any, minimum: int = 1) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        errors.add(where, f"{name} must be an integer >= {minimum}, got {value!r}.")
        return None
    return value


def _choice(errors: _Errors, where: str, name: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if not isinstance(value, str) or value not in choices:
        errors.add(where, f"unknown {name} {value!r}: choose {', '.join(choices)}.{suggest(str(value), choices)}")
        return None
    return value


def _model(errors: _Errors, where: str, spec: Any, backend: str) -> None:
    from ..backends import canonical_name
    from ..models import BUILTIN_MODELS, parse_spec

    try:
        source, name = parse_spec(spec)
        key = canonical_name(backend)
    except FeatgenError as exc:
        errors.add(where, str(exc))
        return
    if source == "builtin" and key not in BUILTIN_MODELS[name].backends:
        errors.add(where, f"built-in model {name} exists for {', '.join(BUILTIN_MODELS[name].backends)} only, not {backend}.")
    if source == "file" and not Path(name).expanduser().exists():
        errors.add(where, f"model file {name!r} does not exist.")


def _gallery(errors: _Errors, where: str, data: Any, defaults: dict, check_model: bool = True) -> Gallery | None:
    if not isinstance(data, dict):
        errors.add(where, f"a gallery is a mapping with at least 'model', got {data!r}.")
        return None
    _keys(errors, where, data, GALLERY_KEYS)
    merged = {**defaults, **data}
    if "model" not in merged:
        errors.add(where, "missing 'model' (a model spec such as efficientnet_lite0 or timm:resnet18).")
        return None
    kw: dict[str, Any] = {k: v for k, v in merged.items() if k in GALLERY_KEYS}
    kw["backend"] = str(kw.get("backend", "torch"))
    if check_model:
        _model(errors, where, kw["model"], kw["backend"])
    layers = kw.get("layers", ALL_CONV)
    layers = [layers] if isinstance(layers, str) else layers
    if not isinstance(layers, list) or not layers or not all(isinstance(x, str) and x.strip() for x in layers):
        errors.add(where, f"layers must be 'conv' or a list of layer names or globs, got {kw.get('layers')!r}.")
        layers = [ALL_CONV]
    kw["layers"] = tuple(layers)
    units = kw.get("units")
    if units in (None, "all"):
        kw["units"] = None
    elif isinstance(units, list):
        if not units or not all(_int(errors, where, "each unit index", u, 0) is not None for u in units):
            if not units:
                errors.add(where, "units is an empty list: give indices, a count, or 'all'.")
        elif len(set(units)) != len(units):
            errors.add(where, f"units lists an index twice: {units!r}.")
        kw["units"] = tuple(units)
    else:
        kw["units"] = _int(errors, where, "units (a count, a list of indices, or 'all')", units)
    for name in ("size", "steps", "naive_steps", "diversity"):
        if name in kw:
            _int(errors, where, name, kw[name], 16 if name == "size" else 1)
    if "seed" in kw:
        _int(errors, where, "seed", kw["seed"], 0)
    for name in ("lr", "naive_lr"):
        if name in kw and (isinstance(kw[name], bool) or not isinstance(kw[name], (int, float))
                           or not math.isfinite(kw[name]) or kw[name] <= 0):  # fmt: skip
            errors.add(where, f"{name} must be a positive number, got {kw[name]!r}.")
    views = kw.get("views", list(VIEWS))
    if not isinstance(views, list) or not views:
        errors.add(where, f"views must be a list of {', '.join(VIEWS)}, got {views!r}.")
        views = list(VIEWS)
    kw["views"] = tuple(v for v in views if _choice(errors, where, "view", v, VIEWS))
    if "device" in kw and str(kw["device"]).split(":")[0] not in DEVICES:  # cuda:1 and the like pass
        _choice(errors, where, "device", kw["device"], DEVICES)
    if "precision" in kw:
        _choice(errors, where, "precision", kw["precision"], PRECISIONS)
    if "transforms" in kw:
        _choice(errors, where, "transforms", kw["transforms"], TRANSFORMS)
    if "param" in kw:
        _choice(errors, where, "param", kw["param"], PARAMS)
    if "decorrelate" in kw and not isinstance(kw["decorrelate"], bool):
        errors.add(where, f"decorrelate must be true or false, got {kw['decorrelate']!r}.")
    per_layer = kw.get("layer_options") or {}
    if not isinstance(per_layer, dict):
        errors.add(where, f"layer_options maps a layer name to options ({', '.join(LAYER_OPTIONS)}), got {per_layer!r}.")
        per_layer = {}
    opts = []
    for layer, o in per_layer.items():
        w = f"{where}.layer_options.{layer}"
        if not isinstance(o, dict):
            errors.add(w, f"expected a mapping of {', '.join(LAYER_OPTIONS)}, got {o!r}.")
            continue
        _keys(errors, w, o, LAYER_OPTIONS)
        known = {k: v for k, v in o.items() if k in LAYER_OPTIONS}
        if _gallery(errors, w, {"model": kw["model"], "backend": kw["backend"], **known}, {}, False) is not None:
            opts.append((str(layer), tuple(sorted((k, v) for k, v in o.items() if k in LAYER_OPTIONS))))
    kw["layer_options"] = tuple(opts)
    try:
        return Gallery(**kw)
    except TypeError as exc:  # a value of the wrong kind that the checks above let through
        errors.add(where, str(exc))
        return None


def _profile(errors: _Errors, name: str, data: Any, defaults: dict, source: str) -> Profile | None:
    where = f"profiles.{name}"
    if not isinstance(data, dict):
        errors.add(where, "a profile is a mapping with 'galleries'.")
        return None
    _keys(errors, where, data, PROFILE_KEYS)
    galleries = data.get("galleries")
    if not isinstance(galleries, list) or not galleries:
        errors.add(where, "needs 'galleries': a list of galleries (each with at least 'model').")
        return None
    gs = [_gallery(errors, f"{where}.galleries[{i}]", g, defaults) for i, g in enumerate(galleries)]
    kw: dict[str, Any] = {}
    for key in ("chunk", "crop", "top"):
        if key in data and _int(errors, where, key, data[key]) is not None:
            kw[key] = data[key]
    if "photos" in data:
        photos = data["photos"]
        if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
            errors.add(where, f"photos must be a list of sample photo names, got {photos!r}.")
        else:
            from ..images import SAMPLE_IMAGES

            known = (*SAMPLE_IMAGES, "cat")
            for p in photos:
                _choice(errors, where, "photo", p, known)
            kw["photos"] = tuple(photos)
    if "description" in data:
        kw["description"] = str(data["description"])
    if "examples" in data:
        ex = data["examples"]
        if ex in (None, "none", False):
            kw["examples"] = None
        elif not isinstance(ex, str) or not ex.strip():
            errors.add(where, f"examples must be 'offline', a folder of images, or none; got {ex!r}.")
        elif ex != "offline" and not Path(ex).expanduser().is_dir():
            errors.add(where, f"examples folder {ex!r} does not exist: name a folder of images, or 'offline'.")
        else:
            kw["examples"] = ex
    if any(g is None for g in gs):
        return None
    return Profile(name, tuple(gs), source=source, **kw)  # type: ignore[arg-type]


def parse_config(data: Any, source: str = CONFIG_NAME) -> dict[str, Profile]:
    """Validate the loaded YAML ``data`` into profiles; every problem is one line of the error."""
    errors = _Errors(source)
    if not isinstance(data, dict):
        raise FeatgenError(f"{source}: expected a mapping with 'profiles', got {type(data).__name__}.")
    _keys(errors, "top level", {k: v for k, v in data.items() if not str(k).startswith("x-")}, ("defaults", "profiles"))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        errors.add("defaults", "expected a mapping of gallery options.")
        defaults = {}
    _keys(errors, "defaults", {k: v for k, v in defaults.items() if k != "model"}, GALLERY_KEYS)
    defaults = {k: v for k, v in defaults.items() if k in GALLERY_KEYS}
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        errors.add("profiles", "expected a mapping of profile names to profiles.")
        errors.raise_if_any()
    out = {}
    for name, p in profiles.items():
        prof = _profile(errors, str(name), p, defaults, source)
        if prof is not None:
            out[str(name)] = prof
    errors.raise_if_any()
    return out


def load_config(path: str | os.PathLike | None = None) -> dict[str, Profile]:
    """Read and validate a ``galleries.yml`` (see :func:`find_config` for where it is looked for)."""
    import yaml

    p = find_config(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FeatgenError(f"{p.name}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}.") from None
    except OSError as exc:
        raise FeatgenError(f"cannot read {str(p)!r}: {exc.strerror}.") from None
    return parse_config(data, source=p.name)


def get_profile(name: str | Profile, config: str | os.PathLike | None = None) -> Profile:
    """The profile ``name`` of the config file (``quick``, ``full`` or a user's own)."""
    if isinstance(name, Profile):
        return name
    profiles = load_config(config)
    if name not in profiles:
        raise FeatgenError(f"unknown gallery profile {name!r}: choose {', '.join(profiles)}.{suggest(name, profiles)}")
    return profiles[name]


__all__ = ["Gallery", "Profile", "load_config", "parse_config", "get_profile", "find_config"]
