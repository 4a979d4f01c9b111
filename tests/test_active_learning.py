"""Active-learning acquisition scores and query strategies (issue 38): values on known inputs, gradient length
against autograd, each strategy's choice on a constructed pool, and clear errors for an empty or too small pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ext.engines import KCenterGreedyQuery, KNNQuery, MixtureQuery, RandomQuery, TopNQuery, make_query
from monai_ext.metrics import acquisition_score, expected_gradient_length_score, least_confidence_score, margin_score


@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_confidence_and_margin_on_known_probabilities(convert):
    p = convert(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]]))
    np.testing.assert_allclose(least_confidence_score(p), [0.0, 0.5, 2 / 3, 0.4])
    np.testing.assert_allclose(margin_score(p), [0.0, 1.0, 1.0, 0.7])
    with pytest.raises(ValueError, match="softmax"):
        margin_score(convert(np.array([[2.0, -1.0]])))


def test_segmentation_scores_reduce_over_voxels():
    p = np.zeros((2, 2, 2, 2))
    p[:, 0] = 1.0
    p[1, :, 0, 0] = 0.5       # one uncertain voxel in image 1
    np.testing.assert_allclose(least_confidence_score(p), [0.0, 0.5 / 4])
    np.testing.assert_allclose(least_confidence_score(p, reduction="max"), [0.0, 0.5])


@pytest.mark.parametrize("mode", ["max", "expected"])
def test_gradient_length_is_the_last_layers_gradient_norm(mode):
    torch.manual_seed(0)
    h, w, b = torch.randn(6, 5), torch.randn(3, 5, requires_grad=True), torch.zeros(3, requires_grad=True)
    logits = h @ w.T + b
    probs = logits.softmax(1)
    expected = []
    for i in range(6):
        norms = []
        for y in range(3):
            gw, gb = torch.autograd.grad(torch.nn.functional.cross_entropy(logits[i:i + 1], torch.tensor([y])),
                                         [w, b], retain_graph=True)
            norms.append(float(torch.sqrt((gw ** 2).sum() + (gb ** 2).sum())))
        pi = probs[i].detach().numpy()
        expected.append(norms[int(pi.argmax())] if mode == "max" else float((pi * np.array(norms)).sum()))
    np.testing.assert_allclose(expected_gradient_length_score(probs.detach(), h, mode=mode), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="embeddings"):
        acquisition_score("expected_gradient_length", probs.detach())


def _pool():
    """Two tight clusters of embeddings (indices 0-9 near 0, 10-19 near 10) and one far point (20); scores rise
    with the index inside cluster A only."""
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.1, (10, 2)), rng.normal(10, 0.1, (10, 2)), [[50.0, 50.0]]])
    scores = np.concatenate([np.linspace(0.5, 1.0, 10), np.zeros(10), [0.1]])
    return scores, emb


def test_top_n_and_mixture():
    scores, emb = _pool()
    labelled = np.zeros(21, bool)
    labelled[9] = True
    assert TopNQuery()(scores, emb, labelled, 3, np.random.default_rng(0)).tolist() == [6, 7, 8]
    mix = MixtureQuery(top_fraction=0.5)(scores, emb, labelled, 4, np.random.default_rng(0))
    assert {7, 8} <= set(mix.tolist()) and len(set(mix.tolist())) == 4 and 9 not in mix


def test_random_is_seeded_and_unlabelled():
    labelled = np.zeros(21, bool)
    labelled[:5] = True
    a = RandomQuery()(None, None, labelled, 6, np.random.default_rng(3))
    assert a.tolist() == RandomQuery()(None, None, labelled, 6, np.random.default_rng(3)).tolist()
    assert len(set(a.tolist())) == 6 and not labelled[a].any()


def test_core_set_spreads_and_knn_stays_near_its_anchors():
    scores, emb = _pool()
    labelled = np.zeros(21, bool)
    labelled[0] = True                         # cluster A is covered
    core = KCenterGreedyQuery()(scores, emb, labelled, 2, np.random.default_rng(0))
    assert 20 in core and any(10 <= i < 20 for i in core), "the far point, then the uncovered cluster"
    knn = KNNQuery(anchor_fraction=0.25)(scores, emb, labelled, 4, np.random.default_rng(0))
    assert 9 in knn and all(i < 10 for i in knn), "the top-scored anchor and its neighbours in cluster A"
    unc = KCenterGreedyQuery(candidate_fraction=0.3)(scores, emb, labelled, 2, np.random.default_rng(0))
    assert all(i < 10 for i in unc), "only the highest-scored candidates"


@pytest.mark.parametrize("name", ["random", "top_n", "mixture", "knn", "core_set"])
def test_empty_pool_and_too_large_budget_are_refused(name):
    scores, emb = _pool()
    query = make_query(name)
    with pytest.raises(ValueError, match="unlabelled pool is empty"):
        query(scores, emb, np.ones(21, bool), 1, np.random.default_rng(0))
    labelled = np.zeros(21, bool)
    labelled[:18] = True
    with pytest.raises(ValueError, match=r"budget of 5 images is larger than the unlabelled pool \(3 of 21"):
        query(scores, emb, labelled, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown query strategy"):
        make_query("uncertainty")
