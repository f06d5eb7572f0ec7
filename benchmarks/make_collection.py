"""A test image collection for the dataset-example scan, made from the offline photos.

No natural-image dataset ships offline, so this augments the offline photos (scikit-image,
matplotlib and scikit-learn samples): random crops, flips, rescales and colour jitter, saved as JPEG
and PNG in nested folders, plus a few files the scan must skip and count: a corrupt JPEG, a
truncated one, an empty file and a text file with an image suffix. Seeded: the same arguments make
the same bytes.

    python benchmarks/make_collection.py FOLDER [--count 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

BAD = ("bad/corrupt.jpg", "bad/truncated.jpg", "bad/empty.png", "bad/notes.jpg")  # what the scan must skip


def sources() -> list[Image.Image]:
    """The offline photos: featgen's example set, and scikit-learn's two samples where installed."""
    from featgen.site.render.examples import offline_photos

    out = [Image.open(p).convert("RGB") for _, p in offline_photos()]
    try:
        from sklearn.datasets import load_sample_images

        out += [Image.fromarray(im) for im in load_sample_images().images]
    except ImportError:
        pass
    return out


def make_collection(folder: str | Path, count: int = 2000, seed: int = 0) -> Path:
    """Write ``count`` augmented images (and the :data:`BAD` files) under ``folder``; returns it."""
    root = Path(folder)
    rng = np.random.default_rng(seed)
    base = sources()
    for i in range(count):
        im = base[int(rng.integers(len(base)))]
        w, h = im.size
        side = int(min(w, h) * rng.uniform(0.35, 1.0))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        aspect = rng.uniform(0.75, 1.33)
        out = im.crop((x, y, x + side, y + side)).resize((int(rng.integers(160, 320) * aspect), int(rng.integers(160, 320))),
                                                          Image.Resampling.BILINEAR)  # fmt: skip
        if rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        for enhance in (ImageEnhance.Color, ImageEnhance.Brightness, ImageEnhance.Contrast):
            out = enhance(out).enhance(float(rng.uniform(0.6, 1.4)))
        path = root / f"part{i % 8}" / f"img{i:05d}.{'png' if i % 10 == 0 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.save(path, quality=90) if path.suffix == ".jpg" else out.save(path)
    (root / "bad").mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    base[0].save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    data[600:4000] = rng.integers(0, 256, 3400, dtype=np.uint8).tobytes()  # scrambled entropy-coded data
    (root / BAD[0]).write_bytes(bytes(data[:200]) + b"\xff\xd8" + bytes(data[200:]))
    (root / BAD[1]).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (root / BAD[2]).write_bytes(b"")
    (root / BAD[3]).write_text("not an image\n")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = make_collection(args.folder, args.count, args.seed)
    print(f"{args.count:,} images and {len(BAD)} bad files in {root}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
