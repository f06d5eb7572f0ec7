"""The bad-input and fault sweep: one case per defect that a careless or hostile user found (issue 21).

Each case sets up a world in a temporary folder, runs one command in this process, and asserts one
line on stderr, the exit status, no traceback, and that no file changed outside the folders the
command may write (for a bad config: none at all). One case is a success by nature (a user's file
in the galleries folder survives a rebuild), and says so. Plans are tiny: 32 px, 3 steps, 2 units,
one view. Faults are the kernel's own where it can give them unprivileged (a full disk: RLIMIT_FSIZE),
else made at the system-call boundary (a read-only cache: these tests run as root).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import stat
import threading
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from featgen.site.render.cache import npz_bytes

TINY = """
profiles:
  tiny:
    photos: [chelsea]
    examples: none
    chunk: 2
    galleries:
      - model: {model}
        backend: torch
        layers: [conv_stem]
        units: 2
        size: {size}
        steps: {steps}
        device: cpu
        views: {views}
"""


def write_config(folder: Path, text: str | bytes | None = None, **kw) -> Path:
    """A tiny config (or ``text`` as it is) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "galleries.yml"
    if text is None:
        text = TINY.format(**{"model": "efficientnet_lite0", "size": 32, "steps": 3, "views": "[regularized]", **kw})
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def site_args(config: Path, cache: Path, docs: Path | None = None) -> list[str]:
    return ["--config", str(config), "--profile", "tiny", "--cache", str(cache)] + (["--docs", str(docs)] if docs else [])


def snapshot(folder: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed) with its kind and bytes, except under ``skip``."""
    out = {}
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        dirs[:] = [d for d in dirs if base / d not in skip]
        for name in dirs + files:
            p = base / name
            if p in skip:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[p.relative_to(folder).as_posix()] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[p.relative_to(folder).as_posix()] = ("file", p.read_bytes())
            else:
                out[p.relative_to(folder).as_posix()] = ("other", stat.S_IFMT(st.st_mode))
    return out


def entries(cache: Path) -> dict[str, Path]:
    """The entry folders of a cache by what they hold: a view's name, or ``model-info``."""
    out = {}
    for meta in (cache / "renders").glob("??/*/meta.json"):
        m = json.loads(meta.read_text())["meta"]
        out[m.get("view") or "model-info"] = meta.parent
    return out


def rewrite(entry: Path, data: bytes | None = None, meta: Callable[[dict], None] | None = None) -> None:
    """Replace an entry's npz and/or edit its meta, keeping its checksum valid (a hostile entry)."""
    info = json.loads((entry / "meta.json").read_text())
    if data is not None:
        (entry / "data.npz").write_bytes(data)
        info["sha256"] = hashlib.sha256(data).hexdigest()
    if meta is not None:
        meta(info["meta"])
    (entry / "meta.json").write_text(json.dumps(info))


def zip_bomb(mib: int = 256) -> bytes:
    """An npz whose images member holds a valid header for 2 images of 32 px, then ``mib`` MiB of zeros
    (a thousandth of that compressed)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (2, 32, 32, 3)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("images.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            f.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(mib):
                f.write(zeros)
    return buf.getvalue()


@contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """A full disk, as the kernel reports it to this process: a write past ``nbytes`` of any file
    fails with EFBIG (RLIMIT_FSIZE, with SIGXFSZ ignored so the write fails instead of killing us)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def read_only(monkeypatch, folder: Path) -> None:
    """Make every write under ``folder`` fail with EROFS, as a read-only mount does (tests run as root,
    for whom a chmod'ed folder stays writable): making folders, creating, renaming or deleting files."""
    root = str(folder.resolve())

    def inside(path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(root)
        except TypeError:  # a file descriptor
            return False

    def refuse(name, original, check=lambda *a, **k: True):
        def guarded(*args, **kw):
            if any(inside(a) for a in args[:2] if isinstance(a, (str, os.PathLike))) and check(*args, **kw):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[0]))
            return original(*args, **kw)

        return guarded

    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    for name in ("mkdir", "rename", "replace", "unlink", "rmdir"):
        monkeypatch.setattr(os, name, refuse(name, getattr(os, name)))
    monkeypatch.setattr(os, "open", refuse("open", os.open, lambda path, flags, *a, **k: flags & writes))
    for mod in (builtins, io):
        monkeypatch.setattr(mod, "open", refuse("open", mod.open, lambda f, mode="r", *a, **k: any(c in mode for c in "wax+")))


