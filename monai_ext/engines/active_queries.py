"""Active-learning query strategies: which unlabelled images of a pool to label next, from their acquisition scores
(:mod:`monai_ext.metrics.acquisition`) and the model's embeddings. The strategies benchmarked by Chong et al.,
"Evaluation of active learning techniques on medical image classification with unbalanced data" (DGM4MICCAI/DALI
2021): random, top-N, mixture (part top-N, part random), k-nearest (neighbourhoods of top-scored images) and core-set
(greedy k-centre, Sener & Savarese 2018).

Every strategy is called as ``strategy(scores, embeddings, labelled, n, rng)`` with ``scores`` (N,) (higher = more
worth labelling), ``embeddings`` (N, D), ``labelled`` a boolean mask (N,) of the images labelled so far, ``n`` the
number to query and ``rng`` a ``numpy.random.Generator``; it returns ``n`` distinct indices of unlabelled images.
Its ``uses_embeddings`` says whether it reads the embeddings (of the whole pool, labelled images included).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["ACTIVE_QUERIES", "KCenterGreedyQuery", "KNNQuery", "MixtureQuery", "RandomQuery", "TopNQuery",
           "make_query", "unlabelled_indices"]


def unlabelled_indices(labelled: np.ndarray, n: int) -> np.ndarray:
    """Indices of the unlabelled images; ``ValueError`` when the pool is empty or holds fewer than ``n``."""
    labelled = np.asarray(labelled, bool)
    free = np.flatnonzero(~labelled)
    if free.size == 0:
        raise ValueError(f"the unlabelled pool is empty ({labelled.size} images, all labelled): nothing to query.")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"the number of images to query must be an integer >= 1, got {n!r}.")
    if n > free.size:
        raise ValueError(f"budget of {n} images is larger than the unlabelled pool ({free.size} of {labelled.size} "
                         "images unlabelled).")
    return free


def _scores(scores: Any, size: int) -> np.ndarray:
    if scores is None:
        raise ValueError("this query strategy needs acquisition scores.")
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.size != size:
        raise ValueError(f"{s.size} scores for a pool of {size} images.")
    return s


def _embeddings(embeddings: Any, size: int) -> torch.Tensor:
    if embeddings is None:
        raise ValueError("this query strategy needs the model's embeddings of the pool.")
    e = torch.as_tensor(np.asarray(embeddings, np.float32)).reshape(size, -1)
    return e


def _top(scores: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order[:n]]


class RandomQuery:
    """Uniform sample of the unlabelled images (the baseline); scores and embeddings are not used."""

    uses_embeddings = False

    def __call__(self, scores, embeddings, labelled, n, rng: np.random.Generator) -> np.ndarray:
        free = unlabelled_indices(labelled, n)
        return np.sort(rng.choice(free, size=int(n), replace=False))


class TopNQuery:
    """The ``n`` highest-scored unlabelled images (greedy; ties in pool order)."""

    uses_embeddings = False

    def __call__(self, scores, embeddings, labelled, n, rng: np.random.Generator) -> np.ndarray:
        free = unlabelled_indices(labelled, n)
        return np.sort(_top(_scores(scores, len(labelled)), free, int(n)))


class MixtureQuery:
    """``round(top_fraction * n)`` highest-scored images, the rest uniformly from the other unlabelled images.

    Args:
        top_fraction: share of the query taken greedily by score (the benchmark does not state it; 0.5).
    """

    uses_embeddings = False

    def __init__(self, top_fraction: float = 0.5) -> None:
        if not 0.0 <= float(top_fraction) <= 1.0:
            raise ValueError(f"top_fraction must be in [0, 1], got {top_fraction!r}.")
        self.top_fraction = float(top_fraction)

    def __call__(self, scores, embeddings, labelled, n, rng: np.random.Generator) -> np.ndarray:
        free = unlabelled_indices(labelled, n)
        k = int(round(self.top_fraction * n))
        top = _top(_scores(scores, len(labelled)), free, k)
        rest = np.setdiff1d(free, top)
        return np.sort(np.concatenate([top, rng.choice(rest, size=int(n) - k, replace=False)]))


class KNNQuery:
    """Top-scored anchors and their nearest unlabelled neighbours in embedding space.

    The benchmark describes "k-nearest sampling" only loosely; this reading takes the ``ceil(anchor_fraction * n)``
    highest-scored unlabelled images as anchors, then adds, anchor by anchor in turn, each anchor's next-nearest
    unlabelled image (Euclidean distance of the embeddings) not taken yet, until ``n`` images are chosen.

    Args:
        anchor_fraction: anchors as a share of the query (0.25: each anchor brings about 3 neighbours).
    """

    uses_embeddings = True

    def __init__(self, anchor_fraction: float = 0.25) -> None:
        if not 0.0 < float(anchor_fraction) <= 1.0:
            raise ValueError(f"anchor_fraction must be in (0, 1], got {anchor_fraction!r}.")
        self.anchor_fraction = float(anchor_fraction)

    def __call__(self, scores, embeddings, labelled, n, rng: np.random.Generator) -> np.ndarray:
        free = unlabelled_indices(labelled, n)
        n = int(n)
        anchors = _top(_scores(scores, len(labelled)), free, max(1, math.ceil(self.anchor_fraction * n)))
        emb = _embeddings(embeddings, len(labelled))
        chosen = list(anchors)
        taken = np.zeros(len(labelled), bool)
        taken[anchors] = True
        order = torch.cdist(emb[anchors], emb[free]).argsort(dim=1).numpy()   # (anchors, free) nearest first
        cursor = np.zeros(len(anchors), int)
        while len(chosen) < n:
            for a in range(len(anchors)):
                while cursor[a] < len(free) and taken[free[order[a, cursor[a]]]]:
                    cursor[a] += 1
                if cursor[a] < len(free):
                    idx = free[order[a, cursor[a]]]
                    taken[idx] = True
                    chosen.append(idx)
                    if len(chosen) == n:
                        break
        return np.sort(np.asarray(chosen))


class KCenterGreedyQuery:
    """Core-set by greedy k-centre (Sener & Savarese 2018): repeatedly take the unlabelled image farthest (in
    embedding space) from every labelled or already chosen image.

    Args:
        candidate_fraction: ``None`` (default): every unlabelled image is a candidate and the scores are not used;
            else only the ``ceil(candidate_fraction * unlabelled)`` highest-scored ones are (core-set over uncertain
            images).
    """

    uses_embeddings = True

    def __init__(self, candidate_fraction: float | None = None) -> None:
        if candidate_fraction is not None and not 0.0 < float(candidate_fraction) <= 1.0:
            raise ValueError(f"candidate_fraction must be None or in (0, 1], got {candidate_fraction!r}.")
        self.candidate_fraction = None if candidate_fraction is None else float(candidate_fraction)

    def __call__(self, scores, embeddings, labelled, n, rng: np.random.Generator) -> np.ndarray:
        free = unlabelled_indices(labelled, n)
        n = int(n)
        if self.candidate_fraction is not None:
            keep = max(n, math.ceil(self.candidate_fraction * free.size))
            free = np.sort(_top(_scores(scores, len(labelled)), free, keep))
        emb = _embeddings(embeddings, len(labelled)).double()
        centres = np.flatnonzero(np.asarray(labelled, bool))
        if centres.size:
            nearest = torch.cdist(emb[free], emb[centres]).amin(1)
        else:   # nothing labelled yet: start from a random image
            first = int(rng.integers(free.size))
            nearest = torch.cdist(emb[free], emb[free[first]][None]).squeeze(1)
        chosen = []
        for _ in range(n):
            pick = int(nearest.argmax())
            chosen.append(int(free[pick]))
            nearest = torch.minimum(nearest, torch.cdist(emb[free], emb[free[pick]][None]).squeeze(1))
            nearest[pick] = -1.0
        return np.sort(np.asarray(chosen))


#: strategy name -> class, the names the active-learning configs use
ACTIVE_QUERIES = {"random": RandomQuery, "top_n": TopNQuery, "mixture": MixtureQuery, "knn": KNNQuery,
                  "core_set": KCenterGreedyQuery}


def make_query(name: str, **kwargs: Any):
    """The strategy ``name`` (a key of :data:`ACTIVE_QUERIES`) built with ``kwargs``."""
    if name not in ACTIVE_QUERIES:
        raise ValueError(f"unknown query strategy {name!r}; expected one of {sorted(ACTIVE_QUERIES)}.")
    return ACTIVE_QUERIES[name](**kwargs)
