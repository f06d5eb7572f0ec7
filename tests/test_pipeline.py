"""The staged gallery pipeline: job keys, config checks, pages from a cache alone, resume after a kill,
locks, unusable caches, Ctrl-C and hostile names. Plans are tiny (32 px, a few steps, few units)."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from featgen.errors import FeatgenError
from featgen.site.render.cache import BuildLock, RenderCache

ROOT = Path(__file__).resolve().parents[1]

TINY = """
profiles:
  tiny:
    description: "a test plan"
    photos: [chelsea, coffee]
    chunk: {chunk}
    galleries:
      - model: efficientnet_lite0
        backend: torch
        layers: [conv_stem]
        units: {units}
        size: 32
        steps: 3
        naive_steps: 2
        diversity: 2
        device: cpu
        views: {views}
"""
ALL_VIEWS = "[regularized, naive, negative, diversity, photos, examples]"


def _config(folder: Path, chunk: int = 2, units: int = 4, views: str = ALL_VIEWS) -> Path:
    path = folder / "galleries.yml"
    path.write_text(TINY.format(chunk=chunk, units=units, views=views))
    return path


def _site(*args: str, cwd: Path | None = None, check: bool = False, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEATGEN_PROGRESS": "0", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "featgen.site", *args], cwd=cwd or ROOT, env=env, capture_output=True,
                         text=True, timeout=600, **kw)  # fmt: skip
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def _args(config: Path, cache: Path, docs: Path | None = None) -> list[str]:
    out = ["--config", str(config), "--profile", "tiny", "--cache", str(cache)]
    return out + (["--docs", str(docs)] if docs is not None else [])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _job_keys(config: Path, cache: Path) -> list[str]:
    """The keys of the entries the plan's pages show: its jobs' and its scanned views' (from the cached
    model info: no model loads)."""
    from featgen.site.render.plan import plan

    def refuse(*a):
        raise AssertionError("the plan should come from the cached model info")

    p = plan("tiny", RenderCache(cache / "renders"), config=str(config), loader=refuse)
    return [j.key for j in p.jobs + p.derived]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache and docs built from the tiny plan with every view."""
    root = tmp_path_factory.mktemp("filled")
    config = _config(root)
    _site("build", *_args(config, root / "cache", root / "docs"), check=True)
    return root, config


# --- the job contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_job_key_is_the_key_of_its_render_settings(backend, request):
    from featgen.site.render.config import Gallery, Profile
    from featgen.site.render.jobs import RenderJob, cache_key
    from featgen.site.render.plan import model_info, view_settings
    from featgen.vis import ALGORITHM_VERSION, visualize
    from featgen.vis.render import BACKEND_REVISIONS

    lite0 = request.getfixturevalue("lite0" if backend == "torch" else "lite0_tf")
    info = model_info("efficientnet_lite0", backend, "float32", None, loader=lambda *a: lite0)
    g = Gallery.make("efficientnet_lite0", backend=backend, size=32, steps=2, naive_steps=2)
    for view, method in [("regularized", "regularized"), ("naive", "naive")]:
        settings = view_settings(view, g, info, "conv_stem", Profile("p", (g,)))
        # each backend's renders also changed alone (Keras: BatchNorms folded; torch: a closing
        # convolution computes the target channels only): its key holds its own revision
        assert settings["algorithm"] == f"{ALGORITHM_VERSION}+{BACKEND_REVISIONS[backend]}"
        job = RenderJob("efficientnet_lite0", backend, "cpu", "float32", "conv_stem", (0, 1), view, settings)
        kw = {k: settings[k] for k in ("size", "steps", "seed", "lr")}
        if method == "regularized":
            kw.update(param=settings["param"], decorrelate=settings["decorrelate"], transforms=settings["transforms"])
        r = visualize(lite0, "conv_stem", units=[0, 1], method=method, progress=False, **kw)
        from_render = {k: r.settings[k] for k in job.options} | {"units": r.units, "view": view}
        assert set(job.options) <= set(r.settings), set(job.options) - set(r.settings)
        assert cache_key(from_render) == job.key, view
    other = RenderJob("efficientnet_lite0", backend, "cuda", "float32", "conv_stem", (0, 1), "naive", settings)
    assert other.key == job.key  # where a job runs is not part of what it renders
    assert RenderJob("efficientnet_lite0", backend, "cpu", "float32", "conv_stem", (0, 2), "naive", settings).key != job.key


