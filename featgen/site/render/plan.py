"""The plan stage: a profile of ``galleries.yml`` → ``RenderJob``s, with what the pages need to know.

Planning needs each model's layer table (names, shapes, which are convolutions), its weights digest
and its first convolution's kernels. It reads them once per model and keeps them in the cache as a
``model-info`` entry, so a later plan (and a build whose renders are all cached) imports no framework.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ... import limits
from ...errors import FeatgenError, suggest
from ...limits import MAX_CHANNELS, MAX_INPUT_SIZE
from ...models.base import LayerInfo
from .. import views
from .cache import RenderCache
from .config import ALL_CONV, Gallery, Profile, get_profile
from .entries import MAX_KERNEL, MODEL_INFO
from .jobs import RenderJob, cache_key
from .scan import ScanJob, shards

MODEL_INFO_VERSION = "model-info-3"  # 2: records the input channel order; 3: the class labels


@dataclass(frozen=True)
class ModelInfo:
    """What the plan and the pages know about a model without loading it."""

    spec: str
    backend: str
    precision: str
    name: str
    source: str
    input_size: int
    weights_digest: str
    table: tuple[LayerInfo, ...]
    conv: tuple[str, ...]  # native names of the layers with conv kernels
    aliases: dict[str, str] = field(default_factory=dict)  # other name -> native name
    foreign: dict[str, str] = field(default_factory=dict)  # the other backend's names -> nearest here
    stem: tuple[str, ...] = ()  # layers whose units show the first conv's RGB kernel
    kernels: np.ndarray | None = None  # that kernel, (kh, kw, 3, C), its input channels in the model's order
    bgr: bool = False  # the model reads its input as blue, green, red (caffe VGG16): the kernels' order
    labels: tuple[str, ...] = ()  # the names of its logits' classes, if it is a classifier

    def resolve(self, name: str) -> str:
        """The native name of layer ``name`` (which may be an alias); one-line error with suggestions."""
        names = [r.name for r in self.table]
        if name in names:
            return name
        if name in self.aliases:
            return self.aliases[name]
        if name in self.foreign:
            raise FeatgenError(f"{self.spec} ({self.backend}): {name!r} is a layer of the other backend's version; "
                               f"the nearest layer here is {self.foreign[name]!r}.")  # fmt: skip
        raise FeatgenError(f"{self.spec} ({self.backend}) has no layer {name!r}.{suggest(name, list(self.aliases) + names)}"
                           f" Run `featgen layers {self.spec} --backend {self.backend}` to list them.")  # fmt: skip

    def row(self, native: str) -> LayerInfo:
        return next(r for r in self.table if r.name == native)


@dataclass(frozen=True)
class LayerPlan:
    """One layer of one gallery: its units and the jobs of each view (chunks in unit order)."""

    model: str
    backend: str
    layer: str  # the name the gallery uses (and its URL)
    native: str
    info: LayerInfo
    units: tuple[int, ...]
    gallery: Gallery  # with this layer's overrides applied
    jobs: dict[str, tuple[RenderJob, ...]]


@dataclass
class Plan:
    """The jobs of a profile: per layer, each view's (:attr:`layers`); and the dataset-example scan's
    shards (:attr:`scans`), whose merge makes the entries of the scanned views (:attr:`derived`)."""

    profile: Profile
    models: dict[tuple[str, str], ModelInfo]
    layers: list[LayerPlan]
    scans: list[ScanJob] = field(default_factory=list)

    @property
    def jobs(self) -> list[RenderJob]:
        """The jobs that render: every view's but the scanned ones'."""
        return self._jobs(scanned=False)

    @property
    def derived(self) -> list[RenderJob]:
        """The jobs of scanned views: made by the merge of :attr:`scans`, not rendered."""
        return self._jobs(scanned=True)

    def _jobs(self, scanned: bool) -> list[RenderJob]:
        return [j for lp in self.layers for name, js in lp.jobs.items() if views.get(name).scanned == scanned for j in js]

    def unit_steps(self) -> int:
        return sum(j.unit_steps for j in self.jobs)


# --- model info -------------------------------------------------------------------------------------
def _info_key(spec: str, backend: str, precision: str) -> str:
    from ...models.registry import split_arch

    settings: dict[str, Any] = {"kind": MODEL_INFO_VERSION, "spec": spec, "backend": backend, "precision": precision}
    path = split_arch(spec)[0]
    if path.startswith("file:"):  # a user's checkpoint can change under the same name
        try:
            st = Path(path[5:]).expanduser().stat()
        except OSError as exc:
            raise FeatgenError(f"cannot read the model file {path[5:]!r}: {exc.strerror}.") from None
        settings["file"] = [st.st_size, st.st_mtime_ns]
    return cache_key(settings)


def _stem(model) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The first conv layer's RGB kernels and the layers that show them: that conv and those after it
    with the same channels before the next conv (its ReLU: a Keras name of a torch layer points there)."""
    be = model.backend
    found, names = None, []
    for name, _ in be.iter_layers(model):
        k = be.layer_kernels(model, name)
        if k is not None and found is not None:
            break
        if k is not None:
            if k.shape[2] != 3:
                return (), None
            found = k
        if found is not None and model.layer_info(name).channels == found.shape[-1]:
            names.append(name)
    return tuple(names), found


