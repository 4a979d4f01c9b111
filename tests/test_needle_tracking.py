"""Needle tracking for HPI's evaluation: RANSAC polynomial on bright edge pixels, tip and shaft errors, on needles
drawn by NeedleReverberation into simulated B-mode images."""

import numpy as np
import pytest

from monai_ext.metrics import fit_needle, needle_errors
from monai_ext.phantoms import generate_us_anatomy, simulate_bmode
from monai_ext.transforms import NeedleReverberation


@pytest.fixture(scope="module")
def bmode():
    return simulate_bmode(generate_us_anatomy(3, shape=(64, 64)), "linear_high_freq", seed=3)  # (1, 64, 64) in [0, 1]


@pytest.mark.parametrize("curvature", [0.0, 0.006])
def test_finds_straight_and_bent_needles_despite_echoes_and_a_gap(bmode, curvature):
    needle = NeedleReverberation([12.0, 6.0], 20.0, 45.0, curvature=curvature, num_echoes=4, echo_spacing=5.0,
                                 dropout=[[0.5, 0.65]])
    fit = fit_needle(needle(bmode))
    err = needle_errors(fit, needle.points)
    assert err["tip"] < 1.5 and err["shaft"] < 0.5, err


def test_errors_grow_when_the_tip_is_invisible(bmode):
    needle = NeedleReverberation([12.0, 6.0], 20.0, 45.0, num_echoes=3, dropout=[[0.7, 1.0]])  # last 30 % hidden
    err = needle_errors(fit_needle(needle(bmode)), needle.points)
    assert err["tip"] > 0.25 * 45.0  # the tracker stops where the visible shaft ends
    assert needle_errors(None, needle.points) == {"tip": float("inf"), "shaft": float("inf")}
    assert fit_needle(np.zeros((1, 32, 32))) is None  # nothing bright: no needle
    with pytest.raises(ValueError, match="grey 2D image"):
        fit_needle(np.zeros((2, 3, 32, 32)))
