"""The links and classes blocks of unit pages and the class pages, on a tiny synthetic classifier:
every link leads to the linked unit's page and its image, or names the command that renders it, and the
class pages rank units by weight × mean activation from the cache's entries."""

from __future__ import annotations

import re

import numpy as np
import pytest

from featgen.models.base import LayerInfo

CONFIG = """
profiles:
  tiny:
    description: "links and classes"
    photos: [coffee]
    crop: 16
    top: 2
    galleries:
      - {{model: vgg16_hed, backend: torch, layers: [a, b], units: {units}, size: 32, steps: 3, views: {views}}}
"""
TABLE = [LayerInfo("a", "Conv2d", (16, 16, 8), 8), LayerInfo("pool", "MaxPool2d", (8, 8, 8), None),
         LayerInfo("b", "Conv2d", (8, 8, 16), 16)]  # fmt: skip
LABELS = ("tabby", "espresso", "cup", "rocket", "maze", "crane")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from site_data import project

    from featgen.site.pages.write import write_pages

    root = tmp_path_factory.mktemp("links")
    proj = project(root, units=4, views="[regularized, examples, links, classes]", config=CONFIG, table=TABLE, labels=LABELS)
    write_pages(proj["plan"], proj["cache"], proj["docs"], pages_dir=proj["pages"], synthetic=True, workers=1)
    return proj, proj["pages"] / "galleries" / "vgg16_hed" / "torch"


def _arrays(proj, layer: str, view: str) -> dict[str, np.ndarray]:
    from featgen.site.pages.layer import read_view

    lp = next(lp for lp in proj["plan"].layers if lp.layer == layer and lp.backend == "torch")
    return read_view(lp.jobs[view], proj["cache"], 32)


def _units(units: list[int]) -> str:
    """``--units`` as the command writes it: a range ``4:8`` for consecutive units, else a list."""
    if len(units) > 1 and units == list(range(units[0], units[-1] + 1)):
        return f"{units[0]}:{units[-1] + 1}"
    return ",".join(map(str, units))


def test_links_lead_to_the_linked_units_page_and_image_or_to_the_command_that_renders_it(tiny):
    from pathlib import Path

    proj, out = tiny
    script = (Path(__file__).resolve().parents[1] / "docs/js/featgen-links.js").read_text()
    thumb = re.search(r'const THUMB = "([^"]+)";', script).group(1)  # the file a link's thumbnail shows
    arrays = _arrays(proj, "b", "links")  # b's inputs come from a, whose units 0..3 of 8 are rendered
    for i, u in enumerate((0, 1, 2, 3)):
        page = (out / "b" / f"unit-{u}" / "index.html").read_text()
        section = page[page.index('<section id="links">') : page.index("</section>", page.index('<section id="links">'))]
        missing = set()
        for kind in ("exc", "inh"):
            for linked, weight in zip(arrays[f"inputs_{kind}_unit"][i], arrays[f"inputs_{kind}_weight"][i]):
                if linked < 0:
                    continue
                shown = f"{linked} · {weight:+.2g}"
                row = section[section.index(f'<div class="fg-linkrow fg-{kind}">') :].split("</div>")[0]
                if linked < 4:  # rendered: a link to its page, whose folder holds the thumbnail the script shows
                    assert f'<a href="../../a/unit-{linked}/">{shown}</a>' in row, (u, kind, shown)
                    assert (out / "a" / f"unit-{linked}" / "index.html").is_file()
                    assert (out / "a" / f"unit-{linked}" / thumb).is_file()
                else:
                    assert f"<span>{shown}</span>" in row
                    missing.add(int(linked))
        assert missing, "a's units 4..7 are not rendered: some of the 10 links must name them"
        command = re.search(r'<pre class="fg-cmd"><code>(featgen render [^<]+)</code></pre>', section).group(1)
        assert f"--layer a --units {_units(sorted(missing))} " in command
        assert "--steps 3" in command
    # a's outputs go to b's units; none of a's pages links to a unit that does not exist
    for page in (out / "a").glob("unit-*/index.html"):
        for href in re.findall(r'href="(\.\./\.\./b/unit-\d+/)"', page.read_text()):
            assert (page.parent / href / "index.html").resolve().is_file()
            assert (page.parent / href / thumb).resolve().is_file()


def test_class_pages_rank_units_by_weight_times_mean_activation_and_unit_pages_link_to_them(tiny):
    proj, out = tiny
    weights = _arrays(proj, "b", "classes")["weights"]  # (classes, units rendered)
    examples = _arrays(proj, "b", "examples")
    mean, predicted = examples["mean"], examples["predicted"]
    assert predicted.sum() > 0
    pages = {int(p.parent.name) for p in (out / "classes").glob("*/index.html")}
    assert pages == {int(c) for c in np.flatnonzero(predicted)}
    for c in pages:
        page = (out / "classes" / str(c) / "index.html").read_text()
        assert f"<h1>{LABELS[c]} <small>class {c}" in page
        contribution = weights[c] * mean
        want = [int(u) for u in np.argsort(-contribution, kind="stable") if contribution[u] > 0]
        push = page[page.index(f"<h2>Towards {LABELS[c]}</h2>") : page.index("<h2>Away from")]
        assert [int(u) for u in re.findall(r'href="\.\./\.\./b/unit-(\d+)/"', push)] == want
    index = (out / "classes" / "index.html").read_text()
    counts = [int(n) for n in re.findall(r"</a></td><td>(\d+)</td>", index)]
    assert counts == sorted(counts, reverse=True) and sum(counts) == predicted.sum()
    for i, u in enumerate((0, 1, 2, 3)):
        page = (out / "b" / f"unit-{u}" / "index.html").read_text()
        start = page.index('<section id="classes">')
        section = page[start : page.index("</section>", start)]
        rows = re.findall(r"<tr><td>(?:<a href=\"([^\"]+)\">)?([^<]+)(?:</a>)?</td>", section)
        contribution = weights[:, i] * mean[i]
        want = [int(c) for c in np.argsort(-contribution, kind="stable")[:5] if contribution[c] > 0]
        assert [label for _, label in rows] == [LABELS[c] for c in want]
        for (href, _), c in zip(rows, want):
            assert href == (f"../../classes/{c}/" if c in pages else "")
    assert '<a href="classes/">' in (proj["docs"] / "galleries" / "vgg16_hed" / "torch" / "index.md").read_text()


def test_a_rebuild_with_nothing_changed_reads_no_class_data_and_keeps_the_class_pages(tiny, monkeypatch):
    """The class pages' manifest entry holds the predicted classes: an unchanged build reads no entry for them."""
    from featgen.site.pages import write

    proj, out = tiny
    before = {p: p.stat().st_mtime_ns for p in (out / "classes").rglob("*.html")}
    assert len(before) > 1  # the index and a page per predicted class
    monkeypatch.setattr(write, "read_classes", lambda *a, **k: pytest.fail("class data read for unchanged pages"))
    stats = write.write_pages(proj["plan"], proj["cache"], proj["docs"], pages_dir=proj["pages"], synthetic=True, workers=1)
    assert stats.written == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "classes").rglob("*.html")} == before
