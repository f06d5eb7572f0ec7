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
        examples: offline             # the example collection: offline photos, a folder, a glob, a text file of paths, or none
        examples_limit: 100000        # files and folders a walk of an examples folder may visit
        examples_shard: 500           # images per scan job (shards run on any executor, resume from the cache)
        top: 9                        # dataset examples per unit, top and bottom
        crop: 96                      # their side, px
        chunk: 64                     # at most this many units per job
        galleries:
          - model: efficientnet_lite0 # any spec featgen loads: timm:..., torchvision:..., keras:..., file:...
            backend: torch
            layers: [conv_stem, "blocks.*"]   # names or globs; "conv" (or omitted): every conv layer
            units: 4                  # the first N units; a list of indices; or "all" (default)
            size: 96
            steps: 48
            views: [regularized, naive, negative, diversity, photos, examples, links, classes]  # (default: all)
            layer_options: {conv_stem: *early}    # a layer-specific recipe (lr, transforms, param, ...)
          - model: file:weights.pth   # a torch state dict, with its architecture
            arch: timm:resnet18

Numbers have the command line's limits (:mod:`featgen.limits`); the text must be UTF-8, at most
4 MB, and its aliases may not expand it past 200,000 values.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ... import limits
from ...errors import FeatgenError, suggest
from ...files import is_filesystem_root, regular_file
from ...limits import cut, short
from .. import views as view_registry

CONFIG_NAME = "galleries.yml"
ALL_CONV = "conv"
TRANSFORMS = ("lucid", "distill2017", "none")
PARAMS = ("fourier", "pixel")
PRECISIONS = ("auto", "float32", "float64", "bfloat16")
RECIPE_OPTIONS = ("lr", "transforms", "param", "decorrelate", "steps")  # what layer_options may set, besides views' own


@dataclass(frozen=True)
class Gallery:
    """One model in one backend: which layers and units to render, which views, and how."""

    model: str
    backend: str = "torch"
    layers: tuple[str, ...] = (ALL_CONV,)  # names or globs; ("conv",): every conv layer
    units: int | tuple[int, ...] | None = None  # the first N units; explicit indices; None: all
    size: int = 96
    steps: int = 48  # the optimizing views' steps (a view may declare its own, as naive_steps)
    seed: int = 0
    views: tuple[str, ...] = field(default_factory=view_registry.names)
    device: str = "auto"
    precision: str = "auto"  # auto: bfloat16 for torch on a GPU with bf16 tensor cores, else float32
    lr: float = 0.05
    transforms: str = "lucid"
    param: str = "fourier"
    decorrelate: bool = True
    layer_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # layer -> overrides
    arch: str | None = None  # a file: state dict's architecture (timm:NAME, torchvision:NAME, efficientnet_lite0)
    view_options: tuple[tuple[str, Any], ...] = ()  # the keys that views declare (naive_steps, diversity, ...)

    @classmethod
    def make(cls, model: str, **kw: Any) -> Gallery:
        """A gallery from keyword options, the views' own among them (``naive_steps=2``)."""
        declared = view_registry.options()
        own = tuple(sorted((k, kw.pop(k)) for k in list(kw) if k in declared))
        return cls(model, **kw, view_options=own)

    def __getattr__(self, name: str) -> Any:
        """A view's option (``g.naive_steps``): its value in this gallery, else the view's default."""
        declared = view_registry.options()
        if name not in declared:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return dict(self.__dict__.get("view_options", ())).get(name, declared[name].default)

    @property
    def load_spec(self) -> str:
        """The spec that loads the model: ``model``, with ``arch`` folded in for a state dict."""
        from ...models.registry import with_arch

        return with_arch(self.model, self.arch)

    def options_for(self, layer: str) -> Gallery:
        """This gallery with the overrides of ``layer`` (from ``layer_options``) applied."""
        declared = view_registry.options()
        for name, opts in self.layer_options:
            if name == layer:
                core = {k: v for k, v in opts if k not in declared}
                own = dict(self.view_options) | {k: v for k, v in opts if k in declared}
                return replace(self, **core, view_options=tuple(sorted(own.items())))
        return self