@dataclass
class Case:
    """One command and what it must do. ``may_change``: the folders it may write (the rest of the
    world must stay byte for byte as it was); ``line``: what its one line on stderr says."""

    argv: list[str]
    line: str | None
    may_change: tuple[Path, ...] = ()
    code: int = 2
    cli: str = "site"
    around: Callable = contextlib.nullcontext
    check: Callable[[], None] = lambda: None
    cleanup: Callable[[], None] = lambda: None  # runs even when the case fails

    def __post_init__(self) -> None:  # a command that may write the docs may write the gallery's pages beside them
        self.may_change = tuple(self.may_change) + tuple(p.parent / ".featgen-pages" for p in self.may_change if p.name == "docs")


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache and docs built from the tiny plan (one regularized job of 2 units, and the model info)."""
    from featgen.site.__main__ import main

    root = tmp_path_factory.mktemp("filled")
    config = write_config(root)
    assert main(["build", *site_args(config, root / "cache", root / "docs")]) == 0
    assert set(entries(root / "cache")) == {"regularized", "model-info"}
    return root


def _world(tmp_path: Path, filled: Path, pages: bool = False) -> tuple[Path, Path, Path]:
    """A copy of the filled cache and docs, and the config, inside this test's world; with ``pages``
    the gallery's pages too (without them, the pages stage reads every entry)."""
    shutil.copytree(filled / "cache", tmp_path / "cache", symlinks=True)
    shutil.copytree(filled / "docs", tmp_path / "docs", symlinks=True)
    if pages:
        shutil.copytree(filled / ".featgen-pages", tmp_path / ".featgen-pages", symlinks=True)
    return write_config(tmp_path / "project"), tmp_path / "cache", tmp_path / "docs"


# --- the cases ---------------------------------------------------------------------------------------
def docs_is_root(w: Path, filled: Path, monkeypatch) -> Case:
    config, cache, _ = _world(w, filled)
    made = [Path("/galleries"), Path("/tutorials"), Path("/.featgen-build.lock")]
    before = [p.exists() for p in made]
    after = []

    def cleanup():  # a regression writes at the root: remove what it made there, whatever else failed
        after.extend(p.exists() for p in made)
        for p, b, a in zip(made, before, after):
            if a and not b:
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    def check():
        assert after == before, "pages wrote at the filesystem root"

    return Case(["pages", *site_args(config, cache, Path("/"))], "is not a project's docs folder (it is the root",
                check=check, cleanup=cleanup)  # fmt: skip


def _users_folder_as_docs(w: Path, filled: Path, name: str, command: str, line: str) -> Case:
    """A folder of a user's (with a galleries folder of their own) given as --docs."""
    config, cache, _ = _world(w, filled)
    (w / name / "galleries").mkdir(parents=True)
    (w / name / ".bashrc").write_text("export PATH\n")
    (w / name / "galleries" / "holiday.jpg").write_bytes(b"a user's photo")
    return Case([command, *site_args(config, cache, w / name)], line)


def docs_is_home(w: Path, filled: Path, monkeypatch) -> Case:
    monkeypatch.setenv("HOME", str(w / "home"))
    return _users_folder_as_docs(w, filled, "home", "pages", "(it is the home folder)")


def docs_without_a_project(w: Path, filled: Path, monkeypatch) -> Case:
    return _users_folder_as_docs(w, filled, "papers", "build", "no index.md in it, no mkdocs.yml beside it")


