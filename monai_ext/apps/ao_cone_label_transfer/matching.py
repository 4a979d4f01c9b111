"""Graph matching of the cells of two visits (Liu, Aguilera, Liu & Tam, DGM4MICCAI/DALI 2021, eqs. 1-4).

A *candidate* ``a = (i, j)`` pairs cell ``i`` of visit 1 with cell ``j`` of visit 2 when ``i``'s centre, moved by
the visits' affine, is closer to ``j``'s than ``gate`` x the cell spacing (the paper: 30 px, about one cell
diameter). A matching is a 0/1 vector ``m`` over the candidates, one-to-one, minimising

    E(m) = w_v sum_a d_a / s m_a  +  w_x sum_a (r_a / spacing)^2 m_a  +  w_t sum_{(a,b) in S} t_ab m_a m_b
           -  r sum_a m_a

- feature term (E_v): ``d_a`` the L1 distance between the two cells' feature blocks (the segmenter's last decoder
  features in a ``window`` x ``window`` block around each centre, the paper's 16 x 16 x 16), divided by ``s``, the
  median over visit-1 cells of their closest candidate's distance. The paper adds the raw L1 distance (thousands)
  to a count term of at most 1, which would match nothing; the scale makes the weights mean something;
- position term (not in the paper's equations, which use the position only to gate the candidates): ``r_a`` the
  distance between the two centres after the affine. Without it, the cells of a hexagonal mosaic, alike in their
  features, are often matched to a neighbour of their partner (about 10 % of the matches on this bundle's mosaics);
- topology term (E_t): for candidates ``a = (i, j)``, ``b = (k, l)`` whose cells are mutual ``neighbours``-nearest
  neighbours in both visits (6: hexagonal packing), ``t_ab = (exp(delta^2) - 1) + (exp(gamma^2) - 1)`` with
  ``delta`` the relative length difference and ``gamma`` the angle between the vectors i -> k (moved by the affine)
  and j -> l; the paper's brackets put ``m_a m_b`` on the angle term only (a misprint: both terms are pair terms);
- count term (E_p = 1 - sum_a m_a / min(N1, N2) in the paper): a reward ``r`` per match; ``r`` = the paper's weight
  of E_p divided by min(N1, N2), so a candidate whose own cost is below ``r`` is worth matching.

The paper solves it by dual decomposition (its ref. 9). Here: the Hungarian assignment of the unary costs (feature
term minus reward; pairs of positive cost dropped), then iterated conditional modes over single candidates, each
switched on (displacing the one or two matches that hold its cells) or off while that lowers E (a local optimum at
least as good as the start).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

__all__ = ["CellGraphMatching", "candidate_pairs", "cell_feature_blocks", "topology_pairs", "match_cells",
           "matching_energy"]


def candidate_pairs(moved1: np.ndarray, points2: np.ndarray, radius: float) -> np.ndarray:
    """(K, 2) index pairs (i, j) with ``|moved1[i] - points2[j]| < radius``, sorted."""
    if not len(moved1) or not len(points2):
        return np.zeros((0, 2), int)
    hits = cKDTree(np.asarray(points2, float)).query_ball_point(np.asarray(moved1, float), r=radius)
    pairs = [(i, j) for i, js in enumerate(hits) for j in sorted(js)]
    return np.asarray(pairs, int).reshape(-1, 2)


def cell_feature_blocks(features: np.ndarray, points: np.ndarray, window: int) -> np.ndarray:
    """(N, C * window * window): the ``window`` x ``window`` block of the (C, H, W) ``features`` centred on each of
    the (N, 2) ``points`` (rounded), zero outside the image."""
    f = np.asarray(features, np.float32)
    w = int(window)
    lo = w // 2
    padded = np.pad(f, ((0, 0), (lo, w), (lo, w)))
    idx = np.clip(np.round(np.asarray(points, float)).astype(int).reshape(-1, 2), 0, np.array(f.shape[1:]) - 1)
    if not len(idx):
        return np.zeros((0, f.shape[0] * w * w), np.float32)
    return np.stack([padded[:, r:r + w, c:c + w].ravel() for r, c in idx])


def _mutual_knn(points: np.ndarray, k: int) -> list[set[int]]:
    n = len(points)
    if n < 2:
        return [set() for _ in range(n)]
    _, nn = cKDTree(points).query(points, k=min(k + 1, n))
    near = [set(int(x) for x in row[1:]) for row in np.atleast_2d(nn)]
    return [{j for j in near[i] if i in near[j]} for i in range(n)]


def topology_pairs(moved1: np.ndarray, points2: np.ndarray, candidates: np.ndarray, neighbours: int = 6
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The pairs S of eq. 3 and their costs: ``(pairs (P, 2) of candidate indices a < b, t (P,))``; ``moved1``:
    visit 1's centres moved by the affine (so the angle compares like with like)."""
    n1, n2 = _mutual_knn(moved1, neighbours), _mutual_knn(points2, neighbours)
    index = {(int(i), int(j)): a for a, (i, j) in enumerate(candidates)}
    pairs, costs = [], []
    for a, (i, j) in enumerate(candidates):
        for k in n1[i]:
            for l in n2[j]:
                b = index.get((k, l))
                if b is None or b <= a:
                    continue
                v1, v2 = moved1[i] - moved1[k], points2[j] - points2[l]
                n_1, n_2 = np.linalg.norm(v1), np.linalg.norm(v2)
                delta = abs(n_1 - n_2) / max(n_1 + n_2, 1e-9)
                gamma = np.arccos(np.clip(v1 @ v2 / max(n_1 * n_2, 1e-9), -1.0, 1.0))
                pairs.append((a, b))
                costs.append(np.expm1(delta**2) + np.expm1(gamma**2))
    return np.asarray(pairs, int).reshape(-1, 2), np.asarray(costs, float)