@dataclass(frozen=True)
class Profile:
    """A named set of galleries and what they share."""

    name: str
    galleries: tuple[Gallery, ...]
    photos: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper")
    description: str = ""
    chunk: int = 64  # at most this many units per job
    crop: int = 96  # dataset example crop side, px
    top: int = 9  # top (and bottom) dataset examples per unit
    examples: str | None = "offline"  # the example collection: "offline", a folder, a glob, a list file, or None
    examples_shard: int = 500  # images per scan job
    examples_limit: int = limits.EXAMPLES_LIMIT  # files and folders a walk of the examples folder may visit
    source: str = ""  # the file it came from


def gallery_keys() -> tuple[str, ...]:
    """The keys of a gallery in ``galleries.yml``: the :class:`Gallery` fields and the views' options."""
    return tuple(f.name for f in fields(Gallery) if f.name != "view_options") + tuple(view_registry.options())


def layer_option_keys() -> tuple[str, ...]:
    """What ``layer_options`` may set for one layer: the recipe, and the views' per-layer options."""
    return RECIPE_OPTIONS + tuple(n for n, o in view_registry.options().items() if o.per_layer)
PROFILE_KEYS = ("description", "photos", "chunk", "crop", "top", "examples", "examples_limit", "examples_shard", "galleries")


