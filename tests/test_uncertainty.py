"""Predictive uncertainty for active learning: entropy, Monte-Carlo dropout, per-case scores and the ranking."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.nets import UNet

from monai_ext.metrics import (
    case_uncertainty,
    mc_dropout_probabilities,
    mc_variance,
    mutual_information,
    predictive_entropy,
    rank_by_uncertainty,
)


def test_entropy_is_zero_when_certain_and_log_c_when_uniform():
    certain = torch.zeros(1, 3, 4, 4)
    certain[:, 1] = 1.0
    uniform = torch.full((1, 3, 4, 4), 1.0 / 3.0)
    assert float(predictive_entropy(certain).max()) < 1e-6
    assert torch.allclose(predictive_entropy(uniform), torch.full((1, 1, 4, 4), math.log(3.0)), atol=1e-6)
    half = torch.full((1, 2, 2, 2), 0.5)
    assert torch.allclose(predictive_entropy(half, multilabel=True), torch.full((1, 1, 2, 2), 2 * math.log(2.0)))
    with pytest.raises(ValueError, match="softmax or sigmoid"):
        predictive_entropy(torch.randn(1, 3, 4, 4) * 5)


def test_mc_dropout_varies_restores_modes_and_needs_dropout():
    torch.manual_seed(0)
    net = UNet(2, 1, 3, channels=(4, 8), strides=(2,), dropout=0.3)
    net.train()
    x = torch.randn(2, 1, 16, 16)
    mc = mc_dropout_probabilities(net, x, samples=4)
    assert mc.shape == (4, 2, 3, 16, 16)
    assert torch.allclose(mc.sum(2), torch.ones(4, 2, 16, 16), atol=1e-5)
    assert float((mc[0] - mc[1]).abs().max()) > 1e-4  # dropout active: the passes differ
    assert net.training and all(m.training for m in net.modules())  # modes restored
    mi, var = mutual_information(mc), mc_variance(mc)
    assert mi.shape == var.shape == (2, 1, 16, 16)
    assert float(mi.min()) >= 0.0 and float(mi.max()) > 0.0 and float(var.max()) > 0.0
    # identical passes: no model uncertainty
    same = mc[:1].expand(4, -1, -1, -1, -1)
    assert float(mutual_information(same).max()) < 1e-6 and float(mc_variance(same).max()) < 1e-12
    with pytest.raises(ValueError, match="no dropout"):
        mc_dropout_probabilities(UNet(2, 1, 3, channels=(4, 8), strides=(2,)), x)


def test_case_scores_and_ranking():
    u = torch.zeros(3, 1, 4, 4)
    u[0, 0, 0, 0] = 4.0  # one uncertain voxel in a large certain background
    u[1] = 0.5
    mask = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0, :2] = True
    mask[1, 0, :, :] = True
    scores = case_uncertainty(u, mask)
    assert torch.allclose(scores, torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64))
    assert torch.allclose(case_uncertainty(u), torch.tensor([0.25, 0.5, 0.0], dtype=torch.float64))
    ranked = rank_by_uncertainty({"b": 0.5, "a": 2.0, "c": 0.0, "d": 0.5})
    assert [r["case"] for r in ranked] == ["a", "b", "d", "c"] and [r["rank"] for r in ranked] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="non-finite"):
        rank_by_uncertainty({"a": float("nan")})
