"""How to get a gallery image's exact bytes yourself: the ``featgen render`` command and the
``featgen.visualize(...)`` call, from a unit's render settings (plain dicts; no model, no framework).

Settings use the keys of :attr:`featgen.vis.Render.settings` (``model``, ``backend``, ``precision``,
``layer``, ``method``, ``size``, ``steps``, ``seed``, ``lr``, ``param``, ``decorrelate``,
``transforms``); a key left out means "the default of :func:`featgen.visualize`", resolved here so
that the page states every number. Each unit draws from its own seeded streams, so rendering one unit
alone gives the bytes it got in a batch.
"""

from __future__ import annotations

import argparse
import functools
import shlex
from typing import Any

from .. import __version__

NAIVE = ("naive", "octaves")
# featgen.visualize's defaults, per method (a test checks them against Render.settings).
DEFAULT_LR = {"naive": 10.0, "octaves": 10.0, "regularized": 0.05, "maco": 0.05}
DEFAULT_STEPS = {"naive": 30, "octaves": 20, "regularized": 512, "maco": 256}
DEFAULTS = {"backend": "torch", "precision": "float32", "method": "regularized", "size": 128, "seed": 0,
            "param": "fourier", "decorrelate": True, "transforms": "lucid"}  # fmt: skip
# Settings keys the Python call passes, in this order.
CALL_KEYS = ("method", "size", "steps", "seed", "lr", "param", "decorrelate", "transforms")


def resolve(settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting the render used, defaults filled in; keys a method ignores are dropped."""
    s = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    method = s["method"]
    s.setdefault("steps", DEFAULT_STEPS[method])
    s.setdefault("lr", DEFAULT_LR[method])
    if method in NAIVE:
        for k in ("param", "decorrelate", "transforms"):
            s.pop(k, None)
    elif method == "maco":
        s.pop("param", None)
    return s


def _py(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else repr(value)


def python_call(settings: dict[str, Any], units: list[int] | int, out: str = "unit.png") -> str:
    """A short script that renders ``units`` (one unit, or a layer's list) with ``settings`` and saves
    the first image (one unit) or the grid (several) to ``out``."""
    s = resolve(settings)
    one = isinstance(units, int)
    args = ", ".join(f"{k}={_py(s[k])}" for k in CALL_KEYS if k in s)
    lines = [
        f"import featgen  # featgen {__version__}",
        f"model = featgen.load_model({s['model']!r}, backend={s['backend']!r}, precision={s['precision']!r})",
        f"r = featgen.visualize(model, {s['layer']!r}, units={[units] if one else list(units)!r}, {args})",
        f"featgen.save_image(r.images[0], {out!r})" if one else f"featgen.save_image(featgen.grid(r.images, margin=5), {out!r})",
    ]  # fmt: skip
    return "\n".join(lines)


@functools.cache
def _render_options() -> frozenset[str]:
    """The options ``featgen render`` accepts (read from its parser: the command may grow)."""
    from ..cli.render import add_arguments

    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    return frozenset(o for a in p._actions for o in a.option_strings)


def _unit_range(units: list[int] | int) -> str:
    units = [units] if isinstance(units, int) else list(units)
    if len(units) > 1 and units == list(range(units[0], units[-1] + 1)):
        return f"{units[0]}:{units[-1] + 1}"
    return ",".join(str(u) for u in units)


def cli_command(settings: dict[str, Any], units: list[int] | int, out: str | None = None) -> tuple[str | None, str]:
    """``(command, note)``: the ``featgen render`` line for these settings, or None with the reason
    when the command line cannot express one of them (then the Python call is the way)."""
    s = resolve(settings)
    opts = _render_options()
    args = [s["model"], "--backend", s["backend"], "--precision", s["precision"], "--layer", s["layer"],
            "--units", _unit_range(units), "--method", s["method"], "--size", str(s["size"]),
            "--steps", str(s["steps"]), "--seed", str(s["seed"])]  # fmt: skip
    missing = []
    if "transforms" in s:
        args += ["--transforms", str(s["transforms"])]
    if s["lr"] != DEFAULT_LR[s["method"]]:
        (args.extend(["--lr", repr(float(s["lr"]))]) if "--lr" in opts else missing.append(f"lr={s['lr']}"))
    if s.get("param", "fourier") != "fourier":
        (args.extend(["--param", s["param"]]) if "--param" in opts else missing.append(f"param={s['param']!r}"))
    if s.get("decorrelate", True) is False:
        flag = "--no-decorrelate"
        (args.append(flag) if flag in opts else missing.append("decorrelate=False"))
    if out:
        args += ["--out", out]
    if missing:
        return None, f"`featgen render` has no option for {', '.join(missing)}: use the Python call."
    one = isinstance(units, int) or len(list(units)) == 1
    unit0 = units if isinstance(units, int) else list(units)[0]
    note = f"writes unit-{unit0:04d}.png" if one else "writes grid.png and one unit-NNNN.png per unit"
    return "featgen render " + shlex.join(args), note


def reproduction(settings: dict[str, Any], units: list[int] | int, out: str = "unit.png") -> dict[str, Any]:
    """What a page shows: ``command`` (or None), ``note``, ``python``, ``settings`` (resolved) and
    ``version``."""
    command, note = cli_command(settings, units)
    return {"command": command, "note": note, "python": python_call(settings, units, out),
            "settings": resolve(settings), "version": __version__}  # fmt: skip
