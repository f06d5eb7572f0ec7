"""What the commands share: model options, and checks of every flag before any work starts."""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

from .. import limits
from ..backends import PRECISIONS
from ..errors import FeatgenError

MAX_SIZE = limits.LIMITS["size"][1]


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model spec: a built-in name (efficientnet_lite0, vgg16_hed), timm:NAME, torchvision:NAME, keras:NAME or file:PATH")
    p.add_argument("--backend", default="torch", help="torch (default) or tensorflow")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU if there is one)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default: bfloat16 for the network on a GPU with bf16 tensor cores, else float32), "
                        "float32, bfloat16, or float64: slower, for results that must match across backends")  # fmt: skip
    p.add_argument("--arch", default=None,
                   help="for a file: state dict (torch), its architecture: timm:NAME, torchvision:NAME or efficientnet_lite0")  # fmt: skip


def load_model_arg(args: argparse.Namespace):
    """The model that :func:`add_model_args`' options name."""
    from ..models import load_model

    options = {}
    if args.arch is not None:
        if not args.model.startswith("file:"):
            raise FeatgenError(f"--arch is for file: state dicts; {args.model} knows its architecture, drop --arch.")
        options["arch"] = args.arch
    return load_model(args.model, backend=args.backend, device=args.device, precision=args.precision, **options)


def parse_units(text: str | None, limit: int | None, flag: str = "--units") -> list[int] | None:
    """``"0:16"`` → 0..15, ``"3,5,9"`` → [3, 5, 9], ``"7"`` → [7]; each checked against ``limit`` channels.

    The range is checked before it is built, so ``0:100000000000`` costs nothing.
    """
    if text is None:
        return None
    span = f" (0..{limit - 1})" if limit else ""
    usage = f"use a range like 0:16 or a list like 3,5,9{span}"
    try:
        if ":" in text:
            a, _, b = text.partition(":")
            start = int(a) if a.strip() else 0
            stop = int(b) if b.strip() else limit
            if stop is None:
                raise ValueError
            if start >= stop:
                raise FeatgenError(f"{flag} {text}: the range is empty, its start must be below its stop; {usage}.")
            units = range(start, stop)
        else:
            items = [t.strip() for t in text.split(",")]
            if not all(items):
                raise FeatgenError(f"{flag} {text}: an empty item between commas; {usage}.")
            units = [int(t) for t in items]
            dup = sorted({u for u in units if units.count(u) > 1})
            if dup:
                raise FeatgenError(f"{flag} {text}: {', '.join(map(str, dup))} given more than once; list each unit once.")
    except FeatgenError:
        raise
    except ValueError:  # int() of a non-number (FeatgenError is a ValueError too, hence the clause above)
        raise FeatgenError(f"{flag} {text}: not a range or a list of integers; {usage}.") from None
    low, high = (units[0], units[-1]) if isinstance(units, range) else (min(units), max(units))  # O(1) on a range
    if limit is not None and (low < 0 or high >= limit):
        bad = low if low < 0 else high
        raise FeatgenError(f"{flag} {text}: unit {bad} is out of range, this layer has {limit} channels (0..{limit - 1}).")
    return list(units)


def read_image_arg(text: str):
    """``sample:NAME`` → the sample photo; anything else is a path."""
    if text.startswith("sample:"):
        from ..images import sample_image

        return sample_image(text.split(":", 1)[1])
    return text


def parse_target(text: str | None) -> int | str | None:
    """``"-1"`` and ``"285"`` are class indices (checked later), anything else a label."""
    if text is None:
        return None
    return int(text) if re.fullmatch(r"\s*-?\d+\s*", text) else text


def check_int(value: int | None, flag: str, name: str) -> None:
    """One line naming ``flag`` if ``value`` is outside the limit ``name`` of :data:`featgen.limits.LIMITS`
    (the same limit the gallery config checks)."""
    limits.check(name, value, flag)


def _writable_dir(path: Path, flag: str) -> None:
    """Raise unless files can be created in ``path`` or in the folder that would hold it."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise FeatgenError(f"{flag} {path}: {probe} is a file, not a folder; choose another path.")
    try:  # a real write: permission bits say nothing for root, nor for /proc or read-only mounts
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise FeatgenError(f"{flag} {path}: cannot write in {probe} ({exc.strerror}); choose a writable folder.") from None


def check_out_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """An image file to write: a known extension, not a folder, in a writable place. Overwrites a file."""
    from ..images import image_format

    path = Path(path)
    if path.is_dir():
        raise FeatgenError(f"{flag} {path} is a folder: give a file name such as {path / 'maps.png'}.")
    image_format(path, flag)
    _writable_dir(path.parent if str(path.parent) else Path("."), flag)
    return path


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A folder to write into: not an existing file, in a writable place. Files in it are replaced."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FeatgenError(f"{flag} {path} is a file, but this command writes a folder; choose another path.")
    _writable_dir(path, flag)
    return path


def write_json(path: Path, data) -> None:
    """Write ``data`` as JSON, atomically (write then rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
