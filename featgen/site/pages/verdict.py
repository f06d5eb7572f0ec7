"""An honest verdict on each rendered unit, computed from its stats alone (no model, no framework).

A gallery tile is only worth showing as "what the unit responds to" if the optimization worked.
The naive render (plain gradient ascent, unbounded pixels) is the reference for how far the unit can
be driven; the regularized render (sigmoid-bounded, transforms) is what the page shows. Finals are
measured on the final image without transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEAD_EPS = 1e-6  # activations at or below this, on a unit that cannot go below 0, count as zero
FAIL_SHARE = 0.25  # regularized under this share of naive ascent's gain: it did not converge
WEAK_SHARE = 0.5  # under this share: it converged only part of the way
# Layer types whose output cannot be negative (torch and Keras class names).
RELU_TYPES = ("ReLU", "ReLU6", "BatchNormAct2d", "Hardtanh")


@dataclass(frozen=True)
class Verdict:
    """``status`` is one of ``ok``, ``weak``, ``failed``, ``dead``, ``nan``, ``floor``; ``label`` is the
    badge text, the same words on unit and layer pages; ``detail`` the sentence with the numbers behind
    it, the quantity the status was decided on among them."""

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


def share_percent(start: float, final: float, reference: float) -> int:
    """The share of the reference's gain over ``start`` that ``final`` reached, in whole percent: the
    one quantity the verdict is decided on and states."""
    return round(max((final - start) / (reference - start), -9.99) * 100)


def unit_verdict(start: float, final: float, naive_final: float, floor: float | None = None) -> Verdict:
    """The verdict on a unit's regularized render, decided on the share of naive ascent's gain that
    it reached (:func:`share_percent`), the number its sentence states.

    Args:
        start: the unit's mean activation on the regularized start image.
        final: the regularized final (mean activation on the final image, without transforms).
        naive_final: the naive ascent's final on the same unit (on its image clipped to [0, 1] where
            known: the reference an image in range can reach).
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
    pct = share_percent(start, final, naive_final)
    said = (f"Regularized final {_num(final)} against naive {_num(naive_final)}, from a start of {_num(start)}: "
            f"the render reached {pct} % of naive ascent's gain")  # fmt: skip
    rule = f"under {FAIL_SHARE * 100:.0f} % counts as not converged, under {WEAK_SHARE * 100:.0f} % as partly converged"
    if pct < FAIL_SHARE * 100:
        return Verdict("failed", "did not converge", f"{said} ({rule}): the tile shows the start image more than the feature.")
    if pct < WEAK_SHARE * 100:
        return Verdict("weak", "partly converged", f"{said} ({rule}): a faint version of the feature.")
    return Verdict("ok", "converged", f"{said}.")


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


def diversity_verdict(similarity: float, count: int, alike: float) -> Verdict | None:
    """The verdict on a unit's ``count`` diversity images from their mean pairwise correlation
    (``similarity``): at or above ``alike`` they are one picture, and the diversity term failed."""
    if count < 2:
        return None
    if not math.isfinite(similarity):
        return Verdict("nan", "no number", "The diversity images' correlation is not a number.")
    r = round(similarity, 2)
    if r >= alike:
        return Verdict("failed", "images alike", f"The {count} images are one picture (mean pairwise correlation {r:.2f}; "
                       f"{alike:.2f} or more counts as alike): the diversity term did not push them apart.")  # fmt: skip
    return Verdict("ok", "pushed apart", f"The {count} images differ: mean pairwise correlation {r:.2f} (under {alike:.2f}).")
