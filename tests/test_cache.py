"""The render cache reads nothing it has not checked, and the cache, docs and lock folders belong to the
user: what featgen may write there, and what it refuses. Plain data, no model."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from featgen.errors import FeatgenError
from featgen.site.pages.install import MANIFEST, check_docs, install, read_manifest
from featgen.site.render.cache import BuildLock, RenderCache, check_cache_folder, npz_bytes, read_npz
from featgen.site.render.entries import job_arrays
from featgen.site.render.jobs import RenderJob, cache_key

ARRAYS = {"images": np.zeros((2, 32, 32, 3), np.uint8), "start": np.zeros(2, np.float32),
          "final": np.ones(2, np.float32), "losses": np.zeros((2, 3), np.float32)}  # fmt: skip
JOB = RenderJob("m", "torch", "cpu", "float32", "l", (0, 1), "regularized", {"size": 32, "steps": 3})
KEY = cache_key({"job": 1})


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


# --- reading an npz ---------------------------------------------------------------------------------
def test_a_good_entry_reads_back_against_its_job():
    arrays = read_npz(npz_bytes(ARRAYS), job_arrays(JOB, 224))
    assert set(arrays) == set(ARRAYS) and arrays["images"].shape == (2, 32, 32, 3)


@pytest.mark.parametrize("members,reason", [
    ({"images.npy": _npy(np.zeros((2, 32, 32, 3), np.uint8)) + bytes(50_000)}, "header and its size disagree"),
    ({"images.npy": _npy(np.zeros(3, object))}, "objects"),
    ({"images.npy": _npy(np.zeros((2, 32, 32, 3), np.uint8)), "evil.txt": b"x"}, "other members"),
    ({"images.npy": _npy(np.zeros((2, 64, 64, 3), np.uint8))}, "images has shape (2, 64, 64, 3), expected (2, 32, 32, 3)"),
    ({"images.npy": _npy(np.zeros((2, 32, 32, 3), np.float64))}, "images has dtype <f8, expected u1"),
    ({"images.npy": _npy(np.zeros((2, 32, 32, 3), np.uint8))}, "no start, final, losses array"),
])  # fmt: skip
def test_a_bad_npz_is_refused_before_it_is_decompressed(members, reason):
    with pytest.raises(ValueError) as info:
        read_npz(_npz(members), job_arrays(JOB, 224))
    assert reason in str(info.value)


def test_an_npz_is_bounded_without_an_expectation_too():
    bomb = _npz({"images.npy": _npy(np.zeros(1 << 20, np.uint8))})  # 1 MB that compresses to 1 kB
    with pytest.raises(ValueError, match="would take over 1,000 bytes"):
        read_npz(bomb, most=1000)


def test_photo_offsets_and_indices_are_checked_against_the_blobs():
    job = RenderJob("m", "torch", "cpu", "float32", "l", (0,), "examples", {"top": 1, "crop": 8, "examples": "offline"})
    good = {"files": np.asarray(["a.jpg"]), "counts": np.asarray([1, 0]), "silent": np.zeros(1, np.int64), "before_activation": np.ones(1, bool),
            "mean": np.zeros(1, np.float32), "top_jpeg": np.zeros(4, np.uint8), "top_offsets": np.asarray([0, 4]),
            "top_file": np.zeros((1, 1), np.int32), "top_value": np.zeros((1, 1), np.float32),
            "bottom_jpeg": np.zeros(4, np.uint8), "bottom_offsets": np.asarray([0, 4]),
            "bottom_file": np.zeros((1, 1), np.int32), "bottom_value": np.zeros((1, 1), np.float32),
            "predicted": np.zeros(0, np.int64)}  # fmt: skip
    assert set(read_npz(npz_bytes(good), job_arrays(job, 64))) == set(good)
    for bad, reason in [({"top_file": np.full((1, 1), 7, np.int32)}, "points past the 1 files named"),
                        ({"bottom_offsets": np.asarray([0, 9])}, "do not cut bottom_jpeg")]:  # fmt: skip
        with pytest.raises(ValueError, match=reason):
            read_npz(npz_bytes({**good, **bad}), job_arrays(job, 64))


# --- entries: links, quarantine, writes ------------------------------------------------------------------
def test_a_symlinked_entry_is_not_there_and_a_put_moves_the_link_aside(tmp_path):
    cache = RenderCache(tmp_path / "renders")
    cache.put(KEY, ARRAYS, {"view": "regularized"})
    entry = tmp_path / "renders" / KEY[:2] / KEY
    target = tmp_path / "outside"
    entry.rename(target)
    entry.symlink_to(target, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    assert not cache.has(KEY)
    cache.put(KEY, ARRAYS, {"view": "regularized"})
    assert not entry.is_symlink() and cache.get(KEY, job_arrays(JOB, 224)) is not None
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    (moved,) = (tmp_path / "renders" / "quarantine").glob("*/*")
    assert moved.is_symlink() and "symbolic link" in cache.corrupt[0]


def test_a_link_in_place_of_a_key_folder_is_quarantined_not_followed(tmp_path):
    cache = RenderCache(tmp_path / "renders")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / KEY).mkdir(parents=True)
    (tmp_path / "renders").mkdir()
    (tmp_path / "renders" / KEY[:2]).symlink_to(elsewhere, target_is_directory=True)
    assert cache.get(KEY) is None and KEY in cache.quarantined
    assert (elsewhere / KEY).is_dir() and not (tmp_path / "renders" / KEY[:2]).exists()


def test_a_quarantine_that_is_a_link_is_one_line(tmp_path):
    cache = RenderCache(tmp_path / "renders")
    cache.put(KEY, ARRAYS, {})
    (tmp_path / "renders" / KEY[:2] / KEY / "meta.json").write_text("[]")
    (tmp_path / "renders" / "quarantine").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(FeatgenError, match="quarantine' is not a folder: move it away"):
        cache.get(KEY)


def test_a_failed_write_leaves_no_entry_folder(tmp_path, monkeypatch):
    import errno

    import featgen.site.render.cache as cache_module

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module, "atomic_write", full)
    with pytest.raises(FeatgenError, match="No space left on device; free some space, or pass --cache"):
        RenderCache(tmp_path / "renders").put(KEY, ARRAYS, {})
    assert list((tmp_path / "renders").iterdir()) == []


def test_a_lock_file_planted_as_a_link_is_not_written_through(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / ".featgen-build.lock").symlink_to(victim)
    with pytest.raises(FeatgenError, match="is a link: remove it"):
        BuildLock(tmp_path / "cache").__enter__()
    assert victim.read_text() == "keep me"


# --- the cache and docs folders ------------------------------------------------------------------------
def test_folder_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".profile").write_text("")
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "mkdocs.yml").write_text("site_name: x\n")
    (project / "docs" / "guide.md").write_text("")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("")
    assert check_docs(project / "docs") == project / "docs"  # a mkdocs.yml beside it
    assert check_docs(tmp_path / "new" / "docs") and check_cache_folder(tmp_path / "new" / "cache")
    for folder, match in [("/", "the root"), (tmp_path / "home", "the home folder"), (tmp_path / "notes", "no index.md")]:
        with pytest.raises(FeatgenError, match=match):
            check_docs(folder)
    for folder, match in [("/", "the root"), (tmp_path / "home", "the home folder"), (tmp_path / "notes", "no featgen cache")]:
        with pytest.raises(FeatgenError, match=match):
            check_cache_folder(folder)
    (project / "docs" / "galleries").symlink_to(tmp_path / "notes", target_is_directory=True)
    with pytest.raises(FeatgenError, match="is a link or a file"):
        check_docs(project / "docs")
    assert not (tmp_path / "new").exists()  # checks make nothing


def _staging(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_install_replaces_its_own_files_and_touches_no_other(tmp_path):
    out = tmp_path / "galleries"
    install(_staging(tmp_path / "s1", {"index.md": "1", "m/a.md": "1", "m/old/b.md": "1"}), out)
    (out / "m" / "mine.md").write_text("user")
    install(_staging(tmp_path / "s2", {"index.md": "2", "m/a.md": "2"}), out)
    assert (out / "index.md").read_text() == "2" and (out / "m" / "mine.md").read_text() == "user"
    assert not (out / "m" / "old").exists()  # featgen's, and no longer written: gone with its folder
    assert read_manifest(out) == ["index.md", "m/a.md"]


def test_a_folder_of_featgens_files_alone_moves_whole_and_a_users_file_keeps_its_folder(tmp_path):
    """A unit's folder that holds only files of the last build, each written again or no longer
    written, is replaced by one rename; a folder with a user's file (or a user's empty folder) in it,
    or a kept file, has its files moved one by one, and what is not featgen's stays."""
    out = tmp_path / "galleries"
    first = {f"l/unit-{u}/{n}": "1" for u in range(4) for n in ("index.html", "a.webp", "old.webp")}
    install(_staging(tmp_path / "s1", {**first, "l/index.html": "1"}), out)
    (out / "l/unit-1/mine.txt").write_text("user")
    (out / "l/unit-2/notes").mkdir()
    inode = {u: (out / f"l/unit-{u}").stat().st_ino for u in range(4)}
    second = {f"l/unit-{u}/{n}": "2" for u in range(4) for n in ("index.html", "a.webp")}
    install(_staging(tmp_path / "s2", {**second, "l/index.html": "2"}), out, keep={"l/unit-3/old.webp"})
    assert (out / "l/unit-0").stat().st_ino != inode[0]  # moved whole: featgen's files alone
    assert all((out / f"l/unit-{u}").stat().st_ino == inode[u] for u in (1, 2, 3))  # file by file
    assert (out / "l/unit-1/mine.txt").read_text() == "user" and (out / "l/unit-2/notes").is_dir()
    assert (out / "l/unit-3/old.webp").read_text() == "1"  # kept
    assert all((out / rel).read_text() == "2" for rel in second)
    assert not any((out / f"l/unit-{u}/old.webp").exists() for u in (0, 1, 2))
    assert read_manifest(out) == sorted([*second, "l/index.html", "l/unit-3/old.webp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["galleries", "s1", "s2"]  # nothing left beside


def test_a_link_in_a_folder_of_featgens_files_is_replaced_not_followed(tmp_path):
    out = tmp_path / "galleries"
    install(_staging(tmp_path / "s1", {"l/unit-0/index.html": "1", "l/unit-0/a.webp": "1"}), out)
    (tmp_path / "elsewhere.webp").write_text("theirs")
    (out / "l/unit-0/a.webp").unlink()
    (out / "l/unit-0/a.webp").symlink_to(tmp_path / "elsewhere.webp")
    install(_staging(tmp_path / "s2", {"l/unit-0/index.html": "2", "l/unit-0/a.webp": "2"}), out)
    assert not (out / "l/unit-0/a.webp").is_symlink() and (out / "l/unit-0/a.webp").read_text() == "2"
    assert (tmp_path / "elsewhere.webp").read_text() == "theirs"


@pytest.mark.parametrize("files", [["../outside.md"], ["/etc/passwd"], ["a/../../b"], "all"])
def test_a_manifest_that_is_not_featgens_deletes_nothing(tmp_path, files):
    out = tmp_path / "galleries"
    out.mkdir()
    (tmp_path / "outside.md").write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"kind": "featgen-galleries-1", "files": files}))
    with pytest.raises(FeatgenError, match="is not featgen's list of its pages"):
        install(_staging(tmp_path / "s", {"index.md": "x"}), out)
    assert (tmp_path / "outside.md").read_text() == "keep" and not (out / "index.md").exists()