# --- config --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bad_config_one_line_each_before_any_render(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("""
profiles:
  tiny:
    galleries:
      - model: efficientnet_lit0
        layers: [conv_stem]
        units: -2
        stpes: 3
        views: [regularised]
        layer_options: {conv_stem: {lr: -1}}
""")
    res = _site("plan", "--config", str(bad), "--profile", "tiny", "--cache", str(tmp_path / "cache"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 5, lines
    for needle, hint in [("'efficientnet_lit0'", "efficientnet_lite0"), ("units", ">= 1"), ("'stpes'", "steps"),
                         ("'regularised'", "regularized"), ("lr", "positive")]:  # fmt: skip
        assert any(needle in line and hint in line for line in lines), (needle, lines)
    assert not (tmp_path / "cache").exists()  # nothing loaded, nothing rendered


@pytest.mark.slow
def test_unknown_layer_and_unit_stop_the_plan_before_any_render(filled, tmp_path):
    from featgen.site.render.executors import run_jobs
    from featgen.site.render.plan import plan

    root, config = filled
    cache_dir = tmp_path / "cache"
    shutil.copytree(root / "cache", cache_dir)
    cache = RenderCache(cache_dir / "renders")
    before = _files(cache_dir)
    for layers, units, match in [("[conv_stm]", 2, "no layer 'conv_stm'.*conv_stem"), ("['blocks.9*']", 2, "no layer matches"),
                                 ("[conv_stem]", "[40]", "unit 40 is out of range.*32 channels")]:  # fmt: skip
        text = TINY.format(chunk=2, units=units, views=ALL_VIEWS).replace("layers: [conv_stem]", f"layers: {layers}")
        (tmp_path / "bad.yml").write_text(text)
        with pytest.raises(FeatgenError, match=match):
            run_jobs(plan("tiny", cache, config=str(tmp_path / "bad.yml")).jobs, cache)
    assert _files(cache_dir) == before


def test_a_list_of_units_is_rendered_in_order_and_once():
    """A layer's pages, overview sheets and units.json list its units in one order: a gallery's list
    is taken sorted, each unit once."""
    from types import SimpleNamespace

    from featgen.site.render.plan import select_units

    row = SimpleNamespace(channels=32, shape=(8, 8, 32))
    info = SimpleNamespace(spec="m", backend="torch", row=lambda native: row)
    assert select_units(info, "x", "x", (9, 2, 9, 0)) == (0, 2, 9)
    assert select_units(info, "x", "x", 3) == (0, 1, 2) and len(select_units(info, "x", "x", None)) == 32


def test_profiles_come_from_the_config_file():
    from featgen.site.render.config import get_profile

    quick = get_profile("quick")
    assert [(g.model, g.backend, g.layers, g.units, g.size, g.steps) for g in quick.galleries] == [
        ("efficientnet_lite0", "torch", ("conv_stem", "blocks.2", "blocks.4", "blocks.5", "blocks.6"), 4, 96, 48),
        ("vgg16_hed", "torch", ("block1_conv1", "block3_conv1", "block3_conv2", "block3_conv3", "block5_conv3"), 4, 96, 48),
        ("vgg16_hed", "tensorflow", ("block1_conv1", "block3_conv1", "block5_conv3"), 4, 96, 48),
    ]
    assert all(g.layers == ("conv",) and g.units is None for g in get_profile("full").galleries)


# --- pages from a cache alone --------------------------------------------------------------------------
CHECK_MODULES = """
import sys
from featgen.site.__main__ import main
rc = main(sys.argv[1:])
print("FRAMEWORKS", sorted(m for m in ("torch", "tensorflow", "keras", "jax") if m in sys.modules))
sys.exit(rc)
"""


def _run_without_frameworks(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEATGEN_PROGRESS": "0", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", CHECK_MODULES, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["pages", "build"])
@pytest.mark.slow
def test_pages_from_a_copied_cache_render_nothing_and_import_no_framework(filled, tmp_path, command):
    root, config = filled
    cache = tmp_path / "elsewhere" / "cache"
    shutil.copytree(root / "cache", cache)
    res = _run_without_frameworks(command, *_args(config, cache, tmp_path / "docs"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "FRAMEWORKS []" in res.stdout and "nothing to render" in res.stdout
    for folder in ("docs/galleries", ".featgen-pages/galleries"):  # the index pages and the gallery's own
        original, copy = _files(root / folder), _files(tmp_path / folder)
        assert copy == original, folder  # the same pages and images, byte for byte
    copy = _files(tmp_path / ".featgen-pages/galleries")
    unit = copy["efficientnet_lite0/torch/conv_stem/unit-3/index.html"].decode()
    assert all(f"efficientnet_lite0/torch/conv_stem/unit-3/{f}" in copy for f in ("diversity.webp", "examples.webp", "photos.webp"))
    assert "diversity.webp" in unit and 'class="fg-kernel"' in unit


@pytest.mark.slow
def test_pages_say_which_render_is_missing(filled, tmp_path):
    root, config = filled
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    victim = next(k for k in _job_keys(config, cache))
    shutil.rmtree(cache / "renders" / victim[:2] / victim)
    res = _run_without_frameworks("pages", *_args(config, cache, tmp_path / "docs"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "the cache has no render of efficientnet_lite0/torch/conv_stem/" in res.stderr and len(res.stderr.splitlines()) == 1
    assert "FRAMEWORKS []" in res.stdout and not (tmp_path / "docs" / "galleries").exists()
    assert not list((tmp_path / "docs").glob(".galleries*"))  # the staging folders went with the error
    assert not list((tmp_path / ".featgen-pages").glob(".galleries*")) and not (tmp_path / ".featgen-pages/galleries").exists()


@pytest.mark.slow
def test_pages_say_when_entries_come_from_different_numerics(filled, tmp_path):
    """Entries record what their rounding came from; pages that mix two kinds say so (one GPU entry
    among CPU ones here), and pages of one kind say nothing."""
    import json

    root, config = filled
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    metas = [cache / "renders" / k[:2] / k / "meta.json" for k in _job_keys(config, cache)]
    numerics = [json.loads(m.read_text())["meta"]["numerics"] for m in metas]
    kinds = {json.dumps({k: v for k, v in n.items() if k != "batch"}, sort_keys=True) for n in numerics}
    assert len(kinds) == 1 and '"threads": 1' in kinds.pop()  # the build's workers: one thread each
    # and each optimization its batch: a job's 2 units, or their 2 x 2 diversity images (the scan has none)
    assert sorted({n.get("batch") for n in numerics}, key=str) == [2, 4, None]
    res = _run_without_frameworks("pages", *_args(config, cache, tmp_path / "docs"))
    assert res.returncode == 0 and "note:" not in res.stdout
    entry = json.loads(metas[0].read_text())
    entry["meta"]["numerics"] = {"framework": "torch 2.11.0", "device": "cuda"}
    metas[0].write_text(json.dumps(entry))
    res = _run_without_frameworks("pages", *_args(config, cache, tmp_path / "docs"))
    assert res.returncode == 0, res.stderr
    note = next(line for line in res.stdout.splitlines() if line.startswith("note:"))
    assert "1 under torch 2.11.0 on cuda" in note and f"{len(metas) - 1} under torch " in note


# --- resume ----------------------------------------------------------------------------------------------
def _entries(cache: Path, keys: list[str]) -> list[str]:
    return [k for k in keys if (cache / "renders" / k[:2] / k / "meta.json").exists()]


# A render that stops at a chosen point: the driver, ``main`` here, runs with RenderCache.put wrapped.
# ``die K``: SIGKILL the build while it writes its (K+1)-th job entry (a temporary file is down, no
# entry yet). ``wait K``: after the K-th job entry, write one byte to the file descriptor given as
# the first argument and wait for a signal: SIGINT (the test's Ctrl-C) or SIGUSR1 (go on). Model-info
# entries do not count.
STOPPING = """
import os, signal, sys, tempfile
from featgen.site.render import cache
from featgen.site.__main__ import main
fd, mode, k = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
put, stored = cache.RenderCache.put, []
def stopping_put(self, key, arrays, meta):
    if "view" in meta and mode == "die" and len(stored) == k:
        folder = self.root / key[:2] / key
        folder.mkdir(parents=True, exist_ok=True)
        tmp, _ = tempfile.mkstemp(dir=folder, prefix=".data.npz.", suffix=".tmp")
        os.write(tmp, b"PK half an npz")
        os.kill(os.getpid(), signal.SIGKILL)
    put(self, key, arrays, meta)
    if "view" in meta:
        stored.append(key)
        if mode == "wait" and len(stored) == k:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1})  # none is lost before the wait
            os.write(fd, b"x")
            got = signal.sigwait({signal.SIGINT, signal.SIGUSR1})
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGUSR1})
            if got == signal.SIGINT:
                raise KeyboardInterrupt  # what Python's SIGINT handler raises wherever the build is
