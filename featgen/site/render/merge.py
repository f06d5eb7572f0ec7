"""The merge of the dataset-example scan: a model's shard entries → one examples entry per layer.

The shards (:mod:`.scan`) hold, for every unit of every hooked layer, its best and worst images
and positions. Merged (in any order: the result is the same), they give each unit's top and bottom
images; each is cut to the unit's receptive field around its position (:class:`featgen.fields.Field`,
recorded by the scan) and stored as JPEG crops in the layer's examples entry, which the page stage
reads like any other. Each image is read once however many crops it gives. No model is loaded here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import FeatgenError
from ...fields import Field
from ...progress import bar
from .cache import RenderCache
from .examples import MIN_CONTEXT, cut_crops, photo_set, set_digest
from .jobs import RenderJob
from .plan import Plan
from .scan import ScanJob, merge_entries, scan_expected


@dataclass
class MergeStats:
    """What a merge did: entries written; the collection's images read and skipped (each model scans
    the same collection), and why some were skipped."""

    written: int = 0
    read: int = 0
    skipped: int = 0
    why: list[str] = field(default_factory=list)


def missing_examples(plan: Plan, cache: RenderCache) -> list[RenderJob]:
    """The jobs of scanned views (dataset examples) whose entry the cache lacks."""
    return [j for j in plan.derived if not cache.has(j.key)]


def merge_examples(plan: Plan, cache: RenderCache, jobs: list[RenderJob] | None = None, quiet: bool = False) -> MergeStats:
    """Write the examples entry of each of ``jobs`` (default: every one the cache lacks) from its
    model's scan shards, which must be in ``cache``."""
    todo = missing_examples(plan, cache) if jobs is None else jobs
    stats = MergeStats()
    groups: dict[tuple[str, str], list[RenderJob]] = defaultdict(list)
    for job in todo:
        groups[job.model, job.backend].append(job)
    for (model, backend), jobs_here in groups.items():
        scans = [s for s in plan.scans if (s.model, s.backend) == (model, backend)]
        if not scans:
            raise FeatgenError(f"{model} ({backend}): the plan has no example scan for its examples view.")
        _merge_model(plan, cache, scans, jobs_here, stats, quiet)
    return stats


def _merge_model(plan: Plan, cache: RenderCache, scans: list[ScanJob], jobs: list[RenderJob], stats: MergeStats,
                 quiet: bool) -> None:  # fmt: skip
    info = next(i for i in plan.models.values() if (i.spec, i.backend) == (scans[0].model, scans[0].backend))
    layers = scans[0].layers
    channels = [int(info.row(n).channels) for n in layers]
    parts, metas = [], []
    for s in scans:
        found = cache.read(s.key, scan_expected(s, channels))
        if found is None:
            raise FeatgenError(f"{s.label()}: its scan is not in the cache: run the render stage (python -m featgen.site render).")
        metas.append(found[0])
        parts.append(found[1])
    merged = merge_entries(parts)
    predicted = np.sum([p["predicted"] for p in parts], axis=0).astype(np.int64)
    read = sum(int(m["read"]) for m in metas)
    skipped = sum(len(p["skipped"]) for p in parts)
    stats.read, stats.skipped = max(stats.read, read), max(stats.skipped, skipped)  # every model scans one collection
    stats.why += [why for m in metas for _, why in m.get("why_skipped", [])][: 5 - len(stats.why)]
    o = scans[0].options
    photos = photo_set(o["examples"], o.get("examples_limit"))
    if set_digest(photos) != o["examples_digest"]:
        raise FeatgenError(f"the examples ({o['examples']}) changed since they were scanned: run the build again.")
    size = int(o["input_size"])
    offsets = np.cumsum([0] + channels)
    fields = [Field(int(a), int(b), float(c), size) for a, b, c in metas[0]["fields"]]
    before = metas[0].get("before_activation") or [False] * len(layers)
    grids = [tuple(g) for g in metas[0]["grids"]]
    wants: dict[int, list[tuple[Any, tuple[int, int, int, int]]]] = defaultdict(list)
    picks = []
    for ji, job in enumerate(jobs):
        li = layers.index(job.options["layer"])
        rows = offsets[li] + np.asarray(job.units)
        k = min(int(job.options["top"]), read)
        pick = {kind: (getattr(merged, f"{kind}_image")[rows, :k], getattr(merged, f"{kind}_pos")[rows, :k],
                       getattr(merged, f"{kind}_value")[rows, :k]) for kind in ("top", "bottom")}  # fmt: skip
        for kind, (image, pos, _) in pick.items():
            for r in range(len(rows)):
                for j in range(k):
                    row, col = divmod(int(pos[r, j]), grids[li][1])
                    wants[int(image[r, j])].append(((ji, kind, r, j), fields[li].box(row, col, MIN_CONTEXT)))
        picks.append((li, rows, k, pick))
    crop = int(jobs[0].options["crop"])
    with bar(total=len(wants), desc=f"example crops ({scans[0].model}, {scans[0].backend})", quiet=quiet, unit="image") as progress:
        crops = cut_crops(photos, size, wants, crop, progress.update)
    for ji, (job, (li, rows, k, pick)) in enumerate(zip(jobs, picks)):
        used = np.unique(np.concatenate([pick[kind][0].ravel() for kind in pick]).astype(np.int64))
        arrays: dict[str, np.ndarray] = {"files": np.asarray([photos[i][0] for i in used], dtype=str),
                                         "counts": np.asarray([read, skipped], np.int64),
                                         "before_activation": np.asarray([bool(before[li])]),
                                         "silent": merged.silent[rows].astype(np.int64),
                                         "mean": (merged.mean_sum[rows] / max(read, 1)).astype(np.float32),
                                         "predicted": predicted}  # fmt: skip
        for kind, (image, _, value) in pick.items():
            blobs = [crops[(ji, kind, r, j)] for r in range(len(rows)) for j in range(k)]
            arrays[f"{kind}_jpeg"] = np.frombuffer(b"".join(blobs), np.uint8).copy()
            arrays[f"{kind}_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
            arrays[f"{kind}_file"] = np.searchsorted(used, image).astype(np.int32).reshape(len(rows), k)
            arrays[f"{kind}_value"] = value.astype(np.float32).reshape(len(rows), k)
        meta = {**job.meta(), "numerics": metas[0].get("numerics"), "scans": [s.key for s in scans]}
        cache.put(job.key, arrays, meta)
        stats.written += 1