def test_a_link_on_the_way_to_a_page_is_refused_before_anything_moves(tmp_path):
    out = tmp_path / "galleries"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "m").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(FeatgenError, match="is a link: featgen writes pages only inside"):
        install(_staging(tmp_path / "s", {"index.md": "x", "m/a.md": "x"}), out)
    assert list((tmp_path / "elsewhere").iterdir()) == [] and not (out / "index.md").exists()


@pytest.mark.slow
def test_what_the_renderer_writes_is_what_the_cache_expects():
    """Every view's arrays, as the render stage makes them at a size where naive renders lose their
    border (80 px -> 30 px), pass the check the cache reads them with."""
    from featgen.site.render.config import Gallery, Profile
    from featgen.site.render.plan import plan
    from featgen.site.render.renderer import Renderer

    g = Gallery.make("efficientnet_lite0", layers=("conv_stem",), units=(0, 1), size=80, steps=2, naive_steps=2,
                     diversity=2, device="cpu", transforms="none")  # fmt: skip
    profile = Profile("p", (g,), photos=("chelsea",), crop=32, top=2, examples=None)
    renderer = Renderer()
    jobs = plan(profile, None, loader=renderer.model).jobs
    assert {j.view for j in jobs} == {"regularized", "naive", "negative", "diversity", "photos", "classes"}
    for job in jobs:
        arrays = renderer.run(job)
        input_size = renderer.model(job.model, job.backend, job.device).input_size
        read_npz(npz_bytes(arrays), job_arrays(job, input_size))
        if job.view == "naive":
            assert arrays["images"].shape == (2, 30, 30, 3)