cache.RenderCache.put = stopping_put
sys.exit(main(sys.argv[4:]))
"""


def _stopping(mode: str, k: int, *args: str) -> tuple[subprocess.Popen, int]:
    """The build or render ``args``, stopping as ``STOPPING`` says; returns it and the read end of its pipe."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEATGEN_PROGRESS": "0", "MPLBACKEND": "Agg"}
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", STOPPING, str(w), mode, str(k), *args], env=env, pass_fds=(w,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a terminal's Ctrl-C: the build must not inherit an ignored SIGINT (as a test run
                            # started in the background of a non-interactive shell would pass on)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    os.close(w)
    return proc, r


@pytest.mark.slow
def test_render_killed_after_k_jobs_resumes_with_only_the_missing_ones(filled, tmp_path, capsys):
    """The uninterrupted run is the ``filled`` build; this render is killed while it writes its third
    entry, and a rerun renders only the missing ones, byte for byte as the build did."""
    root, config = filled
    clean, killed = root / "cache", tmp_path / "killed"
    keys = _job_keys(config, clean)
    n = len(keys)
    assert n == 10 and len(_entries(clean, keys)) == n  # 9 render jobs and the examples entry
    proc, r = _stopping("die", 2, "render", *_args(config, killed))
    proc.communicate(timeout=300)
    os.close(r)
    assert proc.returncode == -signal.SIGKILL
    assert len(_entries(killed, keys)) == 2 and len(list((killed / "renders").rglob(".data.npz.*.tmp"))) == 1
    res = _site("render", *_args(config, killed), check=True)
    assert f"{n - 3} jobs rendered; 2 of {n - 1} jobs cached" in res.stdout, res.stdout  # the render jobs
    assert "example scan: 1 of 1 shards scanned (the collection: 29 images read, 0 files skipped); examples of 1 layers merged" in res.stdout
    for k in keys:  # every entry, byte for byte, as the uninterrupted run wrote it
        for name in ("data.npz", "meta.json"):
            assert (killed / "renders" / k[:2] / k / name).read_bytes() == (clean / "renders" / k[:2] / k / name).read_bytes()
    leftovers = [p for p in (killed / "renders").rglob("*") if p.is_file() and p.name not in ("data.npz", "meta.json")]
    assert not leftovers  # the killed write's temporary file went when its job was rendered again
    from featgen.site.__main__ import main  # a third run, here: it loads no model

    assert main(["render", *_args(config, killed)]) == 0
    assert capsys.readouterr().out.count("nothing to render") == 1


