"""Views are registered objects: the stages read the registry, and a new view is one module plus its
template block. The toy view below is such a module: it declares a gallery option, its job settings,
how it renders (no model needed), its cache arrays, its page fields and its block, and the config,
the plan, the renderer, the cache and the pages take it with no other change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featgen.site import views
from featgen.site.views.base import Option, PlanContext, View
from featgen.site.views.optimized import base_settings

ROOT = Path(__file__).resolve().parents[1]


# --- the toy view: one module's worth --------------------------------------------------------------------
class Toy(View):
    """A unit's "level": its index times the gallery's ``toy_shade``, drawn as a grey square."""

    name = "toy"
    options = (Option("toy_shade", 2.0),)
    optimizes = False
    block = '<section id="toy"><h2>Toy</h2><p>Level {{ v.level }}.</p><img src="{{ v.image }}" alt="toy of unit {{ unit }}"></section>'

    def settings(self, g, ctx: PlanContext) -> dict[str, Any]:
        return {**base_settings(ctx), "kind": "toy-1", "shade": float(g.toy_shade)}

    def unit_steps(self, job) -> int:
        return len(job.units)

    def render(self, renderer, model, job) -> dict[str, np.ndarray]:
        levels = np.asarray(job.units, np.float32) * job.options["shade"]
        return {"level": levels}

    def expected(self, job, input_size: int):
        from featgen.site.render.entries import Array, Expected

        return Expected({"level": Array("f4", (len(job.units),))})

    def synthetic(self, job, input_size: int, rng) -> dict[str, np.ndarray]:
        return self.render(None, None, job)

    def unit_fields(self, arrays, i, files, settings) -> dict[str, Any]:
        level = float(arrays["level"][i])
        return {"level": level, "image": files.image("toy", np.full((8, 8, 3), int(level) % 256, np.uint8))}

    def stats(self, fields: dict[str, Any]) -> list[tuple[str, float]]:
        return [("toy level", fields["level"])]


@pytest.fixture
def toy():
    view = views.register(Toy())
    yield view
    views.unregister("toy")


def test_a_new_view_is_one_module_and_its_block(toy, tmp_path, monkeypatch):
    from site_data import CONFIG, project

    from featgen.errors import FeatgenError
    from featgen.site.pages.write import write_pages
    from featgen.site.render.config import parse_config

    config = CONFIG.replace("diversity: 3,", "diversity: 3, toy_shade: 2.5,")
    proj = project(tmp_path, units=2, views="[regularized, naive, toy]", config=config)
    # the config knows its option and checks it like the built-in ones
    g = proj["plan"].profile.galleries[0]
    assert g.toy_shade == 2.5 and "toy" in g.views
    with pytest.raises(FeatgenError, match="toy_shade must be a positive number, got -1"):
        parse_config({"profiles": {"p": {"galleries": [{"model": "vgg16_hed", "toy_shade": -1}]}}})
    # the plan makes its jobs with its settings; the renderer runs them through the view
    jobs = [j for lp in proj["plan"].layers for j in lp.jobs.get("toy", ())]
    assert len(jobs) == 4 and all(j.options["shade"] == 2.5 and j.unit_steps == 2 for j in jobs)
    from featgen.site.render.renderer import Renderer

    monkeypatch.setattr(Renderer, "model", lambda self, *a, **k: type("M", (), {"weights_digest": "synthetic-0"})())
    assert Renderer().run(jobs[0])["level"].tolist() == [0.0, 2.5]
    # its entries are checked against its arrays; its block and numbers reach the unit pages
    write_pages(proj["plan"], proj["cache"], proj["docs"], pages_dir=proj["pages"], synthetic=True)
    unit = (proj["pages"] / "galleries/vgg16_hed/torch/block5_conv3/unit-1/index.html").read_text()
    assert '<section id="toy"><h2>Toy</h2><p>Level 2.5.</p><img src="toy.webp" alt="toy of unit 1"></section>' in unit
    assert "<tr><td>toy level</td><td>2.500</td></tr>" in unit
    assert unit.index('id="toy"') > unit.index("naive.webp")  # in registry order


def test_the_registry_has_one_primary_view_and_unique_names():
    assert views.names() == ("regularized", "naive", "negative", "diversity", "photos", "examples", "links", "classes")
    assert views.primary().name == "regularized"
    with pytest.raises(ValueError, match="new name"):
        views.register(views.get("naive"))

    class Second(View):
        name, primary = "second", True

    with pytest.raises(ValueError, match="already a primary view"):
        views.register(Second())


def test_no_stage_switches_on_a_view_name():
    """The plan, render, estimate, pages and config read the registry; only view modules (and their
    template blocks) name a view."""
    pattern = re.compile(r"""(view|jobs|views|VIEWS)\W[^\n]{0,30}["'](regularized|naive|negative|diversity|photos)["']""")
    offenders = []
    for path in sorted((ROOT / "featgen" / "site").rglob("*.py")):
        if "views" in path.relative_to(ROOT / "featgen" / "site").parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders
    assert "OPTIMIZED" not in (ROOT / "featgen/site/render/plan.py").read_text()
