"""A tiny gallery made by no model, for the page tests: synthetic model infos and cache entries in
the real format (:mod:`featgen.site.render.synthetic`), planned from a real config. Seconds, no
framework."""

from __future__ import annotations

from pathlib import Path

from featgen.models.base import LayerInfo
from featgen.site.render import synthetic
from featgen.site.render.cache import RenderCache
from featgen.site.render.plan import plan

CONFIG = """
profiles:
  tiny:
    description: "a page test"
    photos: [chelsea, coffee]
    crop: 16
    top: 2
    galleries:
      - {{model: vgg16_hed, backend: torch, layers: [block1_conv1, block5_conv3], units: {units}, size: 32, steps: 6,
         naive_steps: 4, diversity: 3, views: {views}, layer_options: {{block1_conv1: {{transforms: none, param: pixel}}}}}}
      - {{model: vgg16_hed, backend: tensorflow, layers: [block1_conv1, block5_conv3], units: {units}, size: 32,
         steps: 6, naive_steps: 4, diversity: 3, views: {views}, layer_options: {{block1_conv1: {{transforms: none, param: pixel}}}}}}
"""
VIEWS = "[regularized, naive, negative, diversity, photos, examples]"
TABLE = [LayerInfo("block1_conv1", "ReLU", (32, 32, 64), 64), LayerInfo("pool1", "MaxPooling2D", (16, 16, 64), None),
         LayerInfo("block5_conv3", "ReLU", (2, 2, 512), 512)]  # fmt: skip
INPUT = 32


def project(root: Path, units: int = 3, views: str = VIEWS, config: str = CONFIG, table: list[LayerInfo] = TABLE,
            labels: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """A project folder with a docs folder, a mkdocs.yml, a config and a synthetic cache of the tiny
    profile; returns its ``docs``, ``cache`` (a RenderCache), ``config`` path, ``plan`` and ``pages``.
    ``labels``: the model is a classifier of these classes."""
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "index.md").write_text("# Home\n")
    (root / "mkdocs.yml").write_text(MKDOCS)
    path = root / "galleries.yml"
    path.write_text(config.format(units=units, views=views))
    cache = RenderCache(root / "cache" / "renders")
    for backend in ("torch", "tensorflow"):  # caffe VGG16 reads its input as blue, green, red
        stem = tuple(r.name for r in table[:1] if r.name == "block1_conv1")
        synthetic.put_model_info(cache, "vgg16_hed", backend, table, INPUT, stem=stem, bgr=True, labels=labels)
    p = replan(root, cache)
    synthetic.fill(p, cache)
    return {"docs": root / "docs", "cache": cache, "config": path, "plan": p, "pages": root / ".featgen-pages"}


def replan(root: Path, cache: RenderCache):
    def refuse(*a):
        raise AssertionError("the plan should come from the synthetic model info")

    return plan("tiny", cache, config=str(root / "galleries.yml"), loader=refuse)


MKDOCS = """site_name: tiny
theme:
  name: material
  font: false
  palette:
    - {scheme: default, primary: indigo, toggle: {icon: material/brightness-7, name: Dark mode}}
    - {scheme: slate, primary: indigo, toggle: {icon: material/brightness-4, name: Light mode}}
nav:
  - Home: index.md
  - Galleries: galleries/index.md
"""