def find_config(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``galleries.yml`` in the current folder, else the one next to the package."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FeatgenError(f"no gallery config at {str(p)!r}: pass --config with the path of a galleries.yml.")
        return regular_file(p, "gallery config")  # a FIFO would block the read forever
    for p in (Path.cwd() / CONFIG_NAME, Path(__file__).resolve().parents[3] / CONFIG_NAME):
        if p.is_file():
            return p
    raise FeatgenError(f"no {CONFIG_NAME} in the current folder: run from the repository root or pass --config PATH.")


MAX_ERROR_LINES = 20  # a config with thousands of bad galleries says so in a screenful


class _Errors:
    def __init__(self, source: str):
        self.source = source
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{self.source}: {where}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            more = len(self.lines) - MAX_ERROR_LINES
            tail = [f"{self.source}: and {more} more problems."] if more > 0 else []
            raise FeatgenError("\n".join(self.lines[:MAX_ERROR_LINES] + tail))


def _keys(errors: _Errors, where: str, data: dict, allowed: tuple[str, ...]) -> None:
    for k in data:
        if k not in allowed:
            errors.add(where, f"unknown key {short(k)}.{suggest(str(k), allowed) or ' Allowed: ' + ', '.join(allowed) + '.'}")


def _int(errors: _Errors, where: str, name: str, value: Any, limit: str) -> int | None:
    """``value`` if it is an integer within ``limits.LIMITS[limit]`` (the CLI's bounds), else a line."""
    why = limits.out_of_range(limit, value)
    if why is not None:
        errors.add(where, f"{name} {why}.")
        return None
    return value


def _choice(errors: _Errors, where: str, name: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if not isinstance(value, str) or value not in choices:
        errors.add(where, f"unknown {name} {short(value)}: choose {', '.join(choices)}.{suggest(str(value), choices)}")
        return None
    return value


def _device(errors: _Errors, where: str, device: Any, backend: str) -> None:
    """One line for a device name that ``backend`` does not take (the engine's own check)."""
    from ...backends import device_error

    try:
        error = device_error(device, backend, what="device")
    except FeatgenError:  # an unknown backend, which has its own line
        error = device_error(device, what="device")
    if error:
        errors.add(where, error)


def _model(errors: _Errors, where: str, spec: Any, backend: str, arch: Any = None) -> None:
    """One line for a model spec this gallery cannot load: a source without this backend, a missing
    or special model file, a state dict without ``arch``, an ``arch`` where none applies."""
    from ...backends import canonical_name
    from ...models import BUILTIN_MODELS, parse_spec
    from ...models.registry import SOURCES

    try:
        source, name = parse_spec(spec)
        key = canonical_name(backend)
    except FeatgenError as exc:
        errors.add(where, str(exc))
        return
    if key not in SOURCES[source]:
        errors.add(where, f"{source}: models run on {', '.join(SOURCES[source])}, not {key}: set backend: {next(iter(SOURCES[source]))}.")
        return
    if source == "builtin" and key not in BUILTIN_MODELS[name].backends:
        errors.add(where, f"built-in model {name} exists for {', '.join(BUILTIN_MODELS[name].backends)} only, not {backend}.")
    if arch is not None and (source != "file" or key != "torch"):
        errors.add(where, f"arch is for torch state dicts (file:PATH); {short(spec)} ({key}) knows its architecture: drop arch.")
        return
    if source != "file":
        return
    path = Path(name).expanduser()
    if not path.exists():
        errors.add(where, f"model file {short(name)} does not exist.")
        return
    try:
        regular_file(path, "model file")
    except FeatgenError as exc:
        errors.add(where, str(exc))
        return
    keras_file = path.suffix in (".keras", ".h5") and not path.name.endswith(".pth.h5")
    if key == "tensorflow" and not keras_file:
        errors.add(where, f"{path.name} is no Keras model file (.keras or .h5): a torch state dict needs backend: torch and arch.")
    elif key == "torch" and keras_file:
        errors.add(where, f"{path.name} is a Keras file: set backend: tensorflow.")
    elif key == "torch" and arch is None:
        errors.add(where, f"{path.name} is a torch state dict: name its architecture with arch: timm:NAME, torchvision:NAME "
                          "or efficientnet_lite0.")  # fmt: skip
    elif key == "torch":
        _arch(errors, where, arch)


def _arch(errors: _Errors, where: str, arch: Any) -> None:
    """An ``arch`` of a state dict: ``timm:NAME``, ``torchvision:NAME`` or a built-in EfficientNet-Lite
    (the forms ``featgen.models.torch_sources`` builds; whether NAME exists it checks on loading)."""
    from ...models import BUILTIN_MODELS

    source, _, name = arch.rpartition(":") if isinstance(arch, str) else ("?", "", "")
    builtin = source in ("", "builtin") and name.startswith("efficientnet_lite") and name in BUILTIN_MODELS
    if not (builtin or (source in ("timm", "torchvision") and name.strip())):
        errors.add(where, f"arch {short(arch)} is no architecture: use timm:NAME, torchvision:NAME or efficientnet_lite0.")


def _gallery(errors: _Errors, where: str, data: Any, defaults: dict, check_model: bool = True) -> Gallery | None:
    if not isinstance(data, dict):
        errors.add(where, f"a gallery is a mapping with at least 'model', got {short(data)}.")
        return None
    _keys(errors, where, data, gallery_keys())
    merged = {**defaults, **data}
    if "model" not in merged:
        errors.add(where, "missing 'model' (a model spec such as efficientnet_lite0 or timm:resnet18).")
        return None
    kw: dict[str, Any] = {k: v for k, v in merged.items() if k in gallery_keys()}
    kw["backend"] = kw.get("backend", "torch")
    if not isinstance(kw["backend"], str):
        errors.add(where, f"backend must be torch or tensorflow, got {short(kw['backend'])}.")
        kw["backend"] = "torch"
    if check_model:
        _model(errors, where, kw["model"], kw["backend"], kw.get("arch"))
    layers = kw.get("layers", ALL_CONV)
    layers = [layers] if isinstance(layers, str) else layers
    if not isinstance(layers, list) or not layers or not all(isinstance(x, str) and x.strip() for x in layers):
        errors.add(where, f"layers must be 'conv' or a list of layer names or globs, got {short(kw.get('layers'))}.")
        layers = [ALL_CONV]
    kw["layers"] = tuple(layers)
    units = kw.get("units")
    if units in (None, "all"):
        kw["units"] = None
    elif isinstance(units, list):
        if not units or not all(_int(errors, where, "each unit index", u, "unit") is not None for u in units):
            if not units:
                errors.add(where, "units is an empty list: give indices, a count, or 'all'.")
        elif len(set(units)) != len(units):
            errors.add(where, f"units lists an index twice: {short(units)}.")
        kw["units"] = tuple(units)
    else:
        kw["units"] = _int(errors, where, "units (a count, a list of indices, or 'all')", units, "units")
    for name in ("size", "steps", "seed"):  # the CLI's limits
        if name in kw:
            _int(errors, where, name, kw[name], name)
    if "lr" in kw and (isinstance(kw["lr"], bool) or not isinstance(kw["lr"], (int, float))
                       or not math.isfinite(kw["lr"]) or kw["lr"] <= 0):  # fmt: skip
        errors.add(where, f"lr must be a positive number, got {short(kw['lr'])}.")
    declared = view_registry.options()
    for name, option in declared.items():
        why = option.problem(kw[name]) if name in kw else None
        if why is not None:
            errors.add(where, f"{name} {why}.")
    known = view_registry.names()
    views = kw.get("views", list(known))
    if not isinstance(views, list) or not views:
        errors.add(where, f"views must be a list of {', '.join(known)}, got {short(views)}.")
        views = list(known)
    kw["views"] = tuple(v for v in views if _choice(errors, where, "view", v, known))
    primary = view_registry.primary().name  # every page shows it: the tiles, the verdicts, the reproduction
    if check_model and len(kw["views"]) == len(views) and primary not in views:
        errors.add(where, f"views {short(views)} lacks {primary}, which every gallery page shows: add it.")
    kw["view_options"] = tuple(sorted((k, kw.pop(k)) for k in list(kw) if k in declared))
    if "device" in kw:
        _device(errors, where, kw["device"], kw["backend"])
    if "precision" in kw and _choice(errors, where, "precision", kw["precision"], PRECISIONS) == "bfloat16" \
            and kw["backend"] not in ("torch", "pytorch"):  # fmt: skip
        errors.add(where, "precision bfloat16 is a torch option; use auto or float32 with tensorflow.")
    if "transforms" in kw:
        _choice(errors, where, "transforms", kw["transforms"], TRANSFORMS)
    if "param" in kw:
        _choice(errors, where, "param", kw["param"], PARAMS)
    if "decorrelate" in kw and not isinstance(kw["decorrelate"], bool):
        errors.add(where, f"decorrelate must be true or false, got {short(kw['decorrelate'])}.")
    per_layer = kw.get("layer_options") or {}
    if not isinstance(per_layer, dict):
        errors.add(where, f"layer_options maps a layer name to options ({', '.join(layer_option_keys())}), got {short(per_layer)}.")
        per_layer = {}
    opts = []
    for layer, o in per_layer.items():
        w = f"{where}.layer_options.{cut(str(layer))}"
        if not isinstance(o, dict):
            errors.add(w, f"expected a mapping of {', '.join(layer_option_keys())}, got {short(o)}.")
            continue
        allowed = layer_option_keys()
        _keys(errors, w, o, allowed)
        ok = {k: v for k, v in o.items() if k in allowed}
        if _gallery(errors, w, {"model": kw["model"], "backend": kw["backend"], **ok}, {}, False) is not None:
            opts.append((str(layer), tuple(sorted(ok.items()))))
    kw["layer_options"] = tuple(opts)
    try:
        return Gallery(**kw)
    except TypeError as exc:  # a value of the wrong kind that the checks above let through
        errors.add(where, str(exc))
        return None


def _profile(errors: _Errors, name: str, data: Any, defaults: dict, source: str) -> Profile | None:
    where = f"profiles.{cut(name)}"
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
    for key in ("chunk", "crop", "top", "examples_limit", "examples_shard"):  # the CLI's limits (--chunk)
        if key in data and _int(errors, where, key, data[key], key) is not None:
            kw[key] = data[key]
    if "photos" in data:
        photos = data["photos"]
        if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
            errors.add(where, f"photos must be a list of sample photo names, got {short(photos)}.")
        else:
            from ...images import SAMPLE_IMAGES

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
            errors.add(where, f"examples must be 'offline', a folder of images, a glob, a text file of paths, or none; got {short(ex)}.")
        elif ex != "offline" and not any(c in ex for c in "*?[") and not Path(ex).expanduser().exists():
            errors.add(where, f"examples {short(ex)} does not exist: name a folder of images, a glob, a text file of paths, or 'offline'.")
        elif ex != "offline" and is_filesystem_root(Path(ex)):
            errors.add(where, f"examples folder {short(ex)} is the root of the filesystem: name a folder of images.")
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
    _keys(errors, "defaults", {k: v for k, v in defaults.items() if k != "model"}, gallery_keys())
    defaults = {k: v for k, v in defaults.items() if k in gallery_keys()}
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


def read_config_text(p: Path) -> str:
    """The text of a config file: at most ``MAX_CONFIG_BYTES``, UTF-8; else one line."""
    try:
        with p.open("rb") as f:
            raw = f.read(limits.MAX_CONFIG_BYTES + 1)  # a regular file (find_config): no FIFO blocks here
    except OSError as exc:
        raise FeatgenError(f"cannot read {str(p)!r}: {exc.strerror}.") from None
    if len(raw) > limits.MAX_CONFIG_BYTES:
        raise FeatgenError(f"{p.name} is over {limits.MAX_CONFIG_BYTES >> 20} MB, which no gallery config needs: "
                           "is it the right file?")  # fmt: skip
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FeatgenError(f"{p.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}): "
                           "save it as UTF-8.") from None  # fmt: skip


MAX_CONFIG_DEPTH = 64


def _expanded(node: Any, depth: int = 0, seen: dict | None = None) -> tuple[int, int]:
    """(nodes, scalar characters) of a YAML node graph with every alias expanded, counted without
    expanding anything (a node reached twice is counted twice, computed once)."""
    seen = {} if seen is None else seen
    if id(node) in seen:
        return seen[id(node)]
    if depth > MAX_CONFIG_DEPTH:
        raise RecursionError  # reported as "nested too deep", as the composer's own
    if isinstance(node.value, str):
        size = (1, len(node.value))
    else:
        children = [c for item in node.value for c in (item if isinstance(item, tuple) else (item,))]
        counts = [_expanded(c, depth + 1, seen) for c in children]
        size = (1 + sum(n for n, _ in counts), sum(t for _, t in counts))
    seen[id(node)] = size
    return size


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` of ``text``, refusing a document whose aliases would expand it past
    ``MAX_CONFIG_NODES`` nodes or ``MAX_CONFIG_TEXT`` characters (a "billion laughs" file) before
    anything expands them."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes, chars = _expanded(node)
        if nodes > limits.MAX_CONFIG_NODES or chars > limits.MAX_CONFIG_TEXT:
            raise FeatgenError(f"{source}: its aliases expand to {nodes:,} values and {chars:,} characters, over the "
                               f"limit of {limits.MAX_CONFIG_NODES:,} and {limits.MAX_CONFIG_TEXT:,}: reuse fewer anchors.")  # fmt: skip
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FeatgenError(f"{source}: not valid YAML{at}: {short(getattr(exc, 'problem', None) or str(exc))}.") from None
    except RecursionError:
        raise FeatgenError(f"{source}: nested too deep to be a gallery config.") from None
    finally:
        loader.dispose()


def load_config(path: str | os.PathLike | None = None) -> dict[str, Profile]:
    """Read and validate a ``galleries.yml`` (see :func:`find_config` for where it is looked for)."""
    p = find_config(path)
    return parse_config(parse_yaml(read_config_text(p), p.name), source=p.name)


def get_profile(name: str | Profile, config: str | os.PathLike | None = None) -> Profile:
    """The profile ``name`` of the config file (``quick``, ``full`` or a user's own)."""
    if isinstance(name, Profile):
        return name
    profiles = load_config(config)
    if name not in profiles:
        raise FeatgenError(f"unknown gallery profile {name!r}: choose {', '.join(profiles)}.{suggest(name, profiles)}")
    return profiles[name]


__all__ = ["Gallery", "Profile", "load_config", "parse_config", "get_profile", "find_config"]
