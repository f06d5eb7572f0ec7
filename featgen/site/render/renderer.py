"""The render stage: the only site module that loads a model. One job in, compact arrays out.

``Renderer`` keeps each (model, backend, device, precision) it loads, so a worker loads a model once
however many jobs it runs. A job's view says what it renders (:meth:`featgen.site.views.View.render`)
with the two kinds of render here: :meth:`Renderer.optimize` (images that optimize an objective:
``images`` uint8, ``start``, ``final`` and ``losses`` float32) and :meth:`Renderer.photos` (forward
only: activation strips over the sample photos and the example scan). Arrays are compact: images as
uint8, statistics as float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ...errors import FeatgenError
from ...images import to_uint8
from .jobs import RenderJob
from .scan import ScanJob

# CPU threads of every render worker, whichever executor runs it. A CPU convolution's rounding
# depends on its thread count, and naive or regularized ascent can grow that into another picture,
# so a job renders the same bytes on one machine only if every executor uses the same count.
RENDER_THREADS = 1


def limit_threads(n: int) -> None:
    """Use ``n`` CPU threads for the frameworks in this process (one per Ray actor on a CPU).

    Environment variables cover TensorFlow and the BLAS/OpenMP pools when set before they start;
    torch reads ``OMP_NUM_THREADS`` when imported, and is told directly if it already is."""
    import os
    import sys

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):  # fmt: skip
        os.environ[var] = str(n)
    fw = sys.modules.get("torch")  # a process-wide setting, not model code
    if fw is not None:
        fw.set_num_threads(n)
        try:
            fw.set_num_interop_threads(n)
        except RuntimeError:  # settable only before the first parallel work
            pass


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make this process's malloc keep large freed blocks for reuse (glibc only); True if it did.

    A CPU render step allocates and frees the same activation-sized tensors every step (VGG16 at
    16 × 142 px: up to 80 MB each). glibc serves every block over 32 MiB with a fresh ``mmap`` and
    unmaps it when freed, so each step touches new pages: about 200,000 page faults a step on
    VGG16-HED ``block4_conv3``. Served from the heap and never trimmed, the blocks are reused. The
    process keeps its peak memory until it exits, which suits a render worker and is why featgen's
    library calls never do this. Skipped when the environment sets any ``MALLOC_*_`` variable or
    a malloc tunable (``MALLOC_MMAP_MAX_=65536`` restores glibc's default)."""
    import ctypes
    import os
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    user_set = any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)
    if user_set or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = ctypes.CDLL(None)  # the C library this process runs on
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


