"""Page helpers of the galleries: verdicts, reproduction, navigation (plain data, no model unless named)."""

from __future__ import annotations

import math

import pytest

from featgen.site.verdict import floor_of, negative_verdict, unit_extras, unit_verdict


# --- verdict ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "final", "naive", "status"),
    [
        (0.015, -0.03, 93.18, "failed"),  # efficientnet_lite0 conv_stem unit 0 at 96 px, 48 steps
        (0.015, 4.89, 91.82, "failed"),  # unit 1: 5 % of naive
        (0.0, 30.0, 91.82, "weak"),  # 33 %: between a quarter and a half
        (0.1, 60.0, 100.0, "ok"),
        (0.2, 104.195, 80.0, "ok"),  # beats naive
        (0.0, 0.0, 0.0, "dead"),  # vgg16_hed block5_conv3 unit 0: zero at the start and it stays there
        (0.5, 0.4, 0.45, "failed"),  # neither method raised it
        (0.5, 2.0, 0.4, "ok"),  # naive went nowhere, regularized did
    ],
)
def test_unit_verdict_status(start, final, naive, status):
    v = unit_verdict(start, final, naive)
    assert v.status == status, v
    assert v.label and v.detail


def test_unit_verdict_labels_state_the_threshold_and_numbers():
    v = unit_verdict(0.015, 4.89, 91.82)
    assert v.label == "regularized did not converge (final < 25 % of naive)"
    assert "4.89" in v.detail and "91.8" in v.detail and "5 %" in v.detail
    assert unit_verdict(0.0, 0.0, 0.0, floor=0.0).label == "dead at the start image"


def test_unit_verdict_dead_needs_the_floor_or_zeros():
    # after a ReLU, a unit at exactly 0 everywhere is dead; a unit that regularized woke up is not
    assert unit_verdict(0.0, 0.0, 0.0, floor=0.0).status == "dead"
    assert unit_verdict(0.0, 3.0, 0.0, floor=0.0).status == "ok"
    # a linear unit at -2 that nothing moved is not "dead" (it has a gradient), it failed
    assert unit_verdict(-2.0, -2.0, -2.0).status == "failed"


def test_unit_verdict_non_finite():
    assert unit_verdict(0.0, math.nan, 3.0).status == "nan"


def test_negative_verdict_relu_floor():
    v = negative_verdict(0.0, 0.0, floor=floor_of("ReLU"))
    assert (v.status, v.label) == ("floor", "cannot go below 0 (ReLU)")
    # no type known: a unit that starts at 0 and cannot be pushed below is clipped too
    assert negative_verdict(0.0, 0.0).status == "floor"
    assert negative_verdict(0.3, -1.5).status == "ok"
    assert negative_verdict(0.3, 0.5).status == "failed"
    assert negative_verdict(-0.2, -0.1).status == "failed"


def test_floor_of_types():
    assert floor_of("ReLU6") == 0.0 and floor_of("relu") == 0.0
    assert floor_of("Conv2d") is None and floor_of(None) is None


def test_unit_extras_for_a_page_context():
    ctx = {"start": 0.0, "final": 0.0, "naive_final": 0.0}
    out = unit_extras(ctx, negative_final=0.0, layer_type="ReLU")
    assert out["verdict"]["status"] == "dead"
    assert out["negative_verdict"]["label"] == "cannot go below 0 (ReLU)"
    assert "negative_verdict" not in unit_extras({"start": 1.0, "final": 9.0, "naive_final": 10.0})