def _load_info(spec: str, backend: str, precision: str, model) -> tuple[ModelInfo, dict]:
    be = model.backend
    conv = tuple(n for n in model.layer_names if be.layer_kernels(model, n) is not None)
    stem, kernels = _stem(model)
    info = ModelInfo(spec, backend, precision, model.name, model.source, model.input_size, model.weights_digest,
                     tuple(model.layer_table), conv, dict(model.layer_aliases), dict(model.foreign_layers), stem,
                     None if kernels is None else np.asarray(kernels, np.float32), bool(model.norm.bgr),
                     tuple(str(label) for label in model.labels))  # fmt: skip
    meta = {"kind": MODEL_INFO_VERSION, "spec": spec, "backend": backend, "precision": precision, "name": info.name,
            "source": info.source, "input_size": info.input_size, "weights_digest": info.weights_digest,
            "table": [[r.name, r.type, list(r.shape), r.channels] for r in info.table], "conv": list(conv),
            "aliases": info.aliases, "foreign": info.foreign, "stem": list(stem), "bgr": info.bgr, "labels": list(info.labels)}  # fmt: skip
    return info, meta


def _check_info(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError unless a cached model info is what :func:`_load_info` writes: its types, and
    sizes a real model has (a table of at most ``MAX_LAYERS`` rows, at most ``MAX_CHANNELS`` channels)."""

    def text(value: Any, what: str) -> str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError(f"{what} is not a name")
        return value

    def number(value: Any, what: str, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise ValueError(f"{what} is not an integer in 1..{high:,}")
        return value

    for key in ("spec", "backend", "precision", "name", "source", "weights_digest"):
        text(meta.get(key), key)
    number(meta.get("input_size"), "input_size", MAX_INPUT_SIZE)
    if not isinstance(meta.get("bgr"), bool):
        raise ValueError("bgr is not true or false")
    labels = meta.get("labels")
    if not isinstance(labels, list) or len(labels) > MAX_LAYERS:
        raise ValueError(f"labels is not a list of at most {MAX_LAYERS:,} names")
    for label in labels:
        text(label, "a class label")
    table = meta.get("table")
    if not isinstance(table, list) or not 0 < len(table) <= MAX_LAYERS:
        raise ValueError(f"table is not a list of 1..{MAX_LAYERS:,} layers")
    for row in table:
        if not isinstance(row, list) or len(row) != 4:
            raise ValueError("a table row is not [name, type, shape, channels]")
        name, kind, shape, channels = row
        text(name, "a layer name")
        text(kind, f"the type of {name!r}")
        if not isinstance(shape, list) or len(shape) > 4:
            raise ValueError(f"the shape of {name!r} is not a list of at most 4 sizes")
        for n in shape:
            number(n, f"a size of {name!r}", MAX_CHANNELS)
        if channels is not None and number(channels, f"the channels of {name!r}", MAX_CHANNELS) != shape[-1]:
            raise ValueError(f"the channels of {name!r} are not its last size")
    names = {row[0] for row in table}
    if len(names) != len(table):
        raise ValueError("the table lists a layer twice")
    for key in ("conv", "stem"):
        if not isinstance(meta.get(key), list) or not all(isinstance(n, str) and n in names for n in meta[key]):
            raise ValueError(f"{key} is not a list of the table's layers")
    for key, targets in (("aliases", names), ("foreign", None)):
        pairs = meta.get(key)
        if not isinstance(pairs, dict) or len(pairs) > MAX_LAYERS or not all(
                isinstance(a, str) and isinstance(b, str) and (targets is None or b in targets) for a, b in pairs.items()):  # fmt: skip
            raise ValueError(f"{key} is not a mapping of names to the table's layers")
    kernels = arrays.get("kernels")
    if kernels is not None:
        stem = meta["stem"]
        if not stem or kernels.shape[0] > MAX_KERNEL or kernels.shape[1] > MAX_KERNEL or \
                kernels.shape[-1] != next(row[3] for row in table if row[0] == stem[0]):  # fmt: skip
            raise ValueError(f"kernels {kernels.shape} do not fit the first convolution")


MAX_LAYERS = 100_000
MAX_TEXT = 4096


def _from_meta(meta: dict, arrays: dict[str, np.ndarray]) -> ModelInfo:
    _check_info(meta, arrays)
    table = tuple(LayerInfo(n, t, tuple(s), c) for n, t, s, c in meta["table"])
    return ModelInfo(meta["spec"], meta["backend"], meta["precision"], meta["name"], meta["source"], meta["input_size"],
                     meta["weights_digest"], table, tuple(meta["conv"]), meta["aliases"], meta["foreign"],
                     tuple(meta["stem"]), arrays.get("kernels"), meta["bgr"], tuple(meta["labels"]))  # fmt: skip


def model_info(spec: str, backend: str, precision: str, cache: RenderCache | None, device: str | None = None,
               loader: Any = None) -> ModelInfo:  # fmt: skip
    """The model's :class:`ModelInfo`, from the cache or by loading it once.

    ``loader(spec, backend, device, precision)`` loads the model (default: ``featgen.load_model`` on the
    CPU); the local executor passes its ``Renderer.model``, so the model loaded here on ``device`` is
    the one it renders with.
    """
    key = _info_key(spec, backend, precision)
    if cache is not None:
        found = cache.read(key, MODEL_INFO)
        meta, arrays = found if found is not None else (None, {})
        if isinstance(meta, dict) and meta.get("kind") == MODEL_INFO_VERSION:
            try:
                info = _from_meta(meta, arrays)
                if (info.spec, info.backend, info.precision) != (spec, backend, precision):
                    raise ValueError(f"it describes {info.spec} ({info.backend}, {info.precision})")
                return info
            except ValueError as exc:  # checked like a config: a bad table is not trusted, it is loaded anew
                cache.quarantine(key, f"model info: {exc}")
    try:
        if loader is None:  # layer shapes do not depend on the device: the CPU is always there (a Ray driver)
            from ...models import load_model

            model = load_model(spec, backend=backend, device="cpu", precision=precision)
        else:
            model = loader(spec, backend, device, precision)
    except FeatgenError as exc:
        note = cache.quarantined.get(key) if cache is not None else None
        if note is None:
            raise
        raise FeatgenError(f"{exc} (The cache's model info of {spec} was bad: {note}.)") from None
    info, meta = _load_info(spec, backend, precision, model)
    if cache is not None:
        cache.put(key, {} if info.kernels is None else {"kernels": info.kernels}, meta)
    return info


# --- layers, units and jobs ---------------------------------------------------------------------------
def select_layers(info: ModelInfo, patterns: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(name, native)`` for the layers that ``patterns`` name (names, globs or ``"conv"``), in model order."""
    order = {r.name: i for i, r in enumerate(info.table)}
    picked: dict[str, str] = {}  # native -> display name
    for pat in patterns:
        if pat == ALL_CONV:
            for n in info.conv:
                picked.setdefault(n, n)
        elif any(c in pat for c in "*?["):
            hits = [(n, n) for n in order if fnmatch.fnmatchcase(n, pat)]
            hits += [(a, n) for a, n in info.aliases.items() if fnmatch.fnmatchcase(a, pat)]
            if not hits:
                names = list(info.aliases) + list(order)
                raise FeatgenError(f"{info.spec} ({info.backend}): no layer matches {pat!r}.{suggest(pat.strip('*?'), names)}")
            for name, native in hits:
                picked.setdefault(native, name)
        else:
            picked.setdefault(info.resolve(pat), pat)
    if not picked:
        raise FeatgenError(f"{info.spec} ({info.backend}): the gallery selects no layer; name some under 'layers'.")
    return sorted(((name, native) for native, name in picked.items()), key=lambda x: order[x[1]])


def select_units(info: ModelInfo, native: str, layer: str, units: int | tuple[int, ...] | None) -> tuple[int, ...]:
    row = info.row(native)
    if row.channels is None or len(row.shape) != 3:
        raise FeatgenError(f"{info.spec} ({info.backend}): layer {layer!r} is not a conv layer (output {row.shape}); "
                           "a gallery shows channels of spatial layers.")  # fmt: skip
    if units is None:
        return tuple(range(row.channels))
    if isinstance(units, int):
        return tuple(range(min(units, row.channels)))
    bad = [u for u in units if u >= row.channels]
    if bad:
        raise FeatgenError(f"{info.spec} ({info.backend}): unit {bad[0]} is out of range for layer {layer!r}, "
                           f"which has {row.channels} channels (0..{row.channels - 1}).")  # fmt: skip
    return tuple(sorted(set(units)))  # in order: a layer's pages, sheets and units.json list them so


def view_settings(view: str, g: Gallery, info: ModelInfo, native: str, profile: Profile,
                  shared: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A view's job settings for gallery ``g`` (with its layer's overrides), named as ``Render.settings``
    names them (plus the view's own); ``shared`` holds what a view computes once per plan."""
    return views.get(view).settings(g, views.PlanContext(profile, info, native, {} if shared is None else shared))


def examples_settings(profile: Profile) -> dict[str, Any]:
    """What identifies the example collection: its source, a digest of its files and their count
    (listed once per plan), and the limit its listing ran under."""
    if not profile.examples:
        return {"examples": None}
    from .examples import photo_set, set_digest

    photos = photo_set(profile.examples, profile.examples_limit)
    return {"examples": profile.examples, "examples_digest": set_digest(photos), "examples_count": len(photos),
            "examples_limit": profile.examples_limit}  # fmt: skip


def parse_device(device: str | None) -> dict[str, str]:
    """``--device``: one device for all (``cuda``) or per backend (``torch=cuda,tensorflow=cpu``)."""
    from ...backends import canonical_name, check_device

    if not device:
        return {}
    if "=" not in device:
        check_device(device)
        return {"*": device}
    out = {}
    for part in device.split(","):
        name, sep, dev = part.partition("=")
        if not sep or not dev.strip():
            raise FeatgenError(f"--device {device!r}: write DEVICE or BACKEND=DEVICE,BACKEND=DEVICE (e.g. torch=cuda,tensorflow=cpu).")
        key = canonical_name(name.strip())
        check_device(dev.strip(), key)
        out[key] = dev.strip()
    return out


class Precision:
    """A gallery's precision, resolved job by job. ``auto`` takes the precision of the job's entry in the
    cache, if it has one (float32 first), so that a cache rendered in bfloat16 on a GPU serves a plan made
    on a laptop; a job the cache lacks takes what ``auto`` means on the gallery's device (bfloat16 for
    torch on a GPU with bf16 tensor cores, else float32), asked of the framework once, when needed. The
    job's key holds the precision it names."""

    def __init__(self, precision: str, backend: str, device: str | None, cache: RenderCache | None):
        self.precision, self.backend, self.device, self.cache = precision, backend, device, cache
        self._default: str | None = None

    def job(self, job: RenderJob) -> RenderJob:
        """``job`` (made with this gallery's precision) in the precision it renders in."""
        if self.precision != "auto" or self.backend != "torch":  # auto is float32 but for torch
            return self._as(job, "float32" if self.precision == "auto" else self.precision)
        for p in ("float32", "bfloat16") if self.cache is not None else ():
            candidate = self._as(job, p)
            if self.cache.has(candidate.key):
                return candidate
        if self._default is None:
            from ...backends import resolve_precision

            self._default = resolve_precision(self.backend, self.device, "auto")
        return self._as(job, self._default)

    @staticmethod
    def _as(job: RenderJob, precision: str) -> RenderJob:
        return replace(job, precision=precision, settings={**job.options, "precision": precision})


class OnGpu:
    """Whether a view's jobs render on a GPU, where the renderer packs several of them into one batch
    (``RenderJob.siblings``). Asked of the framework once per device, and only for a view with jobs the
    cache lacks: a plan whose jobs are all cached imports no framework."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str | None], bool] = {}

    def __call__(self, backend: str, device: str | None, jobs: tuple[RenderJob, ...], cache: RenderCache | None) -> bool:
        if cache is not None and all(cache.has(j.key) for j in jobs):
            return False
        if (backend, device) not in self._seen:
            from ...backends import resolve_device

            self._seen[backend, device] = resolve_device(backend, device) != "cpu"
        return self._seen[backend, device]


def plan(profile: Profile | str, cache: RenderCache | None = None, device: str | None = None,
         config: str | None = None, chunk: int | None = None, loader: Any = None) -> Plan:  # fmt: skip
    """The jobs of ``profile``: every view of every chunk (≤ ``chunk`` units, default the profile's) of
    every layer. Layer shapes come from each model's info (cached in ``cache``; loaded once if not).

    ``device`` overrides each gallery's (``cuda``, or per backend ``torch=cuda,tensorflow=cpu``).
    """
    from ...backends import canonical_name

    prof = get_profile(profile, config)
    limits.check("chunk", chunk)  # None: the profile's (checked with the config)
    size = prof.chunk if chunk is None else chunk
    devices = parse_device(device)
    shared: dict[str, Any] = {}  # what views compute once per plan (the example scan's digest)
    models: dict[tuple[str, str], ModelInfo] = {}
    layers: list[LayerPlan] = []
    scanned: dict[tuple[str, str, str | None], tuple[ModelInfo, dict[str, dict]]] = {}  # the layers that show examples
    gpu = OnGpu()
    for g in prof.galleries:
        backend = canonical_name(g.backend)
        dev = devices.get(backend, devices.get("*", g.device))
        key = (g.model, backend)
        if key not in models:  # what the weights are stored in: bfloat16 computes on float32 weights
            models[key] = model_info(g.load_spec, backend, "float64" if g.precision == "float64" else "float32",
                                     cache, dev, loader)  # fmt: skip
        info = models[key]
        if info.spec != g.load_spec:  # pages are per model and backend: one architecture for a file
            raise FeatgenError(f"{g.model} ({backend}) comes twice in the profile, with other arch: give it one.")
        precision = Precision(g.precision, backend, dev, cache)
        recipes = {info.resolve(name): name for name, _ in g.layer_options}  # an unknown layer stops here
        selected = tuple(select_layers(info, g.layers))
        for name, native in selected:
            lg = g.options_for(recipes[native]) if native in recipes else g
            units = select_units(info, native, name, lg.units)
            jobs = {}
            for view in (v for v in views.all_views() if v.name in lg.views):
                settings = view.settings(lg, views.PlanContext(prof, info, native, shared, selected))
                if settings is None:  # nothing to show here (no collection to scan)
                    continue
                if view.scanned:
                    scanned.setdefault((g.load_spec, backend, dev), (info, {}))[1][native] = settings
                parts = view.chunks(units, size)
                js = tuple(Precision._as(job, view.precision) if view.precision else precision.job(job)
                           for job in (RenderJob(g.load_spec, backend, dev, g.precision, name, c, view.name, settings)
                                       for c in parts))  # fmt: skip
                if view.optimizes and len(js) > 1 and gpu(backend, dev, js, cache):  # packed into batches
                    js = tuple(replace(j, siblings=tuple(parts)) for j in js)
                jobs[view.name] = js
            layers.append(LayerPlan(g.model, backend, name, native, info.row(native), units, lg, jobs))
    return Plan(prof, models, layers, scan_jobs(prof, scanned))


def scan_jobs(profile: Profile, scanned: dict[tuple[str, str, str | None], tuple[ModelInfo, dict[str, dict]]]) -> list[ScanJob]:
    """The shards of each model's dataset-example scan: ``profile.examples_shard`` images a job, every
    layer of the model that shows examples hooked at once (in model order)."""
    out = []
    for (spec, backend, device), (info, layers) in scanned.items():
        order = {r.name: i for i, r in enumerate(info.table)}
        natives = tuple(sorted(layers, key=order.__getitem__))
        first = layers[natives[0]]
        settings = {k: first[k] for k in ("examples", "examples_digest", "examples_limit", "input_size", "weights_digest")}
        settings["k"] = first["top"]
        settings["classes"] = len(info.labels)  # a classifier's scan counts the classes it predicts
        for start, stop in shards(int(first["examples_count"]), profile.examples_shard):
            out.append(ScanJob(spec, backend, device, "float32", natives, start, stop, tuple(sorted(settings.items()))))
    return out