class Renderer:
    """Runs jobs: ``run(job) -> dict[str, np.ndarray]``. Models load lazily, once each. A process
    with a Renderer is a render process: it keeps freed memory for reuse (:func:`keep_freed_memory`).

    Args:
        threads: CPU threads for the frameworks (None: their default). A Ray actor on a CPU uses 1.
        device: overrides every job's device (None: each job's own).
    """

    def __init__(self, threads: int | None = None, device: str | None = None):
        self.threads = threads
        self.device = device
        self._models: dict[tuple[str, str, str | None, str], Any] = {}
        self._photos: dict[tuple, list[np.ndarray]] = {}
        self._collections: dict[tuple, list] = {}  # the example scan's collections, listed once
        self._budgets: dict[int, float] = {}  # per loaded model: the memory one GPU step may take
        self._expanded: dict[tuple, Any] = {}  # the last layer pairs' expanded weights (each serves two layers)
        self._one_batch, self._batch = False, None  # the step rule of the job being rendered, and its batch
        keep_freed_memory()
        if threads:
            limit_threads(threads)

    def model(self, spec: str, backend: str, device: str | None, precision: str = "float32"):
        """The loaded model for this (spec, backend, device, precision); loaded on first use. ``"auto"``
        and the other spellings of one device (``gpu``, ``cuda``) share one load."""
        from ...backends import resolve_device

        device = resolve_device(backend, device)
        key = (spec, backend, device, precision)
        if key not in self._models:
            from ...models import load_model

            self._models[key] = load_model(spec, backend=backend, device=device, precision=precision)
            if self.threads:
                limit_threads(self.threads)  # now that the framework is imported
        return self._models[key]

    def entry(self, job: RenderJob) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Render one job alone: the arrays and the meta that the cache stores under ``job.key``. The
        meta adds to ``job.meta()`` the ``numerics`` the render ran with (device, threads, instruction
        set, and ``batch``: the images of one optimization step)."""
        arrays, batch = self._render(job)
        return arrays, self._meta(job, batch)

    def entries(self, jobs: Sequence[RenderJob]) -> list[tuple[RenderJob, dict[str, np.ndarray], dict[str, Any]]]:
        """Render ``jobs`` (one job, or jobs of one layer and view): ``(job, arrays, meta)`` per job. On a
        GPU, jobs with ``siblings`` render in packs (:meth:`pack`), each pack in one optimization step,
        and every job of a pack comes back, the asked-for ones and the rest (which a resumed build may
        hold already)."""
        from .. import views

        out: list[tuple[RenderJob, dict[str, np.ndarray], dict[str, Any]]] = []
        done: set[str] = set()
        for job in jobs:
            if job.key in done:
                continue
            if isinstance(job, ScanJob):  # a shard of the dataset-example scan
                out.append((job, *self.scan(job)))
                continue
            fit = self._units_per_batch(job)
            if fit is None:
                out.append((job, *self.entry(job)))
                done.add(job.key)
                continue
            members = self.pack(job)
            units = tuple(u for j in members for u in j.units)
            arrays, batch = self._render(replace(job, units=units), one_batch=len(units) <= fit)
            per_unit = views.get(job.view).per_unit(job)  # images per unit (diversity: k)
            start = 0
            for j in members:
                stop = start + per_unit * len(j.units)
                out.append((j, {k: v[start:stop] for k, v in arrays.items()}, self._meta(j, batch)))
                start = stop
            done.update(j.key for j in members)
        return out

    def pack(self, job: RenderJob) -> list[RenderJob]:
        """The jobs that render in one batch with ``job``: on a GPU, the run of its ``siblings`` (its
        layer's jobs of this view, in plan order) that holds it, among consecutive runs of as many units
        as one step's memory holds (:func:`featgen.vis.batching.pack`); elsewhere, ``job`` alone. The
        memory is this worker's device's, measured once per model, so a job's pack does not depend on
        which other jobs are still to render."""
        from ...vis.batching import pack

        fit = self._units_per_batch(job)
        if fit is None:
            return [job]
        index = job.siblings.index(job.units)
        members = next(p for p in pack(job.siblings, fit) if index in p)
        return [replace(job, units=job.siblings[i]) for i in members]

    def _units_per_batch(self, job: RenderJob) -> int | None:
        """On a GPU, how many units of ``job``'s layer and view one optimization step holds (at least
        one); None where jobs are not packed: a CPU, a job without siblings, a view that optimizes nothing."""
        from .. import views

        view = views.get(job.view)
        if not job.siblings or not view.optimizes:
            return None
        model = self.model(job.model, job.backend, self.device or job.device, job.precision)
        if model.backend.device == "cpu":
            return None
        from ...vis.batching import activation_values, budget, images_that_fit
        from ...vis.transforms import get_transforms

        o = job.options
        side = get_transforms(o.get("transforms")).out_size(int(o["size"]))  # what the network sees
        k = view.per_unit(job)
        if id(model) not in self._budgets:
            self._budgets[id(model)] = budget(model.backend.memory_free())
        values = activation_values(model.layer_table, o["layer"], side, model.input_size)
        return max(1, images_that_fit(values, self._budgets[id(model)], sum(len(c) for c in job.siblings) * k) // k)

    def run(self, job: RenderJob, one_batch: bool = False) -> dict[str, np.ndarray]:
        """Render one job's arrays, as its view renders them (``one_batch``: all its images in one
        optimization step)."""
        return self._render(job, one_batch)[0]

    def _meta(self, job: RenderJob, batch: int | None) -> dict[str, Any]:
        model = self.model(job.model, job.backend, self.device or job.device, job.precision)
        numerics = model.backend.numerics()
        return {**job.meta(), "numerics": {**numerics, "batch": batch} if batch else numerics}

    def _render(self, job: RenderJob, one_batch: bool = False) -> tuple[dict[str, np.ndarray], int | None]:
        """One job's arrays, and the images of one optimization step (None for a view that optimizes
        nothing). ``one_batch``: all its images in one step (else as many as
        :func:`~featgen.vis.render.auto_batch_size` holds)."""
        from .. import views

        model = self._planned_model(job)
        # the view calls back into optimize(), which reads the step's batch rule here and records its batch
        self._one_batch, self._batch = one_batch, None
        return views.get(job.view).render(self, model, job), self._batch

    def _planned_model(self, job: RenderJob | ScanJob):
        """The job's model, checked to have the weights its plan was made with."""
        model = self.model(job.model, job.backend, self.device or job.device, job.precision)
        digest = job.options.get("weights_digest")
        if digest and digest != model.weights_digest:
            raise FeatgenError(
                f"the weights of {job.model} ({job.backend}) changed since the plan was made; plan again "
                "(delete the cache's models/ folder)."
            )
        return model

    def optimize(self, model, job: RenderJob, units: list[int], objective: Any = None) -> dict[str, np.ndarray]:
        """Optimize one image per entry of ``units`` with the job's recipe: each its unit's mean
        activation, or ``objective`` (one value per image) if given."""
        from ...vis import visualize

        o = job.options
        kw = {name: o[name] for name in ("size", "steps", "seed", "lr") if name in o}
        if o.get("method") != "naive":
            kw.update(param=o["param"], decorrelate=o["decorrelate"], transforms=o["transforms"])
        batch = o.get("batch_size") or (len(units) if self._one_batch else None)
        r = visualize(model, o["layer"], units=units, method=o["method"], objective=objective, progress=False,
                      batch_size=batch, **kw)  # fmt: skip
        out = {
            "images": to_uint8(r.images),
            "start": np.asarray(r.start_activation, np.float32),
            "final": np.asarray(r.final_activation, np.float32),
            "losses": np.asarray(r.losses, np.float32),
        }
        if r.valid_final_activation is not None:
            out["valid_final"] = np.asarray(r.valid_final_activation, np.float32)
        self._batch = int(r.settings["batch_size"])
        return out

    def _photo_list(self, names: tuple[str, ...], size: int) -> list[np.ndarray]:
        key = (names, size)
        if key not in self._photos:
            from ...images import resize, sample_image

            self._photos[key] = [resize(sample_image(n), size) for n in names]
        return self._photos[key]

    def photos(self, model, job: RenderJob) -> dict[str, np.ndarray]:
        """Forward only. Per unit: its activation map over each sample photo (one JPEG strip, one scale
        per unit)."""
        from ...fields import receptive_field
        from ...images import grid, outline, overlay
        from ...maps import batch_activations
        from .examples import encode_jpegs

        o = job.options
        size = model.input_size
        out: dict[str, np.ndarray] = {}
        if o.get("photos"):
            imgs = self._photo_list(tuple(o["photos"]), size)
            acts = batch_activations(model, np.stack(imgs), o["layer"], size=size)  # (P, h, w, C)
            strips, peaks = [], []
            field = receptive_field(model, o["layer"], size)
            for u in job.units:
                a = acts[..., u]
                top = max(float(a.max()), 1e-8)
                # each photo's heat map, with the receptive field of its peak outlined
                tiles = [outline(overlay(img, np.clip(m / top, 0, 1)), field.box(*np.unravel_index(int(m.argmax()), m.shape), 12))
                         for img, m in zip(imgs, a)]  # fmt: skip
                strips.append(to_uint8(grid(tiles, cols=len(imgs), margin=4)))
                peaks.append(a.reshape(len(imgs), -1).max(axis=1))
            out["strip_jpeg"], out["strip_offsets"] = encode_jpegs(strips)
            out["peaks"] = np.asarray(peaks, np.float32)
        return out

    def expanded(self, model, source: str, target: str, channels: tuple[int, int] | None = None):
        """The expanded weights from ``source`` to ``target`` (:func:`featgen.analysis.expanded_weights`).
        A layer's links job reads the pair before it and the pair after it, and the next layer's job
        reads that second pair again: the last few pairs are kept."""
        from ...analysis import expanded_weights

        key = (id(model), source, target)
        if key not in self._expanded:
            self._expanded[key] = expanded_weights(model, source, target, channels)
            while len(self._expanded) > EXPANDED_KEPT:
                self._expanded.pop(next(iter(self._expanded)))
        return self._expanded[key]

    def offline_means(self, model, layer: str, units: list[int]) -> dict[str, np.ndarray]:
        """Over the offline photos (a scan of them, :func:`.scan.scan_arrays`): each unit's mean
        activation (``mean``) and how many photos the model predicts as each class (``predicted``)."""
        from .examples import photo_set, read_photos
        from .scan import scan_arrays

        photos = photo_set("offline")
        images = ((index, image) for index, image, _ in read_photos(photos, range(len(photos)), model.input_size))
        arrays, info = scan_arrays(model, (layer,), images, 1)
        return {"mean": (arrays["mean_sum"][units] / max(info["read"], 1)).astype(np.float32), "predicted": arrays["predicted"]}

    def scan(self, job: ScanJob) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """One shard of the dataset-example scan (:mod:`.scan`): its arrays and meta (the layers' grids,
        receptive fields and channels, the images read, the files skipped and why, the numerics)."""
        from ...fields import receptive_field
        from .examples import photo_set, read_photos, set_digest
        from .scan import scan_arrays

        o = job.options
        model = self._planned_model(job)
        source = (o["examples"], o.get("examples_limit"))
        if source not in self._collections:  # listed once per worker, however many shards it scans
            photos = photo_set(*source)
            if set_digest(photos) != o["examples_digest"]:
                raise FeatgenError(f"the examples ({o['examples']}) changed since the plan was made: run the build again.")
            self._collections[source] = photos
        photos = self._collections[source]
        size = int(o["input_size"])
        why: list[list[Any]] = []

        def images():
            for index, image, reason in read_photos(photos, job.units, size):
                if image is None and len(why) < MAX_REASONS:
                    why.append([index, reason])
                yield index, image

        arrays, info = scan_arrays(model, job.layers, images(), int(o["k"]), int(o.get("batch") or 32))
        fields = [receptive_field(model, layer, size) for layer in job.layers]
        meta = {**job.meta(), **info, "fields": [[f.size, f.jump, f.start] for f in fields], "why_skipped": why,
                "numerics": model.backend.numerics()}  # fmt: skip
        return arrays, meta


EXPANDED_KEPT = 4  # layer pairs: up to 1,152 × 1,152 × 2 float32 each (EfficientNet-Lite0)
MAX_REASONS = 20  # skipped files a shard names, with why (it counts them all)

