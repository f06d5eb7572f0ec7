"""One layer's pages: a page per unit (each view's part, the verdicts, the kernel, the activations and
how to reproduce it) and the layer's page, an overview of every unit in lazily loaded sheets.

The arrays come from the cache, checked against each view's expected arrays; the result is the
layer's files and a summary (plain data) that the index pages and the next build's manifest keep.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import FeatgenError
from .. import views
from ..render.cache import RenderCache
from ..render.entries import job_arrays
from ..render.jobs import RenderJob
from ..render.plan import LayerPlan, ModelInfo
from ..views.synthetic import SYNTHETIC
from .files import SHEET_COLUMNS, SHEET_UNITS, TILE, UnitFiles, curve_svg, kernel_svg, sheet, tile, webp
from .navigation import neighbours
from .reproduce import cli_command, reproduction
from .templating import render_html, slug
from .theme import THEME_CSS, Theme

if TYPE_CHECKING:
    from .files import Reuse

PREVIEW = 8  # units in a layer's preview strip (model and backend pages)
REPRODUCE_KEYS = ("backend", "precision", "method", "size", "steps", "seed", "lr", "param", "decorrelate", "transforms")
SEARCH_TRANSLATIONS = {
    "clipboard.copied": "Copied to clipboard", "clipboard.copy": "Copy to clipboard",
    "search.result.more.one": "1 more on this page", "search.result.more.other": "# more on this page",
    "search.result.none": "No matching documents", "search.result.one": "1 matching document",
    "search.result.other": "# matching documents", "search.result.placeholder": "Type to start searching",
    "search.result.term.missing": "Missing", "select.version": "Select version",
}  # fmt: skip


@dataclass
class Site:
    """What every gallery page of one build shares: the theme, the sidebar's tree of models, backends
    and layers, the layers of each model and backend, and the backend pairs with layers in both."""

    theme: Theme
    models: dict[str, list[str]]  # model -> its backends, in plan order
    layers: dict[tuple[str, str], list[str]]  # (model, backend) -> its layers, in model order
    units: dict[tuple[str, str, str], tuple[int, ...]]  # (model, backend, layer) -> units rendered
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)  # model -> (left, right) backends
    synthetic: bool = False
    recipes: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # reproducible() of partial layers
    labels: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # a classifier's class names
    class_pages: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # class -> images predicted as it
    class_layer: dict[tuple[str, str], str] = field(default_factory=dict)  # the layer whose units the class pages list

    def class_of(self, model: str, backend: str, index: int) -> dict[str, Any]:
        """Class ``index`` of the model: its ``label`` and, if it has a class page, the ``href`` to it
        from a unit page or a class page (else None)."""
        labels = self.labels.get((model, backend), ())
        label = labels[index] if 0 <= index < len(labels) else f"class {index}"
        has = index in self.class_pages.get((model, backend), {})
        return {"label": label, "href": f"../../classes/{index}/" if has else None}

    def locate(self, model: str, backend: str, layer: str, unit: int) -> dict[str, Any] | None:
        """Where a unit page finds unit ``unit`` of ``layer`` (same model and backend): the ``href`` of its
        page; None if the gallery does not render it. (The page's script shows the image in that unit's
        folder: its address in the HTML would weigh about 50 bytes a link.)"""
        if unit not in self.units.get((model, backend, layer), ()):
            return None
        return {"href": f"../../{slug(layer)}/unit-{unit}/"}

    def linked(self, model: str, backend: str, side: dict[str, Any]) -> dict[str, Any]:
        """A links view's side (``layer``, ``exc`` and ``inh`` rows of ``unit`` and ``weight``) with where
        each linked unit is (``at``, or None), the units not rendered, and the command that renders them."""
        layer = side["layer"]
        out: dict[str, Any] = {"layer": layer}
        missing: set[int] = set()
        for kind in ("exc", "inh"):
            out[kind] = [{**row, "at": self.locate(model, backend, layer, row["unit"])} for row in side.get(kind, ())]
            missing.update(row["unit"] for row in out[kind] if row["at"] is None)
        out["missing"] = sorted(missing)
        recipe = self.recipes.get((model, backend, layer))
        out["command"] = cli_command({**recipe, "layer": layer}, out["missing"])[0] if missing and recipe else None
        return out

    def link_context(self, model: str, backend: str, layer: str) -> dict[str, Any]:
        """What a layer's links show of its neighbouring layers (its digest includes it): their units,
        and the recipe of one whose units are not all rendered (its pages' commands render the rest;
        a layer rendered whole has none, so a change to its recipe rewrites its pages alone)."""
        out = {}
        for other in neighbours(self.layers[(model, backend)], layer):
            if other is not None:
                units = self.units[(model, backend, other)]
                out[other] = [list(units), self.recipes.get((model, backend, other))]
        return out

    def tree(self, model: str, backend: str, layer: str | None = None) -> list[dict[str, Any]]:
        """The sidebar: every model and backend, and the layers of ``backend`` of ``model``."""
        return [{"model": m, "slug": slug(m), "backends": [
            {"backend": b, "slug": slug(b), "current": (m, b) == (model, backend),
             "layers": [{"layer": x, "slug": slug(x), "current": x == layer} for x in self.layers[(m, b)]]
                        if (m, b) == (model, backend) else []} for b in bs]} for m, bs in self.models.items()]  # fmt: skip

    def compared(self, model: str, layer: str) -> tuple[str, str] | None:
        """The backend pair of ``model`` whose both backends render ``layer``, or None."""
        pair = self.pairs.get(model)
        return pair if pair and all(layer in self.layers.get((model, b), ()) for b in pair) else None

    def page(self, template: str, base: str, title: str, where: tuple[str, str | None, str | None], **ctx: Any) -> str:
        """One HTML page in the site's frame; ``base`` is the path from the page to the site's root,
        ``where`` its model, backend and layer (the sidebar shows where it is)."""
        model, backend, layer = where
        depth = base.count("..")
        ctx.setdefault("here", "../" * (depth - 3))  # from the page to its backend's folder
        config = {"base": base, "features": list(self.theme.features), "search": f"{base}/{self.theme.search_worker}",
                  "tags": None, "translations": SEARCH_TRANSLATIONS, "version": None}  # fmt: skip
        return render_html(template, t=self.theme, base=base, gal="../" * (depth - 1), theme_css=THEME_CSS,
                           title=title, synthetic=self.synthetic,
                           tree=self.tree(model, backend or "", layer), config_json=json.dumps(config), **ctx)  # fmt: skip

    def digest_context(self, model: str, backend: str) -> dict[str, Any]:
        """What a layer's pages show of the rest of the site (its digest includes it)."""
        return {"theme": self.theme.digest(), "models": self.models, "layers": self.layers[(model, backend)],
                "pairs": self.pairs.get(model), "synthetic": self.synthetic,
                "twins": {b: self.layers[(model, b)] for b in self.models[model]}}  # fmt: skip


