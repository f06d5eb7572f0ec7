"""An honest verdict on each rendered unit, computed from its stats alone (no model, no framework).

A gallery tile is only worth showing as "what the unit responds to" if the optimization worked.
The naive render (plain gradient ascent, unbounded pixels) is the reference for how far the unit can
be driven; the regularized render (sigmoid-bounded, transforms) is what the page shows. Finals are
measured on the final image without transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEAD_EPS = 1e-6  # activations at or below this, on a unit that cannot go below 0, count as zero
FAIL_SHARE = 0.25  # regularized final under this share of the naive final: it did not converge
WEAK_SHARE = 0.5  # under this share: it converged only part of the way
# Layer types whose output cannot be negative (torch and Keras class names).
RELU_TYPES = ("ReLU", "ReLU6", "BatchNormAct2d", "Hardtanh")


@dataclass(frozen=True)
class Verdict:
    """``status`` is one of ``ok``, ``weak``, ``failed``, ``dead``, ``nan``; ``label`` is the badge text,
    ``detail`` one sentence with the numbers behind it."""

    status: str
    label: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "label": self.label, "detail": self.detail}


def floor_of(layer_type: str | None) -> float | None:
    """The lowest value a layer's output can take if its type says so (0 after a ReLU), else None."""
    return 0.0 if layer_type and any(t.lower() == layer_type.lower() for t in RELU_TYPES) else None


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def unit_verdict(start: float, final: float, naive_final: float, floor: float | None = None) -> Verdict:
    """The verdict on a unit's regularized render.

    Args:
        start: the unit's mean activation on the regularized start image.
        final: the regularized final (mean activation on the final image, without transforms).
        naive_final: the naive ascent's final on the same unit.
        floor: the lowest value the unit can take (0 after a ReLU), if known.
    """
    values = (start, final, naive_final)
    if not all(math.isfinite(v) for v in values):
        return Verdict("nan", "no number", "A final activation is not finite: the optimization diverged.")
    at_floor = floor is not None and max(values) <= floor + DEAD_EPS
    if at_floor or (floor is None and max(abs(v) for v in values) <= DEAD_EPS):
        return Verdict(
            "dead", "dead at the start image",
            f"The unit is {_num(start)} on the start image and neither method moved it (naive final "
            f"{_num(naive_final)}): no gradient reaches it, so its images are noise, not a feature.",
        )  # fmt: skip
    if naive_final <= start + DEAD_EPS:
        if final > start + DEAD_EPS:
            return Verdict("ok", "converged", f"Regularized {_num(start)} → {_num(final)}; naive ascent did not "
                           f"raise it ({_num(naive_final)}).")  # fmt: skip
        return Verdict("failed", "did not rise", f"Neither method raised the unit above its start {_num(start)} "
                       f"(regularized {_num(final)}, naive {_num(naive_final)}).")  # fmt: skip
    share = (final - start) / (naive_final - start)  # the share of the naive gain the render reached
    pct = f"{max(share, -9.99) * 100:.0f} %"
    if final < FAIL_SHARE * naive_final or share < FAIL_SHARE:
        return Verdict(
            "failed", f"regularized did not converge (final < {FAIL_SHARE * 100:.0f} % of naive)",
            f"Regularized final {_num(final)} against naive {_num(naive_final)} (start {_num(start)}): it reached "
            f"{pct} of the naive gain, so the tile shows the start image more than the feature.",
        )  # fmt: skip
    if final < WEAK_SHARE * naive_final:
        return Verdict(
            "weak", f"partly converged (final < {WEAK_SHARE * 100:.0f} % of naive)",
            f"Regularized final {_num(final)} against naive {_num(naive_final)}: a faint version of the feature.",
        )  # fmt: skip
    return Verdict("ok", "converged", f"Regularized final {_num(final)}, naive {_num(naive_final)} (start {_num(start)}).")


def negative_verdict(start: float, negative_final: float, floor: float | None = None) -> Verdict:
    """The verdict on a unit's negative render (the image that most decreases it)."""
    if not (math.isfinite(start) and math.isfinite(negative_final)):
        return Verdict("nan", "no number", "The negative render's final activation is not finite.")
    known = floor is not None
    floor = 0.0 if floor is None else floor
    if abs(negative_final - floor) <= DEAD_EPS and (known or start >= floor - DEAD_EPS):
        why = "ReLU" if known else "it never went below 0"
        return Verdict(
            "floor", f"cannot go below {_num(floor)} ({why})",
            f"The unit's output is clipped at {_num(floor)}: any image that silences it is optimal, so the "
            f"negative image (final {_num(negative_final)}) shows nothing about what it dislikes.",
        )  # fmt: skip
    if negative_final >= start:
        return Verdict("failed", "did not decrease", f"The negative render ended at {_num(negative_final)}, "
                       f"not below its start {_num(start)}.")  # fmt: skip
    return Verdict("ok", "decreased", f"Start {_num(start)} → {_num(negative_final)}.")


def unit_extras(ctx: dict[str, Any], negative_final: float | None = None, layer_type: str | None = None) -> dict[str, Any]:
    """What a unit page context gains from this module: ``verdict`` and, with a negative render,
    ``negative_verdict`` (plain dicts, for templates).

    The naive reference is ``ctx["naive_valid_final"]`` when the context has it: the naive final
    measured on its image clipped to [0, 1]. Naive ascent does not clip while it runs, so its own
    final can be several times what any real image reaches (5× on ``conv_stem``)."""
    floor = floor_of(layer_type)
    naive = ctx.get("naive_valid_final", ctx["naive_final"])
    out: dict[str, Any] = {"verdict": unit_verdict(ctx["start"], ctx["final"], naive, floor).as_dict()}
    if negative_final is not None:
        out["negative_final"] = float(negative_final)
        out["negative_verdict"] = negative_verdict(ctx["start"], float(negative_final), floor).as_dict()
    return out