def matching_energy(m: np.ndarray, unary: np.ndarray, pairs: np.ndarray, costs: np.ndarray,
                    topology_weight: float) -> float:
    """E(m) = sum_a unary_a m_a + w_t sum_(a,b) t_ab m_a m_b (the constant of E_p left out)."""
    m = np.asarray(m, bool)
    both = m[pairs[:, 0]] & m[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
    return float(unary[m].sum() + topology_weight * costs[both].sum())


class CellGraphMatching:
    """The matching problem of one visit pair (see the module docstring) and its solver, :meth:`solve`.

    Args:
        unary: (K,) per-candidate cost (feature term minus the reward).
        candidates: (K, 2) cell index pairs (i, j).
        pairs, costs: the topology pairs of candidates and their t_ab.
        topology_weight: w_t.
    """

    def __init__(self, unary: np.ndarray, candidates: np.ndarray, pairs: np.ndarray, costs: np.ndarray,
                 topology_weight: float = 1.0) -> None:
        self.unary, self.candidates = np.asarray(unary, float), np.asarray(candidates, int).reshape(-1, 2)
        self.pairs, self.costs = np.asarray(pairs, int).reshape(-1, 2), np.asarray(costs, float)
        self.topology_weight = float(topology_weight)
        self.adjacent: list[list[tuple[int, float]]] = [[] for _ in range(len(self.unary))]
        for (a, b), t in zip(self.pairs, self.costs):
            self.adjacent[a].append((int(b), float(t)))
            self.adjacent[b].append((int(a), float(t)))

    def energy(self, m: np.ndarray) -> float:
        """E(m) of a 0/1 vector over the candidates."""
        return matching_energy(m, self.unary, self.pairs, self.costs, self.topology_weight)

    def delta(self, m: np.ndarray, add: list[int], remove: list[int]) -> float:
        """E(m') - E(m) for m' = m with ``add`` switched on and ``remove`` switched off."""
        changed = set(add) | set(remove)
        after = {x: (x in add) or (m[x] and x not in remove) for x in changed}
        d = float(self.unary[list(add)].sum() - self.unary[list(remove)].sum()) if changed else 0.0
        seen = set()
        for x in changed:
            for y, t in self.adjacent[x]:
                edge = (min(x, y), max(x, y))
                if edge in seen:
                    continue
                seen.add(edge)
                on_before = m[x] and m[y]
                on_after = after.get(x, m[x]) and after.get(y, m[y])
                d += self.topology_weight * t * (int(on_after) - int(on_before))
        return d

    def initial(self, n1: int, n2: int) -> np.ndarray:
        """The Hungarian assignment of the unary costs, candidates of negative cost only."""
        m = np.zeros(len(self.unary), bool)
        if not len(self.unary):
            return m
        cost = np.zeros((n1, n2))     # not matching a cell costs 0: only candidates of negative cost are worth it
        cost[self.candidates[:, 0], self.candidates[:, 1]] = np.minimum(self.unary, 0.0)
        index = {(int(i), int(j)): a for a, (i, j) in enumerate(self.candidates)}
        for i, j in zip(*linear_sum_assignment(cost)):
            a = index.get((int(i), int(j)))
            if a is not None and self.unary[a] < 0:
                m[a] = True
        return m

    def solve(self, n1: int, n2: int, max_sweeps: int = 20) -> tuple[np.ndarray, dict[str, Any]]:
        """``(m, info)``: the Hungarian start improved by iterated conditional modes; ``info``: the energies of the
        start and the result, the sweeps run and the number of switches."""
        m = self.initial(n1, n2)
        start = self.energy(m)
        owner1, owner2 = np.full(n1, -1), np.full(n2, -1)
        for a in np.flatnonzero(m):
            owner1[self.candidates[a, 0]], owner2[self.candidates[a, 1]] = a, a
        switches, sweeps = 0, 0
        for sweeps in range(1, max_sweeps + 1):
            changed = False
            for a, (i, j) in enumerate(self.candidates):
                if m[a]:
                    add, remove = [], [a]
                else:
                    add, remove = [a], sorted({int(owner1[i]), int(owner2[j])} - {-1})
                if self.delta(m, add, remove) < -1e-9:
                    for c in remove:
                        m[c] = False
                        owner1[self.candidates[c, 0]], owner2[self.candidates[c, 1]] = -1, -1
                    for c in add:
                        m[c] = True
                        owner1[i], owner2[j] = c, c
                    switches += 1
                    changed = True
            if not changed:
                break
        return m, {"energy_start": start, "energy": self.energy(m), "sweeps": sweeps, "switches": switches}


def match_cells(points1: np.ndarray, points2: np.ndarray, features1: np.ndarray, features2: np.ndarray,
                affine: np.ndarray, spacing: float = 12.0, gate: float = 1.0, feature_weight: float = 1.0,
                position_weight: float = 1.0, topology_weight: float = 1.0, match_reward: float = 2.0,
                neighbours: int = 6
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Match the cells of two visits (module docstring): ``(matches (M, 2) of (i, j) cell indices, info)``.

    ``points1`` (N1, 2), ``points2`` (N2, 2): cell centres (row, col) px; ``features1`` (N1, F), ``features2``
    (N2, F): their feature blocks (:func:`cell_feature_blocks`); ``affine``: 3 x 3, visit 1 -> visit 2 px;
    ``spacing``: cell spacing px; ``gate``: candidate radius in spacings; ``match_reward``: r, in units of the
    typical feature distance of a cell's best candidate.
    """
    p1, p2 = np.asarray(points1, float).reshape(-1, 2), np.asarray(points2, float).reshape(-1, 2)
    a = np.asarray(affine, float)
    moved1 = p1 @ a[:2, :2].T + a[:2, 2]
    cand = candidate_pairs(moved1, p2, gate * spacing)
    info: dict[str, Any] = {"cells1": len(p1), "cells2": len(p2), "candidates": len(cand)}
    if not len(cand):
        info.update(matches=0, topology_pairs=0, energy_start=0.0, energy=0.0, sweeps=0, switches=0)
        return np.zeros((0, 2), int), info
    f1, f2 = np.asarray(features1, float), np.asarray(features2, float)
    d = np.abs(f1[cand[:, 0]] - f2[cand[:, 1]]).sum(axis=1)
    best = np.full(len(p1), np.inf)
    np.minimum.at(best, cand[:, 0], d)
    scale = float(np.median(best[np.isfinite(best)]))
    residual = np.linalg.norm(moved1[cand[:, 0]] - p2[cand[:, 1]], axis=1) / spacing
    unary = feature_weight * d / max(scale, 1e-12) + position_weight * residual**2 - match_reward
    pairs, costs = topology_pairs(moved1, p2, cand, neighbours)
    problem = CellGraphMatching(unary, cand, pairs, costs, topology_weight)
    m, solved = problem.solve(len(p1), len(p2))
    info.update(solved, matches=int(m.sum()), topology_pairs=len(pairs), feature_scale=scale)
    return cand[m], info