def users_file_in_galleries_survives(w: Path, filled: Path, monkeypatch) -> Case:
    """A success by nature: a rebuild keeps the user's file, and deletes the stale page its manifest lists."""
    config, cache, docs = _world(w, filled, pages=True)
    out = docs / "galleries"
    (out / "notes.md").write_text("my notes")
    (out / "efficientnet_lite0" / "extra").mkdir()
    (out / "efficientnet_lite0" / "extra" / "mine.png").write_bytes(b"mine")
    stale = out / "efficientnet_lite0" / "torch" / "blocks.9" / "index.md"  # a layer the last build had
    stale.parent.mkdir()
    stale.write_text("old page")
    manifest = json.loads((out / ".featgen-manifest.json").read_text())
    manifest["files"].append("efficientnet_lite0/torch/blocks.9/index.md")
    (out / ".featgen-manifest.json").write_text(json.dumps(manifest))

    def check():
        assert (out / "notes.md").read_text() == "my notes"
        assert (out / "efficientnet_lite0" / "extra" / "mine.png").read_bytes() == b"mine"
        assert not stale.exists() and not stale.parent.exists()  # featgen's, and no longer written
        assert (docs.parent / ".featgen-pages/galleries/efficientnet_lite0/torch/conv_stem/unit-1/index.html").is_file()

    return Case(["pages", *site_args(config, cache, docs)], None, may_change=(cache, docs), code=0, check=check)


def tutorials_md5_kept_on_a_bad_config(w: Path, filled: Path, monkeypatch) -> Case:
    _, cache, docs = _world(w, filled)
    (docs / "tutorials").mkdir(exist_ok=True)
    (docs / "tutorials" / "plot_intro.py.md5").write_text("0123")
    (docs / "tutorials" / ".featgen-engine-hash").write_text("an older engine")
    config = write_config(w / "project", size=8)
    return Case(["pages", *site_args(config, cache, docs)], "size must be an integer >= 16")


