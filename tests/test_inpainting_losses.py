"""HPI's losses: distance-weighted Laplacian-pyramid reconstruction and the residual-Gaussian KL."""

import math

import pytest
import torch
import torch.nn.functional as F

from monai_ext.losses import DistanceWeightedLaplacianPyramidLoss, ResidualGaussianKLLoss, laplacian_pyramid


def _hole(shape=(2, 1, 32, 32)):
    hole = torch.zeros(shape)
    hole[..., 8:24, 8:24] = 1
    return hole


def test_laplacian_pyramid_rebuilds_the_image():
    x = torch.rand(1, 2, 32, 32)
    levels = laplacian_pyramid(x, 4)
    assert [tuple(v.shape[2:]) for v in levels] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + F.interpolate(rebuilt, size=band.shape[2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(rebuilt, x)


def test_errors_deep_in_the_hole_count_less():
    y = torch.rand(2, 1, 32, 32)
    hole = _hole()
    loss = DistanceWeightedLaplacianPyramidLoss(levels=3, r=2.0, alpha=1.5)
    assert float(loss(y, y, hole)) == 0.0
    edge, deep = y.clone(), y.clone()
    edge[..., 8:10, 8:24] += 0.5  # just inside the hole's edge: 1-2 pixels from known ones
    deep[..., 16:18, 8:24] += 0.5  # the middle rows (a shift by 8: the same pyramid phase): up to 8 pixels away
    assert float(loss(deep, y, hole)) < 0.8 * float(loss(edge, y, hole))
    flat = DistanceWeightedLaplacianPyramidLoss(levels=3, r=2.0, alpha=1.0)  # alpha 1: position does not matter
    assert float(flat(deep, y, hole)) == pytest.approx(float(flat(edge, y, hole)), rel=0.05)
    x = y.clone().requires_grad_(True)
    loss(x + 0.1, y, hole).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_coarse_levels_weighted_by_r():
    y = torch.zeros(1, 1, 32, 32)
    offset = y + 0.1  # a constant error lives in the coarsest (low-pass) level only
    hole = torch.zeros(1, 1, 32, 32)
    one = DistanceWeightedLaplacianPyramidLoss(levels=3, r=1.0)(offset, y, hole)
    four = DistanceWeightedLaplacianPyramidLoss(levels=3, r=2.0)(offset, y, hole)
    assert float(four) == pytest.approx(4 * float(one), rel=1e-4)


def test_pyramid_loss_bad_input():
    loss = DistanceWeightedLaplacianPyramidLoss(levels=4)
    with pytest.raises(ValueError, match="hole_mask: expected shape"):
        loss(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match="no known pixel"):
        loss(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), torch.ones(1, 1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))


def test_residual_kl_matches_the_closed_form_of_two_gaussians():
    torch.manual_seed(0)
    mu_p, log_sp = torch.randn(3, 4, 5, 5), 0.3 * torch.randn(3, 4, 5, 5)
    d_mu, log_ds = torch.randn(3, 4, 5, 5), 0.3 * torch.randn(3, 4, 5, 5)
    p = torch.distributions.Normal(mu_p, log_sp.exp())
    q = torch.distributions.Normal(mu_p + d_mu, (log_sp + log_ds).exp())
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(ResidualGaussianKLLoss(reduction="none")(d_mu, log_ds, log_sp), expected)
    assert float(ResidualGaussianKLLoss()(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))) == 0.0
    assert math.isclose(float(ResidualGaussianKLLoss()(d_mu, log_ds, log_sp)), float(expected.mean()), rel_tol=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        ResidualGaussianKLLoss()(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 2))
