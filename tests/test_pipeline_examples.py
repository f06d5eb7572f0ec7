"""Dataset examples: collections, the scan's shards in the pipeline, and the pages they make."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from featgen.errors import FeatgenError
from featgen.site.render.examples import (
    encode_jpegs,
    folder_photos,
    jpeg_at,
    offline_photos,
    set_digest,
)


def _folder(tmp_path, n=7):
    rng = np.random.default_rng(0)
    for i in range(n):  # flat colours, stripes and noise: units of a first conv layer tell them apart
        img = np.zeros((80, 96, 3), np.uint8)
        if i % 3 == 0:
            img[:] = rng.integers(0, 256, 3)
        elif i % 3 == 1:
            img[:, ::2 + i] = 255
        else:
            img = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / f"img{i}.{'png' if i % 2 else 'jpg'}")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


EXAMPLES = """
profiles:
  ex:
    photos: []
    examples: {examples}
    examples_shard: 8
    galleries:
      - model: efficientnet_lite0
        backend: torch
        layers: [conv_stem, blocks.1]
        units: 3
        size: 32
        steps: 2
        device: cpu
        views: [regularized, examples]
"""


def test_a_sharded_scan_resumes_and_its_pages_show_nine_crops_and_the_skipped_files(tmp_path, capfd):
    """A scan stopped after one shard scans only the missing shards when run again; the unit page
    shows 9 top and 9 bottom crops of 96 px and says how many files were skipped."""
    import sys
    from pathlib import Path

    from featgen.site.build import build
    from featgen.site.render.cache import RenderCache
    from featgen.site.render.executors import run_jobs
    from featgen.site.render.plan import plan

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        from make_collection import make_collection
    finally:
        sys.path.remove(str(root / "benchmarks"))
    collection = make_collection(tmp_path / "collection", count=21, seed=5)
    config = tmp_path / "galleries.yml"
    config.write_text(EXAMPLES.format(examples=collection))
    cache = RenderCache(tmp_path / "cache" / "renders")
    p = plan("ex", cache, config=str(config))
    assert len(p.scans) == 4 and [len(s.units) for s in p.scans] == [8, 8, 8, 1]
    run_jobs(p.scans[:1], cache, "local", quiet=True, workers=1)  # a scan stopped after its first shard
    capfd.readouterr()
    stats = build("ex", docs=tmp_path / "docs", cache_dir=tmp_path / "cache", config=str(config), workers=1)
    assert stats["scan"] == {"shards": 4, "scanned": 3, "examples": 2, "images": 21, "skipped": 4}
    out, err = capfd.readouterr()  # the workers' output too
    assert "example scan: 4 of the collection's 25 files skipped as unreadable (e.g. " in out and "Traceback" not in out + err
    again = build("ex", docs=tmp_path / "docs", cache_dir=tmp_path / "cache", config=str(config), quiet=True, workers=1)
    assert again["scan"]["scanned"] == 0 and again["rendered"] == 0
    unit = tmp_path / ".featgen-pages" / "galleries" / "efficientnet_lite0" / "torch" / "blocks.1" / "unit-2"
    html = (unit / "index.html").read_text()
    assert "Of 21 images scanned (4 more skipped: unreadable)" in html
    captions = len(re.findall(r"<small>[^<]+ · -?[\d.]+</small>", html))
    assert captions == 18
    sheet = Image.open(unit / "examples.webp")
    assert sheet.size[0] >= 9 * 96 and sheet.size[1] >= 2 * 96


def test_jpeg_blobs_roundtrip_and_repeat():
    y, x = np.mgrid[0:24, 0:32]
    ims = [np.stack([x * 8, y * 10, (x + y) * 4 + 40 * i], -1).clip(0, 255).astype(np.uint8)[: 16 + i] for i in range(3)]
    data, offsets = encode_jpegs(ims)
    again, _ = encode_jpegs(ims)
    assert data.tobytes() == again.tobytes()
    for i, im in enumerate(ims):
        back = np.asarray(Image.open(io.BytesIO(jpeg_at(data, offsets, i))))
        assert back.shape == im.shape and np.abs(back.astype(int) - im).mean() < 3


def test_offline_photos_are_a_fixed_list_whatever_is_installed(monkeypatch):
    """The same 29 photos in every environment: scikit-learn's samples (installed here for the tests,
    absent from the site's environment) never join the set."""
    import featgen.site.render.examples as ex

    pytest.importorskip("sklearn", reason="shows that an installed scikit-learn adds nothing")
    photos = offline_photos()
    assert [n for n, _ in photos] == list(ex.OFFLINE_PHOTOS) and len(photos) == 29
    assert all(p.is_file() for _, p in photos) and not any(n.startswith("sklearn/") for n, _ in photos)
    real = ex._package_dir
    monkeypatch.setattr(ex, "_package_dir", lambda package: None if package == "skimage" else real(package))
    with pytest.raises(FeatgenError, match=r"need scikit-image \(missing skimage/astronaut.png and 25 more\)"):
        offline_photos()


def test_folder_digest(tmp_path):
    folder = _folder(tmp_path)
    d1 = set_digest(folder_photos(folder))
    Image.new("RGB", (70, 70)).save(folder / "new.png")
    assert set_digest(folder_photos(folder)) != d1
    with pytest.raises(FeatgenError, match="does not exist"):
        folder_photos(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FeatgenError, match="holds no image"):
        folder_photos(empty)


def test_config_names_an_examples_folder(tmp_path):
    from featgen.site.render.config import parse_config

    def profile(examples):
        return {"profiles": {"p": {"examples": examples, "galleries": [{"model": "efficientnet_lite0"}]}}}

    assert parse_config(profile(str(tmp_path)))["p"].examples == str(tmp_path)
    assert parse_config(profile("none"))["p"].examples is None
    with pytest.raises(FeatgenError, match="examples .* does not exist"):
        parse_config(profile(str(tmp_path / "missing")))
