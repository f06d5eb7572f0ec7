"""How to render a gallery image yourself: the ``featgen render`` command and the
``featgen.visualize(...)`` call, from a unit's render settings (plain dicts; no model, no framework).

Settings use the keys of :attr:`featgen.vis.Render.settings` (``model``, ``backend``, ``precision``,
``layer``, ``method``, ``size``, ``steps``, ``seed``, ``lr``, ``param``, ``decorrelate``,
``transforms``); a key left out means "the default of :func:`featgen.visualize`", resolved here so
that the page states every number. Each unit draws from its own seeded streams, so rendering one unit
alone gives the picture it got in a batch; the bytes repeat only under the same float rounding (see
"What repeats" in docs/how-it-works.md).
"""

from __future__ import annotations

import shlex
from typing import Any

from ... import __version__

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


def _unit_range(units: list[int] | int) -> str:
    units = [units] if isinstance(units, int) else list(units)
    if len(units) > 1 and units == list(range(units[0], units[-1] + 1)):
        return f"{units[0]}:{units[-1] + 1}"
    return ",".join(str(u) for u in units)


def cli_command(settings: dict[str, Any], units: list[int] | int, out: str | None = None) -> tuple[str, str]:
    """``(command, note)``: the ``featgen render`` line for these settings, and what it writes."""
    s = resolve(settings)
    args = [s["model"], "--backend", s["backend"], "--precision", s["precision"], "--layer", s["layer"],
            "--units", _unit_range(units), "--method", s["method"], "--size", str(s["size"]),
            "--steps", str(s["steps"]), "--seed", str(s["seed"])]  # fmt: skip
    if "transforms" in s:
        args += ["--transforms", str(s["transforms"])]
    if s["lr"] != DEFAULT_LR[s["method"]]:
        args += ["--lr", repr(float(s["lr"]))]
    if s.get("param", "fourier") != "fourier":
        args += ["--param", s["param"]]
    if s.get("decorrelate", True) is False:
        args.append("--no-decorrelate")
    if out:
        args += ["--out", out]
    one = isinstance(units, int) or len(list(units)) == 1
    unit0 = units if isinstance(units, int) else list(units)[0]
    note = f"writes unit-{unit0:04d}.png" if one else "writes grid.png and one unit-NNNN.png per unit"
    return "featgen render " + shlex.join(args), note


def reproduction(settings: dict[str, Any], units: list[int] | int, out: str = "unit.png") -> dict[str, Any]:
    """What a page shows: ``command``, ``note``, ``python``, ``settings`` (resolved) and
    ``version``."""
    command, note = cli_command(settings, units)
    return {"command": command, "note": note, "python": python_call(settings, units, out),
            "settings": resolve(settings), "version": __version__}  # fmt: skip
