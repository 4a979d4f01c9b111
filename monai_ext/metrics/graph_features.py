"""How close generated connectivity matrices are to real ones, by the distributions of graph features: BrainNetGAN's
evaluation (Cao et al., DGM4MICCAI/DALI 2021, Fig. 2 and Table 2): edge weight, node strength, local and global
efficiency (the Brain Connectivity Toolbox's weighted definitions, through ``bctpy``), compared between a real and a
generated set by the Kullback-Leibler divergence of their histograms and by MONAI's ``MMDMetric``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.metrics import MMDMetric

__all__ = ["GRAPH_FEATURES", "connectome_graph_features", "histogram_kl", "GraphFeatureDivergence"]

GRAPH_FEATURES = ("edge_weight", "node_strength", "local_efficiency", "global_efficiency")


def _matrices(x: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"expected connectivity matrices (B, N, N) or (B, 1, N, N), got {a.shape}.")
    if a.min() < 0:
        raise ValueError(f"connectivity matrices must be >= 0 (weights in [0, 1]), got a minimum of {a.min():g}.")
    return a


def connectome_graph_features(matrices: np.ndarray | torch.Tensor, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Graph features of weighted undirected connectivity matrices ``(B, N, N)`` or ``(B, 1, N, N)``, weights in
    [0, 1] (:class:`~monai_ext.transforms.ScaleConnectome`).

    Weights at or below ``threshold`` count as no edge (a generator's sigmoid output is never exactly 0).

    Returns ``{"edge_weight": (B, N (N - 1) / 2), "node_strength": (B, N), "local_efficiency": (B, N),
    "global_efficiency": (B, 1)}`` (``bct.efficiency_wei``, weights as connection strengths).
    """
    import bct

    a = _matrices(matrices).copy()
    a[a <= float(threshold)] = 0.0
    n = a.shape[1]
    iu = np.triu_indices(n, 1)
    out = {"edge_weight": a[:, iu[0], iu[1]], "node_strength": a.sum(2)}
    local, glob = [], []
    for m in a:
        m = (m + m.T) / 2.0
        np.fill_diagonal(m, 0.0)
        local.append(bct.efficiency_wei(m, local=True))
        glob.append([bct.efficiency_wei(m)])
    out["local_efficiency"], out["global_efficiency"] = np.asarray(local), np.asarray(glob)
    return out


def histogram_kl(reference: np.ndarray, other: np.ndarray, bins: int = 30, eps: float = 1e-6) -> float:
    """``KL(reference || other)`` between the histograms of two samples of values, on ``bins`` shared bins over
    their joint range; ``eps`` is added to every bin's probability before normalising (so an empty bin is finite)."""
    r, o = np.ravel(reference), np.ravel(other)
    lo, hi = float(min(r.min(), o.min())), float(max(r.max(), o.max()))
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, int(bins) + 1)
    p = np.histogram(r, edges)[0] / len(r) + eps
    q = np.histogram(o, edges)[0] / len(o) + eps
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


class GraphFeatureDivergence:
    """KL divergence and MMD between the graph features of a real and a generated set of connectivity matrices.

    ``GraphFeatureDivergence()(real, fake)`` with ``(B, N, N)`` or ``(B, 1, N, N)`` arrays or tensors in [0, 1] returns
    ``{"<feature>_kl": ..., "<feature>_mmd": ...}`` for each of :data:`GRAPH_FEATURES`: the KL of the pooled values'
    histograms (``KL(real || fake)``) and MONAI's :class:`~monai.metrics.MMDMetric` between the per-subject feature
    vectors (the first ``min(B_real, B_fake)`` of each set: MONAI's MMD needs two samples of the same size). Lower
    is closer; the paper reports both for CN and AD separately (call once per class).

    Args:
        features: which of :data:`GRAPH_FEATURES`.
        bins: histogram bins of the KL.
        threshold: weights at or below it are no edge (see :func:`connectome_graph_features`).
    """

    def __init__(self, features: Sequence[str] = GRAPH_FEATURES, bins: int = 30, threshold: float = 0.0) -> None:
        unknown = [f for f in features if f not in GRAPH_FEATURES]
        if unknown:
            raise ValueError(f"unknown graph features {unknown}; choose from {list(GRAPH_FEATURES)}.")
        self.features, self.bins, self.threshold = tuple(features), int(bins), float(threshold)
        self.mmd = MMDMetric()

    def compare(self, real: Mapping[str, np.ndarray], fake: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The divergences of two feature dicts of :func:`connectome_graph_features` (computed once, reused)."""
        out = {}
        for f in self.features:
            out[f"{f}_kl"] = histogram_kl(real[f], fake[f], self.bins)
            k = min(len(real[f]), len(fake[f]))
            if k < 2:
                raise ValueError(f"MMD needs at least two matrices in each set, got {len(real[f])} and {len(fake[f])}.")
            y = torch.as_tensor(real[f][:k], dtype=torch.float64)
            y_pred = torch.as_tensor(fake[f][:k], dtype=torch.float64)
            out[f"{f}_mmd"] = float(self.mmd(y, y_pred))
        return out

    def __call__(self, real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> dict[str, float]:
        """Divergences between ``real`` and ``fake`` matrices (see the class docstring)."""
        return self.compare(connectome_graph_features(real, self.threshold),
                            connectome_graph_features(fake, self.threshold))
