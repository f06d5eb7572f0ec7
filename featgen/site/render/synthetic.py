"""Synthetic caches: every entry of a plan in the real format, made by no model (each view's
:meth:`~featgen.site.views.View.synthetic`), and marked so (``"synthetic": true`` in its meta). For
benchmarks of the page stage and the site at the scale of a full gallery, and for tests. The page
stage refuses such entries unless it is told to expect them, and then says so on every page.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...models.base import LayerInfo
from .. import views
from ..views.synthetic import SYNTHETIC
from .cache import RenderCache
from .plan import MODEL_INFO_VERSION, Plan, _info_key

NUMERICS = {"framework": "synthetic", "device": "none"}


def put_model_info(cache: RenderCache, spec: str, backend: str, table: Iterable[LayerInfo], input_size: int = 224,
                   precision: str = "float32", stem: tuple[str, ...] = (), bgr: bool = False,
                   seed: int = 0, labels: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Store a model info for ``spec`` in ``backend`` whose layer table is ``table`` (every layer with
    channels counts as a convolution), so that a plan needs no model. ``stem`` layers show a random
    3×3 first-layer kernel; ``labels`` make it a classifier of those classes."""
    rows = list(table)
    conv = [r.name for r in rows if r.channels is not None]
    meta = {"kind": MODEL_INFO_VERSION, "spec": spec, "backend": backend, "precision": precision, "name": spec,
            "source": "synthetic model info", "input_size": input_size, "weights_digest": f"synthetic-{seed}",
            "table": [[r.name, r.type, list(r.shape), r.channels] for r in rows], "conv": conv, "aliases": {},
            "foreign": {}, "stem": list(stem), "bgr": bgr, "labels": list(labels)}  # fmt: skip
    arrays = {}
    if stem:
        channels = next(r.channels for r in rows if r.name == stem[0])
        arrays["kernels"] = np.random.default_rng(seed).normal(0, 1, (3, 3, 3, channels)).astype(np.float32)
    cache.put(_info_key(spec, backend, precision), arrays, meta)


def fill(plan: Plan, cache: RenderCache, seed: int = 0) -> int:
    """Store a synthetic entry for every job of ``plan`` that ``cache`` lacks; return how many."""
    made = 0
    for lp in plan.layers:
        size = plan.models[(lp.model, lp.backend)].input_size
        for name, jobs in lp.jobs.items():
            view = views.get(name)
            for job in jobs:
                if cache.has(job.key):
                    continue
                rng = np.random.default_rng([seed, int(job.key[:12], 16)])  # the same entry for the same job
                cache.put(job.key, view.synthetic(job, size, rng), {**job.meta(), SYNTHETIC: True, "numerics": NUMERICS})
                made += 1
    return made
