"""Inpainting scores on the hole region (HPI, DGM4MICCAI 2021): bounding box, L1/PSNR/SSIM, envelope SNR of speckle,
spread of completions."""

import numpy as np
import pytest
import torch

from monai_ext.metrics import InpaintingRegionMetric, completion_spread, hole_bounding_box, region_envelope_snr


def _hole():
    hole = torch.zeros(1, 48, 48)
    hole[0, 20:26, 10:30] = 1
    return hole


def test_bounding_box_grows_and_clips():
    rs, cs = hole_bounding_box(_hole(), margin=5)
    assert (rs.start, rs.stop, cs.start, cs.stop) == (15, 31, 5, 35)
    edge = torch.zeros(48, 48)
    edge[0:3, 45:48] = 1
    assert hole_bounding_box(edge) == (slice(0, 8), slice(40, 48))
    with pytest.raises(ValueError, match="no hole pixel"):
        hole_bounding_box(torch.zeros(48, 48))


def test_region_scores_see_only_the_box():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 48, 48, generator=g)
    metric = InpaintingRegionMetric()
    perfect = metric(target, target, _hole())
    assert perfect["l1"] == 0 and perfect["ssim"] == pytest.approx(1.0) and perfect["psnr"] > 80
    far = target.clone()
    far[0, 40:, 40:] = 0  # outside the grown box: not scored
    assert metric(far, target, _hole())["l1"] == 0
    filled = target.clone()
    filled[0, 20:26, 10:30] = 0.5  # a flat fill: the typical deterministic inpainter's output
    s = metric(filled, target, _hole())
    assert 0 < s["l1"] < 0.3 and s["ssim"] < 0.9 and s["psnr"] < 30
    with pytest.raises(ValueError, match="does not match"):
        metric(target, target, torch.zeros(1, 40, 40))


def test_envelope_snr_of_rayleigh_speckle():
    rng = np.random.default_rng(0)
    envelope = np.abs(rng.normal(size=(128, 128)) + 1j * rng.normal(size=(128, 128)))  # fully developed speckle
    snr = region_envelope_snr(envelope, np.ones((128, 128)), window=9)
    assert snr == pytest.approx(1.91, abs=0.25)
    smooth = envelope.copy()
    smooth[32:96, 32:96] = 1.0 + 0.01 * rng.normal(size=(64, 64))  # a smooth fill has no speckle
    inside = np.zeros((128, 128))
    inside[40:88, 40:88] = 1
    assert region_envelope_snr(smooth, inside, window=9) > 10 * snr


def test_completion_spread():
    hole = _hole()
    same = torch.zeros(8, 1, 48, 48)
    assert completion_spread(same, hole) == 0
    varied = torch.rand(8, 1, 48, 48, generator=torch.Generator().manual_seed(1)) * hole
    assert completion_spread(varied, hole) == pytest.approx((1 / 12) ** 0.5, rel=0.1)  # std of U(0, 1)
    with pytest.raises(ValueError, match="at least 2"):
        completion_spread(same[:1], hole)