def nothing_made_before_the_config_is_valid(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project", views="[regularized, negatve]")

    def check():
        assert not (w / "new-cache").exists() and not (w / "new-docs").exists()

    return Case(["build", *site_args(config, w / "new-cache", w / "new-docs")], "unknown view 'negatve'", check=check)


def zip_bomb_entry(w: Path, filled: Path, monkeypatch) -> Case:
    config, cache, docs = _world(w, filled)
    rewrite(entries(cache)["regularized"], data=zip_bomb())

    @contextmanager
    def traced():
        tracemalloc.start()
        try:
            yield
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 << 20, f"reading the entry took {peak >> 20} MB"

    return Case(["pages", *site_args(config, cache, docs)], "would take over", may_change=(cache, docs), around=traced,
                check=lambda: _quarantined(cache, 1))  # fmt: skip


def too_few_images(w: Path, filled: Path, monkeypatch) -> Case:
    from featgen.site.render.cache import read_npz

    config, cache, docs = _world(w, filled)
    entry = entries(cache)["regularized"]
    arrays = read_npz((entry / "data.npz").read_bytes())
    rewrite(entry, data=npz_bytes({**arrays, "images": arrays["images"][:1]}))  # one image, two units
    return Case(["pages", *site_args(config, cache, docs)], "images has shape (1, 32, 32, 3), expected (2, 32, 32, 3)",
                may_change=(cache, docs), check=lambda: _quarantined(cache, 1))  # fmt: skip


def model_info_table_is_a_number(w: Path, filled: Path, monkeypatch) -> Case:
    config, cache, docs = _world(w, filled)
    rewrite(entries(cache)["model-info"], meta=lambda m: m.update(table=5))
    return Case(["pages", *site_args(config, cache, docs)], "model info: table is not a list", may_change=(cache, docs),
                check=lambda: _quarantined(cache, 1))  # fmt: skip


def model_info_huge_channels(w: Path, filled: Path, monkeypatch) -> Case:
    config, cache, docs = _world(w, filled)

    def widen(meta):
        next(r for r in meta["table"] if r[0] == "conv_stem")[3] = 10**12

    rewrite(entries(cache)["model-info"], meta=widen)
    return Case(["pages", *site_args(config, cache, docs)], "the channels of 'conv_stem' is not an integer in 1..",
                may_change=(cache, docs), check=lambda: _quarantined(cache, 1))  # fmt: skip


def symlinked_corrupt_entry(w: Path, filled: Path, monkeypatch) -> Case:
    """The link's target lies outside the cache: it must be neither read, written nor deleted."""
    config, cache, docs = _world(w, filled)
    entry = entries(cache)["regularized"]
    target = w / "elsewhere" / entry.name
    target.parent.mkdir()
    shutil.move(entry, target)
    raw = bytearray((target / "data.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (target / "data.npz").write_bytes(bytes(raw))
    entry.symlink_to(target, target_is_directory=True)

    def check():
        _quarantined(cache, 1)
        assert not entry.exists() and not entry.is_symlink() and (target / "data.npz").is_file()

    return Case(["pages", *site_args(config, cache, docs)], "is a symbolic link", may_change=(cache, docs), check=check)


def full_disk_in_render(w: Path, filled: Path, monkeypatch) -> Case:
    config, cache, _ = _world(w, filled)
    entry = entries(cache)["regularized"]
    shutil.rmtree(entry)
    if not any(entry.parent.iterdir()):
        entry.parent.rmdir()

    def check():
        assert not entry.exists() and (not entry.parent.exists() or any(entry.parent.iterdir()))  # no empty folder
        assert not list((cache / "renders").rglob("*.tmp"))

    return Case(["render", *site_args(config, cache)], "cannot write to the cache", may_change=(cache,),
                around=lambda: file_size_limit(2048), check=check)  # fmt: skip


def full_disk_in_pages(w: Path, filled: Path, monkeypatch) -> Case:
    config, cache, docs = _world(w, filled)
    before = snapshot(docs / "galleries")

    pages = docs.parent / ".featgen-pages"
    before_pages = snapshot(pages / "galleries")

    def check():
        assert snapshot(docs / "galleries") == before  # the last build's pages, as they were
        assert snapshot(pages / "galleries") == before_pages
        assert not list(docs.glob(".galleries*")) and not list(pages.glob(".galleries*"))

    return Case(["pages", *site_args(config, cache, docs)], "cannot write to the docs folder", may_change=(cache, docs),
                around=lambda: file_size_limit(1024), check=check)  # fmt: skip


def read_only_cache_in_plan(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project")
    cache = w / "cache"
    cache.mkdir()  # an empty cache: the plan would store the model's info there
    return Case(["plan", *site_args(config, cache)], "cannot write to the cache",
                around=lambda: _context(lambda: read_only(monkeypatch, cache)))  # fmt: skip


def config_not_utf8(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project", TINY.format(model="efficientnet_lite0", size=32, steps=3, views="[regularized]")
                          .replace("photos: [chelsea]", "description: caf\xe9\n    photos: [chelsea]").encode("latin-1"))  # fmt: skip
    return Case(["build", *site_args(config, w / "cache", w / "docs")], "is not UTF-8 text (byte 0xe9 at line 4)")


def views_without_regularized(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project", views="[naive]")
    return Case(["build", *site_args(config, w / "cache", w / "docs")], "lacks regularized, which every gallery page shows")


def size_over_the_cli_limit(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project", size=100_000)
    return Case(["render", *site_args(config, w / "cache")], "size must be an integer >= 16 and <= 2,048, got 100000")


def steps_over_the_cli_limit(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project", steps=10**9)
    return Case(["render", *site_args(config, w / "cache")], "steps must be an integer >= 1 and <= 100,000")


BOMB = "".join(f"x-{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))


def yaml_alias_bomb(w: Path, filled: Path, monkeypatch) -> Case:
    text = 'x-a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB
    text += TINY.format(model="efficientnet_lite0", size=32, steps=3, views="[regularized]").replace("[conv_stem]", "*i")
    config = write_config(w / "project", text)
    return Case(["plan", *site_args(config, w / "cache")], "over the limit of 200,000")


def long_value_is_cut(w: Path, filled: Path, monkeypatch) -> Case:
    """A 3 MB model name (within the size limits) is quoted in a few dozen characters."""
    config = write_config(w / "project", model="x" * 3_000_000)
    return Case(["plan", *site_args(config, w / "cache")], "unknown model 'xxxxxx")


def examples_is_the_root(w: Path, filled: Path, monkeypatch) -> Case:
    text = TINY.format(model="efficientnet_lite0", size=32, steps=3, views="[regularized, photos]")
    config = write_config(w / "project", text.replace("examples: none", "examples: /"))
    return Case(["build", *site_args(config, w / "cache", w / "docs")], "examples folder '/' is the root of the filesystem")


def empty_model_name(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project", model='"timm:"')
    return Case(["plan", *site_args(config, w / "cache")], "the model spec 'timm:' names no model: write timm:NAME")


def state_dict_without_arch(w: Path, filled: Path, monkeypatch) -> Case:
    (w / "weights.pth").write_bytes(b"PK a state dict")
    config = write_config(w / "project", model=f"file:{w / 'weights.pth'}")
    return Case(["plan", *site_args(config, w / "cache")], "weights.pth is a torch state dict: name its architecture with arch:")


def chunk_zero(w: Path, filled: Path, monkeypatch) -> Case:
    config = write_config(w / "project")
    return Case(["render", *site_args(config, w / "cache"), "--chunk", "0"], "--chunk 0 is out of range: use 1..4096")


def fifo_as_image(w: Path, filled: Path, monkeypatch) -> Case:
    fifo = w / "photo.jpg"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock():  # a safety net, not an ordering: if the read blocks, end it (the case then fails)
        if not done.wait(60):
            with open(fifo, "wb"):
                pass

    @contextmanager
    def watched():
        t = threading.Thread(target=unblock, daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join()

    argv = ["maps", "efficientnet_lite0", "--layer", "conv_stem", "--image", str(fifo), "--out", str(w / "maps.png")]
    return Case(argv, "photo.jpg is a named pipe (FIFO), not a regular file", cli="featgen", around=watched)


def keras_layer_name_with_quotes(w: Path, filled: Path, monkeypatch) -> Case:
    keras = pytest.importorskip("keras", reason="the Keras case needs keras")
    inp = keras.Input((16, 16, 3))
    out = keras.layers.Conv2D(2, 3, name="ok")(keras.layers.Conv2D(2, 3, name='conv">x')(inp))
    path = w / "model.keras"
    keras.Model(inp, out).save(path)
    return Case(["layers", f"file:{path}", "--backend", "tensorflow"], "TensorFlow cannot run a layer named 'conv\">x'",
                cli="featgen")  # fmt: skip


def _context(setup: Callable[[], None]):
    @contextmanager
    def ctx():
        setup()
        yield

    return ctx()


def _quarantined(cache: Path, n: int) -> None:
    moved = list((cache / "renders" / "quarantine").glob("*/*"))
    assert len(moved) == n, moved


CASES = {
    # data loss
    "docs folder is /": docs_is_root,
    "docs folder is $HOME": docs_is_home,
    "docs folder of no project": docs_without_a_project,
    "a user's file in galleries survives (success)": users_file_in_galleries_survives,
    "tutorials' md5 kept on a bad config": tutorials_md5_kept_on_a_bad_config,
    "no folder or lock before the config is valid": nothing_made_before_the_config_is_valid,
    # the cache trusts its entries
    "zip bomb with a valid checksum": zip_bomb_entry,
    "fewer images than units": too_few_images,
    "model info table: 5": model_info_table_is_a_number,
    "model info channels: 10**12": model_info_huge_channels,
    "corrupt symlinked entry": symlinked_corrupt_entry,
    # faults
    "full disk in render": full_disk_in_render,
    "full disk in pages": full_disk_in_pages,
    "read-only cache in plan": read_only_cache_in_plan,
    # config
    "config not UTF-8": config_not_utf8,
    "views: [naive]": views_without_regularized,
    "size over the CLI's limit": size_over_the_cli_limit,
    "steps over the CLI's limit": steps_over_the_cli_limit,
    "YAML alias bomb": yaml_alias_bomb,
    "a 3 MB value is cut": long_value_is_cut,
    "examples: /": examples_is_the_root,
    'model: "timm:"': empty_model_name,
    "file: state dict without arch": state_dict_without_arch,
    "--chunk 0": chunk_zero,
    # inputs
    "a FIFO as an image": fifo_as_image,
    'a Keras layer named conv">x': keras_layer_name_with_quotes,
}


@pytest.mark.parametrize("name", list(CASES))
def test_sweep(name, tmp_path, filled, capsys, monkeypatch):
    world = tmp_path / "world"
    world.mkdir()
    case = CASES[name](world, filled, monkeypatch)
    before = snapshot(world, case.may_change)
    if case.cli == "site":
        from featgen.site.__main__ import main
    else:
        from featgen.cli import main
    try:
        with case.around():
            code = main(case.argv)
    finally:
        monkeypatch.undo()  # the read-only world ends here
        case.cleanup()
    out, err = capsys.readouterr()
    assert "Traceback" not in err and code == case.code, (code, err[-2000:])
    if case.line is None:
        assert err == ""
    else:
        assert len(err.splitlines()) == 1 and len(err) < 1000, err[:2000]
        assert case.line in err, err
    assert snapshot(world, case.may_change) == before, "a file outside the folders the command may write changed"
    case.check()


# --- what the commands do instead: render again, and say so --------------------------------------
def test_build_renders_a_bad_entry_again_and_says_where_it_went(tmp_path, filled, capsys):
    from featgen.site.__main__ import main

    config, cache, docs = _world(tmp_path, filled)
    entry = entries(cache)["regularized"]
    good = (entry / "data.npz").read_bytes()
    arrays = np.load(entry / "data.npz")
    rewrite(entry, data=npz_bytes({**arrays, "images": arrays["images"][:1]}))
    assert main(["build", *site_args(config, cache, docs)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("bad cache entry quarantined and rendered again: "))
    assert entry.name in line and "images has shape (1, 32, 32, 3)" in line and "quarantine" in line
    assert (entry / "data.npz").read_bytes() == good  # rendered again, the same bytes
    _quarantined(cache, 1)


def test_render_moves_a_symlinked_entry_aside_and_never_writes_through_it(tmp_path, filled, capsys):
    """The link's target, outside the cache, keeps its bytes; the entry is rendered into a real folder."""
    from featgen.site.__main__ import main

    config, cache, _ = _world(tmp_path, filled)
    entry = entries(cache)["regularized"]
    target = tmp_path / "elsewhere"
    shutil.move(entry, target)
    (target / "meta.json").unlink()  # incomplete: "render" used to write into, and delete from, the target
    before = snapshot(target)
    entry.symlink_to(target, target_is_directory=True)
    assert main(["render", *site_args(config, cache)]) == 0
    assert "1 jobs rendered" in capsys.readouterr().out
    assert snapshot(target) == before and not entry.is_symlink() and (entry / "meta.json").is_file()
    _quarantined(cache, 1)


def test_a_state_dict_with_arch_is_planned_with_its_architecture(tmp_path, capsys):
    """``arch`` travels with the jobs (``file:PATH?arch=ARCH``), so every process that loads the model can."""
    import torch

    from featgen.models.torch_sources import _architecture
    from featgen.site.__main__ import main
    from featgen.site.render.cache import RenderCache
    from featgen.site.render.plan import plan

    weights = tmp_path / "lite0.pth"
    torch.save(_architecture("efficientnet_lite0").state_dict(), weights)
    text = TINY.format(model=f"file:{weights}", size=32, steps=3, views="[regularized]")
    config = write_config(tmp_path, text.replace("device: cpu", "device: cpu\n        arch: efficientnet_lite0"))
    assert main(["plan", *site_args(config, tmp_path / "cache")]) == 0
    assert "conv_stem" in capsys.readouterr().out
    jobs = plan("tiny", RenderCache(tmp_path / "cache" / "renders"), config=str(config), loader=None).jobs
    assert {j.model for j in jobs} == {f"file:{weights}?arch=efficientnet_lite0"}
