"""Speckle-texture statistics and the style-fidelity ratio (monai_ext.metrics.speckle_texture)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from monai_ext.metrics import SpeckleStyleFidelity, speckle_distance, speckle_statistics, style_fidelity_ratio


def _speckle(seed: int, grain: tuple[float, float] = (0.6, 0.6), mean: float = 0.4, shape=(64, 64)) -> np.ndarray:
    """Rayleigh-like speckle: the magnitude of smoothed complex Gaussian noise, ``grain`` = smoothing sigma (rows, cols)."""
    rng = np.random.default_rng(seed)
    z = ndimage.gaussian_filter(rng.normal(size=shape), grain) + 1j * ndimage.gaussian_filter(rng.normal(size=shape), grain)
    a = np.abs(z)
    return np.clip(a / a.mean() * mean * 0.6, 0, 1)[None]


def test_autocorrelation_width_follows_the_grain_and_its_direction():
    fine, coarse_lateral = speckle_statistics(_speckle(0, (0.6, 0.6))), speckle_statistics(_speckle(0, (0.6, 2.0)))
    assert coarse_lateral["acf_lateral"] > 1.8 * fine["acf_lateral"]
    assert abs(coarse_lateral["acf_axial"] - fine["acf_axial"]) < 0.3 * fine["acf_axial"]
    coarse_axial = speckle_statistics(torch.as_tensor(_speckle(1, (2.0, 0.6))))  # torch input too
    assert coarse_axial["acf_axial"] > 1.8 * fine["acf_axial"]


def test_brightness_and_blur_move_the_expected_statistics():
    a = _speckle(2)
    brighter = speckle_distance(np.clip(a * 1.5, 0, 1), a)
    assert brighter["local_mean"] > 0.05 and brighter["envelope_snr"] < 0.05  # a gain change keeps mean/std
    blurred = ndimage.gaussian_filter(a[0], 1.5)[None]
    d = speckle_distance(blurred, a)
    assert d["log_spectrum"] > 0.3 and d["local_std"] > 0.01
    assert all(v == 0 for v in speckle_distance(a, a).values())


def test_field_of_view_outside_is_ignored():
    a = _speckle(3)
    sector = a.copy()
    sector[0, :20, :15] = 0  # a black corner, as outside a curvilinear fan
    s, s_full = speckle_statistics(sector), speckle_statistics(a)
    assert s["fov_fraction"] < s_full["fov_fraction"]
    assert abs(s["local_mean"].mean() - s_full["local_mean"].mean()) < 0.02


def test_fidelity_ratio_zero_for_the_reference_texture_one_for_no_change():
    content, reference = _speckle(4, (0.6, 0.6), 0.3), _speckle(5, (1.5, 2.0), 0.5)
    same_texture_as_reference = _speckle(6, (1.5, 2.0), 0.5)
    r_none = style_fidelity_ratio(content, content, reference)
    assert r_none["mean"] == pytest.approx(1.0)
    r_good = style_fidelity_ratio(same_texture_as_reference, content, reference)
    assert r_good["mean"] < 0.4


def test_accumulator_pools_per_style_pair_and_skips_same_style():
    m = SpeckleStyleFidelity()
    fine = [_speckle(10 + i, (0.6, 0.6), 0.3) for i in range(3)]
    coarse = [_speckle(20 + i, (1.5, 2.0), 0.5) for i in range(3)]
    m(np.stack(coarse), np.stack(fine), np.stack(coarse[1:] + coarse[:1]), ("fine", "coarse"), oracle=np.stack(coarse))
    m(np.stack(fine), np.stack(fine), np.stack(fine[1:] + fine[:1]), ("fine", "fine"))
    res = m.aggregate()
    assert res["pairs"] == 1 and set(res["per_pair"]) == {"fine->coarse", "fine->fine"}
    assert res["per_pair"]["fine->coarse"]["images"] == 3
    assert res["mean_ratio"] < 0.4  # restyled images carry the reference texture
    with pytest.raises(ValueError, match="same number"):
        m(np.stack(fine), np.stack(fine[:2]), np.stack(fine), ("fine", "fine"))
    m.reset()
    with pytest.raises(RuntimeError, match="nothing accumulated"):
        m.aggregate()


def test_bad_images_are_named():
    with pytest.raises(ValueError, match="one grey 2D image"):
        speckle_statistics(np.zeros((3, 64, 64)))
    with pytest.raises(ValueError, match="too small"):
        speckle_statistics(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="black image"):
        speckle_statistics(np.zeros((64, 64)))
    with pytest.raises(ValueError, match="NaN"):
        speckle_statistics(np.full((64, 64), np.nan))