# --- locks, unusable caches, Ctrl-C ----------------------------------------------------------------------
@pytest.mark.slow
def test_a_held_lock_stops_a_second_build_with_one_line(filled, tmp_path):
    root, config = filled
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    with BuildLock(cache):
        res = _site("build", *_args(config, cache, tmp_path / "docs"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1
    assert ".featgen-build.lock" in res.stderr and f"pid {os.getpid()}" in res.stderr
    assert _site("build", *_args(config, cache, tmp_path / "docs")).returncode == 0  # released


@pytest.mark.slow
def test_a_second_build_while_one_runs_stops_and_the_first_completes(filled, tmp_path):
    """The first build holds the locks and waits (after its first entry) while a second one starts:
    the second stops with one line and changes nothing; the first, let go, leaves a complete site."""
    root, config = filled
    cache, docs = tmp_path / "cache", tmp_path / "docs"
    shutil.copytree(root / "cache", cache)
    victim = _job_keys(config, cache)[0]
    shutil.rmtree(cache / "renders" / victim[:2] / victim)  # one job for the first build to render
    first, r = _stopping("wait", 1, "build", *_args(config, cache, docs))
    try:
        assert os.read(r, 1) == b"x"  # the first build has stored its entry and holds both locks
        before = _files(cache)
        second = _site("build", *_args(config, cache, docs))
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert len(second.stderr.splitlines()) == 1 and "lock" in second.stderr
        assert _files(cache) == before and not (docs / "galleries").exists()
        first.send_signal(signal.SIGUSR1)  # go on
    finally:
        os.close(r)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert _files(docs / "galleries") == _files(root / "docs" / "galleries")  # complete and identical
    assert not list(docs.glob(".galleries*"))  # no staging or old tree left


@pytest.mark.slow
def test_unusable_cache_gives_one_line(tmp_path):
    config = _config(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    res = _site("build", *_args(config, tmp_path / "file", tmp_path / "docs"))
    assert res.returncode == 2 and "is a file, not a folder" in res.stderr and len(res.stderr.splitlines()) == 1
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder is still writable")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = _site("build", *_args(config, ro, tmp_path / "docs"))
    finally:
        ro.chmod(0o700)
    assert res.returncode == 2 and "is not writable" in res.stderr and "--cache" in res.stderr
    assert len(res.stderr.splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_during_a_build_exits_cleanly(tmp_path):
    """Ctrl-C while the build renders (it has stored its second entry and waits for the signal): exit
    130 with one line, no traceback from the build or its workers, and no pages."""
    config = _config(tmp_path, chunk=1, units=6, views="[regularized, naive]")
    cache, docs = tmp_path / "cache", tmp_path / "docs"
    proc, r = _stopping("wait", 2, "build", *_args(config, cache, docs))
    try:
        assert os.read(r, 1) == b"x"
    finally:
        os.close(r)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and err.strip().splitlines() == [
        "featgen.site: interrupted; finished renders stay in the cache, and a rerun resumes from them."
    ]
    assert len(list((cache / "renders").rglob("meta.json"))) == 3  # the model info and the two entries
    assert not list(docs.glob(".galleries*")) and not (docs / "galleries").exists()


# --- hostile names -----------------------------------------------------------------------------------------
def test_a_model_named_index_md_cannot_collide_with_the_index_page(tmp_path):
    from featgen.models.base import LayerInfo
    from featgen.site.pages.templating import slug
    from featgen.site.pages.write import write_index_pages

    layer = {"layer": "c", "type": "Conv2d", "shape": [4, 4, 2], "channels": 2, "units": 1, "flagged": [],
             "preview": "preview.webp", "preview_width": 64, "compare": None}  # fmt: skip
    assert slug("index.md") != "index.md" and slug("INDEX.MD") != "INDEX.MD" and slug("index") != "index"
    table = [LayerInfo("c", "Conv2d", (4, 4, 2), 2)]
    entry = {"backend": "torch", "source": "s", "input_size": 32, "table": table, "aliases": {}, "layers": [layer]}
    write_index_pages(tmp_path, {"index.md": [entry], "m": [entry]}, type("P", (), {"name": "p", "description": "d"}))
    index = (tmp_path / "index.md").read_text()
    assert index.startswith("# Galleries") and (tmp_path / slug("index.md") / "index.md").is_file()
    assert f"]({slug('index.md')}/index.md)" in index


# --- plan and estimate ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_plan_prints_jobs_and_unit_steps_and_device_reaches_the_jobs(filled):
    from featgen.site.render.plan import parse_device, plan

    root, config = filled
    res = _site("plan", *_args(config, root / "cache"), check=True)
    # 4 units in chunks of 2: 2 jobs per optimized view, 1 scan: regularized 4x3, naive 4x2, negative 4x3,
    # diversity 4x2x3 unit-steps, the scan 4
    assert "conv_stem" in res.stdout and "4 of 32 units" in res.stdout and "9 jobs" in res.stdout
    assert "tiny: 1 layers, 4 units, 9 jobs (0 not in the cache), 60 unit-steps" in res.stdout
    assert "example scan: 1 shards (0 not in the cache) over 1 models, 29 images each; examples of 1 layers" in res.stdout
    assert parse_device("torch=cuda:1,tensorflow=cpu") == {"torch": "cuda:1", "tensorflow": "cpu"}
    with pytest.raises(FeatgenError, match="BACKEND=DEVICE"):
        parse_device("torch=,tf=cpu")
    p = plan("tiny", RenderCache(root / "cache" / "renders"), config=str(config), device="tensorflow=cuda,torch=cpu:0")
    assert {j.device for j in p.jobs} == {"cpu:0"}
    assert {j.key for j in p.jobs + p.derived} == set(_job_keys(config, root / "cache"))  # the device is not in the key


@pytest.mark.slow
def test_estimate_projects_the_plan_from_a_calibration(tmp_path, capsys):
    from featgen.site.__main__ import main  # in this process: the calibration loads no framework anew

    config = _config(tmp_path, chunk=2, units=4, views="[regularized]")
    assert main(["plan", *_args(config, tmp_path / "cache"), "--estimate", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    line = out.strip().splitlines()[-1]
    assert line.startswith("estimate on cpu: ") and "for the whole plan" in line
    row = next(r for r in out.splitlines() if r.startswith("efficientnet_lite0 (torch)"))
    assert "regularized" in row and "2 jobs" in row and "unit-steps/s" in row


_REUSE = """
import ctypes, resource, sys
from featgen.site.render.renderer import Renderer
Renderer()  # a render process: large freed blocks are kept for reuse
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def touch(n=64 * 2**20):  # an activation-sized block, written and freed as a render step does
    p = libc.malloc(n); ctypes.memset(p, 1, n); libc.free(p)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc settings are glibc's")
def test_a_renderer_reuses_freed_activation_memory():
    """In a render process a 64 MiB block freed and allocated again costs no new page faults; with
    glibc's default (which a user restores with MALLOC_MMAP_MAX_) it is mapped afresh: 16,384."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def faults(**extra) -> int:
        out = subprocess.run([sys.executable, "-c", _REUSE], env={**env, **extra}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    assert faults() < 100
    assert faults(MALLOC_MMAP_MAX_="65536") > 10_000


def test_auto_precision_takes_the_entry_the_cache_has_else_the_devices(monkeypatch):
    """A plan's ``auto`` job names the precision its entry has in the cache (so a cache rendered in
    bfloat16 on a GPU serves a laptop's plan), else what auto means on the gallery's device; its key
    holds the precision it names."""
    import featgen.backends.torch as torch_backend
    from featgen.site.render.jobs import RenderJob
    from featgen.site.render.plan import Precision

    job = RenderJob("efficientnet_lite0", "torch", "auto", "auto", "blocks.4", (0, 1), "regularized",
                    {"precision": "auto", "steps": 4})  # fmt: skip
    keys: set[str] = set()
    cache = type("Cache", (), {"has": lambda self, key: key in keys})()
    assert Precision("auto", "torch", "cpu", cache).job(job).precision == "float32"  # the CPU: float32, nothing asked
    monkeypatch.setattr(torch_backend, "default_precision", lambda device: "bfloat16")
    bf16 = Precision("auto", "torch", "cuda", cache).job(job)
    assert (bf16.precision, bf16.options["precision"]) == ("bfloat16", "bfloat16")
    keys.add(Precision._as(job, "float32").key)
    assert Precision("auto", "torch", "cuda", cache).job(job).precision == "float32"  # the cache's entry
    keys.clear()
    keys.add(bf16.key)
    assert Precision("auto", "torch", "cpu", cache).job(job).key == bf16.key  # a GPU's cache serves the CPU's plan
    assert Precision("float32", "torch", "cuda", cache).job(job).precision == "float32"  # an explicit precision
    assert Precision("auto", "tensorflow", "gpu", cache).job(job).precision == "float32"