def numerics_label(numerics: dict[str, Any] | None) -> str:
    """``"torch 2.13.0 on cpu (1 thread, avx512)"``: what an entry's float rounding came from."""
    if not numerics:
        return "unrecorded"
    threads = numerics.get("threads")
    cpu = f" ({threads} thread{'s' * (threads != 1)}, {numerics.get('isa')})" if threads is not None else ""
    return f"{numerics.get('framework')} on {numerics.get('device')}{cpu}"


def _read_entry(job: RenderJob, cache: RenderCache, input_size: int,
                rerender: Callable[[list[RenderJob]], Any] | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # fmt: skip
    """One job's meta and arrays, checked against what its view expects. An entry found bad is
    rendered again through ``rerender`` if given; else one line names the job."""
    expect = job_arrays(job, input_size)
    found = cache.read(job.key, expect)
    if found is None and rerender is not None:
        rerender([job])
        found = cache.read(job.key, expect)
    if found is None and job.key in cache.quarantined:
        raise FeatgenError(f"the cache's render of {job.label()} was bad ({cache.quarantined[job.key]}): "
                           "run `python -m featgen.site render` (or build) with this profile to render it again.")  # fmt: skip
    if found is None:
        raise FeatgenError(f"the cache has no render of {job.label()}: run `python -m featgen.site render` "
                           "(or build) with this profile first, or copy the cache that has it.")  # fmt: skip
    meta, arrays = found
    return (meta if isinstance(meta, dict) else {}), arrays


class ViewReader:
    """A view's entries over a layer's units, one job's entry in memory at a time: the units are read
    in order, so a layer of 1,280 units holds one chunk of each view, not all of them."""

    def __init__(self, jobs: tuple[RenderJob, ...], cache: RenderCache, input_size: int,
                 rerender: Callable[[list[RenderJob]], Any] | None = None):  # fmt: skip
        self.jobs, self.cache, self.input_size, self.rerender = jobs, cache, input_size, rerender
        self.starts = np.cumsum([0] + [len(j.units) for j in jobs])
        self.numerics: dict[int, str] = {}  # job index -> the numerics its entry was rendered with
        self.synthetic = False
        self._at, self._arrays = -1, {}

    def at(self, i: int) -> tuple[dict[str, np.ndarray], int]:
        """The arrays of the entry that holds the layer's ``i``-th unit, and its index there."""
        j = int(np.searchsorted(self.starts, i, side="right") - 1)
        if j != self._at:
            self._arrays = {}  # the last entry goes before the next is read
            meta, self._arrays = _read_entry(self.jobs[j], self.cache, self.input_size, self.rerender)
            self._at = j
            self.synthetic = self.synthetic or bool(meta.get(SYNTHETIC))
            numerics = meta.get("numerics")
            self.numerics[j] = numerics_label(numerics if isinstance(numerics, dict) else None)
        return self._arrays, i - int(self.starts[j])


def read_view(jobs: tuple[RenderJob, ...], cache: RenderCache, input_size: int,
              rerender: Callable[[list[RenderJob]], Any] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """A view's arrays over all its chunks, concatenated in unit order (a compare page's images)."""
    parts = [_read_entry(job, cache, input_size, rerender)[1] for job in jobs]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def reproducible(lp: LayerPlan) -> dict[str, Any]:
    """The primary view's settings as ``featgen.visualize`` takes them: the model spec that loads it
    (a state dict's with its ``arch``) and the gallery's layer name, every number stated."""
    job = lp.jobs[views.primary().name][0]
    return {"model": job.model, "layer": lp.layer, **{k: job.options[k] for k in REPRODUCE_KEYS if k in job.options}}


def recipe_text(settings: dict[str, Any]) -> str:
    """The primary render's recipe in words, for the hero's caption."""
    s = reproduction({"model": "", "layer": "", **settings}, 0)["settings"]
    colour = "decorrelated" if s.get("decorrelate") else "plain"
    return f"{s.get('param')} parameterization, {colour} colour, transforms {s.get('transforms')}, lr {s['lr']}, {s['steps']} steps"


@dataclass
class LayerResult:
    summary: dict[str, Any]
    files: list[str]  # relative to the layer's folder
    numerics: dict[str, int]
    synthetic: bool


def _related_units(site: Site, lp: LayerPlan, units: list[int], u: int) -> list[dict[str, str]]:
    prev, nxt = neighbours(units, u)
    layers = site.layers[(lp.model, lp.backend)]
    prev_layer, next_layer = neighbours(layers, lp.layer)
    out = []
    if prev is not None:
        out.append({"label": f"← unit {prev}", "href": f"../unit-{prev}/", "rel": "prev"})
    if nxt is not None:
        out.append({"label": f"unit {nxt} →", "href": f"../unit-{nxt}/", "rel": "next"})
    if prev_layer is not None:
        out.append({"label": f"← layer {prev_layer}", "href": f"../../{slug(prev_layer)}/"})
    if next_layer is not None:
        out.append({"label": f"layer {next_layer} →", "href": f"../../{slug(next_layer)}/"})
    for other in site.models[lp.model]:
        if other != lp.backend and u in site.units.get((lp.model, other, lp.layer), ()):
            out.append({"label": f"unit {u} in {other}", "href": f"../../../{slug(other)}/{slug(lp.layer)}/unit-{u}/"})
    pair = site.compared(lp.model, lp.layer)
    if pair and all(u in site.units[(lp.model, b, lp.layer)] for b in pair):
        out.append({"label": f"{pair[0]} | {pair[1]} side by side", "href": f"../../../compare/{slug(lp.layer)}/#unit-{u}"})
    return out


def _related_layer(site: Site, lp: LayerPlan) -> list[dict[str, str]]:
    prev_layer, next_layer = neighbours(site.layers[(lp.model, lp.backend)], lp.layer)
    out = []
    if prev_layer is not None:
        out.append({"label": f"← {prev_layer}", "href": f"../{slug(prev_layer)}/", "rel": "prev"})
    if next_layer is not None:
        out.append({"label": f"{next_layer} →", "href": f"../{slug(next_layer)}/", "rel": "next"})
    for other in site.models[lp.model]:
        if other != lp.backend and lp.layer in site.layers[(lp.model, other)]:
            out.append({"label": f"{lp.layer} in {other}", "href": f"../../{slug(other)}/{slug(lp.layer)}/"})
    pair = site.compared(lp.model, lp.layer)
    if pair:
        out.append({"label": f"{pair[0]} | {pair[1]} side by side", "href": f"../../compare/{slug(lp.layer)}/"})
    if site.class_layer.get((lp.model, lp.backend)) == lp.layer and site.class_pages.get((lp.model, lp.backend)):
        out.append({"label": "classes", "href": "../classes/"})
    return out


@dataclass
class UnitsPart:
    """What writing a run of a layer's units gave: their files (relative to the layer's folder), the
    primary verdict of each, the other views' failures and the numerics of the entries read."""

    files: list[str]  # the unit pages' files and the overview sheets of these units
    statuses: list[tuple[str, str]]  # per unit: the primary verdict's status and label
    others: dict[str, int]  # the other views' failures, by "view: label"
    numerics: dict[tuple[str, int], str]  # (view, job index) -> the numerics of each entry read
    synthetic: bool


def unit_parts(lp: LayerPlan, most: int) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges over ``lp.units`` of about ``most`` units each, cut between overview
    sheets, so that each part writes whole sheets and no tile leaves the process that made it."""
    n = len(lp.units)
    step = -(-max(most, PREVIEW, 1) // SHEET_UNITS) * SHEET_UNITS  # the first part also makes the preview strip
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def write_units(lp: LayerPlan, info: ModelInfo, cache: RenderCache, layer_dir: Path, site: Site, start: int, stop: int,
                rerender: Callable[[list[RenderJob]], Any] | None = None, reuse: Reuse | None = None) -> UnitsPart:  # fmt: skip
    """Write the pages of units ``start`` to ``stop`` (indices into ``lp.units``; ``start`` is the first
    unit of an overview sheet) into ``layer_dir``, with the sheets of these units (and the preview
    strip if they are the first). ``reuse``: the last build's images of this layer that still hold."""
    present = [v for v in views.all_views() if v.name in lp.jobs]
    primary = views.primary()
    readers = {v.name: ViewReader(lp.jobs[v.name], cache, info.input_size, rerender) for v in present}
    settings = {v.name: lp.jobs[v.name][0].options for v in present}
    units = list(lp.units)
    kernels = info.kernels if lp.native in info.stem else None
    reproduce_settings = reproducible(lp)
    recipe = recipe_text(settings[primary.name])
    part = UnitsPart([], [], {}, {}, False)
    tiles: list[np.ndarray] = []  # the current sheet's
    preview: list[np.ndarray] = []  # the layer's first units', in the part that starts it
    for i in range(start, stop):
        u = units[i]
        fields: dict[str, dict[str, Any]] = {}
        written: list[str] = []
        for v in present:
            out = UnitFiles(layer_dir / f"unit-{u}", reuse.old(v.name, u) if reuse is not None else None)
            before = {"before": {r: fields[r] for r in v.reads if r in fields}} if v.reads else {}
            fields[v.name] = v.unit_fields(*readers[v.name].at(i), out, settings[v.name], **before)
            written += out.written
        arrays, j = readers[primary.name].at(i)
        tiles.append(tile(primary_images(arrays)[j]))  # the overview keeps tiles, not the renders
        if i < PREVIEW:
            preview.append(tiles[-1])
        if i == min(PREVIEW, len(units)) - 1:
            (layer_dir / "preview.webp").write_bytes(webp(sheet(np.stack(preview), columns=PREVIEW)))
            part.files.append("preview.webp")
        if len(tiles) == SHEET_UNITS or i == stop - 1:
            part.files.append(_write_sheet(layer_dir, i // SHEET_UNITS, tiles))
            tiles = []
        verdicts = {v.name: v.verdict(fields, lp.info.type) for v in present}
        blocks = [{"template": v.template(), "fields": fields[v.name], "verdict": _plain(verdicts[v.name])} for v in present]
        verdict = _plain(verdicts[primary.name])
        part.statuses.append((verdict["status"], verdict["label"]) if verdict else ("ok", ""))
        for name, v in verdicts.items():
            if name != primary.name and v is not None and v.status in ("failed", "nan"):
                part.others[f"{name}: {v.label}"] = part.others.get(f"{name}: {v.label}", 0) + 1
        curve = fields[primary.name].get("curve")
        kernel = None
        if kernels is not None:
            kh, kw = kernels.shape[:2]
            kernel = {"svg": kernel_svg(kernels[..., u], info.bgr), "size": f"{kh}×{kw}", "bgr": info.bgr}
        related = _related_units(site, lp, units, u)
        html = site.page("unit.html.j2", "../../../../..", f"{lp.layer} · unit {u} · {lp.model} ({lp.backend})",
                         (lp.model, lp.backend, lp.layer), model=lp.model, backend=lp.backend, layer=lp.layer, unit=u, views=blocks,
                         verdict=verdict, related=related, kernel=kernel, recipe=recipe, primary=primary.name,
                         stats=[row for v in present for row in v.stats(fields[v.name])],
                         curve={"svg": curve_svg(curve), "transforms": fields[primary.name].get("transforms", True)} if curve else None,
                         reproduce=reproduction(reproduce_settings, u, out=f"{primary.name}.png"),
                         linked=functools.partial(site.linked, lp.model, lp.backend),
                         class_of=functools.partial(site.class_of, lp.model, lp.backend))  # fmt: skip
        (layer_dir / f"unit-{u}" / "index.html").write_text(html)
        part.files += [f"unit-{u}/{name}" for name in (*written, "index.html")]
    part.numerics = {(name, j): label for name, reader in readers.items() for j, label in reader.numerics.items()}
    part.synthetic = any(r.synthetic for r in readers.values())
    return part


def finish_layer(lp: LayerPlan, layer_dir: Path, site: Site, parts: list[UnitsPart]) -> LayerResult:
    """The layer's own page, over the overview sheets of its units' ``parts`` (in unit order)."""
    units = list(lp.units)
    primary = views.primary()
    statuses = [s for p in parts for s in p.statuses]
    others = dict(sum((Counter(p.others) for p in parts), Counter()))
    # entries by numerics, each entry once however many parts read it
    numerics = dict(Counter({k: v for p in parts for k, v in p.numerics.items()}.values()))
    legend = _legend(statuses, others)
    html = site.page("layer.html.j2", "../../../..", f"{lp.layer} · {lp.model} ({lp.backend})", (lp.model, lp.backend, lp.layer),
                     model=lp.model, backend=lp.backend, layer=lp.layer, type=lp.info.type, shape=lp.info.shape,
                     channels=lp.info.channels, native=lp.native, units=units, related=_related_layer(site, lp),
                     primary=primary.name, legend=legend, sheets=_sheets(units, statuses), tile=TILE,
                     reproduce=reproduction(reproducible(lp), units, out="grid.png"))  # fmt: skip
    (layer_dir / "index.html").write_text(html)
    files = [f for p in parts for f in p.files] + ["index.html"]
    summary = {"model": lp.model, "backend": lp.backend, "layer": lp.layer, "slug": slug(lp.layer), "type": lp.info.type,
               "shape": list(lp.info.shape), "channels": lp.info.channels, "native": lp.native, "units": len(units),
               "flagged": [row for row in legend if row["status"] != "ok"], "preview": "preview.webp",
               "preview_width": min(PREVIEW, len(units)) * TILE, "image": f"{primary.name}.webp"}  # fmt: skip
    return LayerResult(summary, files, numerics, any(p.synthetic for p in parts))


def write_layer(lp: LayerPlan, info: ModelInfo, cache: RenderCache, layer_dir: Path, site: Site,
                rerender: Callable[[list[RenderJob]], Any] | None = None, reuse: Reuse | None = None) -> LayerResult:  # fmt: skip
    """Write one layer's unit pages and its page into ``layer_dir``, from the cache alone (and the
    last build's images that still hold: ``reuse``)."""
    return finish_layer(lp, layer_dir, site, [write_units(lp, info, cache, layer_dir, site, 0, len(lp.units), rerender, reuse)])


def primary_images(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The primary view's images: a unit's tile and its side of a torch | TensorFlow pair."""
    return arrays["images"]


def _plain(v: Any) -> dict[str, str] | None:
    return None if v is None else v.as_dict()


def _write_sheet(layer_dir: Path, k: int, tiles: list[np.ndarray]) -> str:
    """The ``k``-th overview sheet, of ``tiles``: one lazily loaded image for a page of units."""
    name = f"sheet-{k}.webp"
    (layer_dir / name).write_bytes(webp(sheet(np.stack(tiles), min(SHEET_COLUMNS, len(tiles)))))
    return name


def _sheets(units: list[int], statuses: list[tuple[str, str]]) -> list[dict]:
    """What the layer page says of each overview sheet: its image, grid, units and their verdicts."""
    sheets = []
    for k in range(0, len(units), SHEET_UNITS):
        these = units[k : k + SHEET_UNITS]
        cols = min(SHEET_COLUMNS, len(these))
        sheets.append({"image": f"sheet-{k // SHEET_UNITS}.webp", "cols": cols, "rows": -(-len(these) // cols),
                       "first": these[0], "last": these[-1],
                       "units": [{"unit": u, "status": s, "label": label} for u, (s, label) in
                                 zip(these, statuses[k : k + SHEET_UNITS])]})  # fmt: skip
    return sheets


def _legend(statuses: list[tuple[str, str]], others: dict[str, int]) -> list[dict[str, Any]]:
    """Counts of each verdict label over the layer's units (the unit pages' words), flagged first;
    then the other views' failures (``others``: count by "view: label")."""
    counts: dict[tuple[str, str], int] = {}
    for status, label in statuses:
        if label:
            counts[(status, label)] = counts.get((status, label), 0) + 1
    rows = [{"status": s, "label": label, "count": n} for (s, label), n in counts.items()]
    rows.sort(key=lambda r: (r["status"] == "ok", -r["count"]))
    return rows + [{"status": "other", "label": label, "count": n} for label, n in sorted(others.items())]
