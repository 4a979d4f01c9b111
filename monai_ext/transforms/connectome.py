"""Structural connectivity matrices (connectomes) as channel-first images ``(1, N, N)``: reading one per subject
with its checks, scaling streamline counts to [0, 1], and the upper-triangle vector <-> symmetric matrix mapping of
BrainNetGAN's generator (Cao et al., DGM4MICCAI/DALI 2021), whose 4005 outputs are the upper triangle of a 90 x 90
matrix.

A connectome's node order is the atlas order, so spatial augmentation (flips, rotations) is not valid on it: none is
offered here.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from ..io import CONNECTOME_SUFFIXES

__all__ = [
    "ConnectomeInputError",
    "upper_triangle_to_symmetric",
    "symmetric_to_upper_triangle",
    "LoadConnectome",
    "LoadConnectomed",
    "LoadConnectomeD",
    "LoadConnectomeDict",
    "ScaleConnectome",
    "ScaleConnectomed",
    "ScaleConnectomeD",
    "ScaleConnectomeDict",
]

class ConnectomeInputError(ValueError):
    """A connectivity matrix that cannot be used: unreadable, not square, of the wrong size, not symmetric, negative
    or not finite. The message names the file (or the input) and what was expected."""


def _num_nodes(length: int) -> int:
    n = int(round((1 + np.sqrt(1 + 8 * length)) / 2))
    if n * (n - 1) // 2 != length:
        raise ConnectomeInputError(f"{length} values are not the upper triangle of a square matrix (N (N - 1) / 2).")
    return n


@lru_cache(maxsize=16)
def _symmetric_gather_index(n: int, device: torch.device) -> torch.Tensor:
    """Index ``(N * N,)``: entry ``(i, j)`` of the symmetric matrix is entry ``index[i * N + j]`` of an upper-triangle
    vector (row-major, diagonal excluded) with a 0 appended at position ``N (N - 1) / 2`` (the diagonal). Mirroring is
    then one gather (``index_select``), several times faster than writing both triangles. Built once per size and
    device (the generator mirrors every forward pass)."""
    length = n * (n - 1) // 2
    rows, cols = torch.triu_indices(n, n, 1, device=device)
    index = torch.full((n * n,), length, dtype=torch.long, device=device)
    index[rows * n + cols] = index[cols * n + rows] = torch.arange(length, device=device)
    return index


def upper_triangle_to_symmetric(values: torch.Tensor, num_nodes: int | None = None,
                                out: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror upper-triangle vectors ``(..., N (N - 1) / 2)`` (row-major order, diagonal excluded, as
    ``numpy.triu_indices(N, 1)``) into symmetric matrices ``(..., N, N)`` with a zero diagonal. Differentiable.

    ``out``: a contiguous ``(..., N, N)`` tensor on ``values``' device to write the matrices into (no copy; not
    differentiable), e.g. a slice of a preallocated output."""
    n = _num_nodes(values.shape[-1]) if num_nodes is None else int(num_nodes)
    if values.shape[-1] != n * (n - 1) // 2:
        raise ConnectomeInputError(f"{values.shape[-1]} values given; N = {n} nodes need {n * (n - 1) // 2}.")
    flat = values.reshape(-1, values.shape[-1])
    padded = torch.cat([flat, flat.new_zeros(flat.shape[0], 1)], dim=1)
    index = _symmetric_gather_index(n, values.device)
    if out is None:
        return padded.index_select(1, index).reshape(*values.shape[:-1], n, n)
    torch.index_select(padded, 1, index, out=out.view(-1, n * n))
    return out


def symmetric_to_upper_triangle(matrix: torch.Tensor) -> torch.Tensor:
    """The upper triangle (diagonal excluded, row-major) of square matrices ``(..., N, N)``: ``(..., N (N - 1) / 2)``."""
    n = matrix.shape[-1]
    rows, cols = torch.triu_indices(n, n, 1, device=matrix.device)
    return matrix[..., rows, cols]


def _read_matrix(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    delimiter = "," if suffix == ".csv" else None
    return np.loadtxt(path, delimiter=delimiter, ndmin=2)


class LoadConnectome(Transform):
    """Read one subject's connectivity matrix into a ``(1, N, N)`` float32 tensor, with its checks.

    Input: a path to a ``.npy`` file (2D array) or a ``.csv`` / ``.txt`` / ``.tsv`` text file of ``N`` rows of ``N``
    numbers (comma- or whitespace-separated, no header), e.g. streamline counts or fibre densities between the
    regions of an atlas (AAL-90: ``N = 90``).

    Checks (a :py:class:`ConnectomeInputError` naming the file otherwise): the file exists and is readable; the
    array is 2D and square, with ``num_nodes`` rows when given; all values are finite and non-negative; the matrix is
    symmetric within ``symmetry_rtol`` of its largest value (tractography gives undirected connections). The diagonal
    (self-connections) is set to 0.

    Args:
        num_nodes: the number of atlas regions the model expects (``None``: any).
        symmetry_rtol: largest allowed ``|A - A^T|`` relative to ``max |A|``.
    """

    backend: list[TransformBackends] = []  # the input is a file name, not array data (as MONAI's LoadImage)

    def __init__(self, num_nodes: int | None = 90, symmetry_rtol: float = 1e-4) -> None:
        if num_nodes is not None and int(num_nodes) < 2:
            raise ValueError(f"num_nodes must be >= 2 or None, got {num_nodes!r}.")
        self.num_nodes = None if num_nodes is None else int(num_nodes)
        self.symmetry_rtol = float(symmetry_rtol)

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        """Read and check ``path``; returns ``(1, N, N)`` float32 with ``filename_or_obj`` in its metadata."""
        p = Path(path)
        if not p.is_file():
            raise ConnectomeInputError(f"{p}: connectivity matrix file not found.")
        if p.suffix.lower() not in CONNECTOME_SUFFIXES:
            raise ConnectomeInputError(f"{p}: expected one of {', '.join(CONNECTOME_SUFFIXES)} files.")
        try:
            a = np.asarray(_read_matrix(p), dtype=np.float64)
        except Exception as e:  # corrupt .npy, text that is not numbers
            raise ConnectomeInputError(f"{p}: cannot be read as a matrix of numbers ({type(e).__name__}: {e}).") from e
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ConnectomeInputError(f"{p}: shape {a.shape}; expected a square 2D matrix (N, N).")
        if self.num_nodes is not None and a.shape[0] != self.num_nodes:
            raise ConnectomeInputError(
                f"{p}: {a.shape[0]} x {a.shape[1]} matrix; the model expects {self.num_nodes} x {self.num_nodes} "
                "(one row and column per atlas region).")
        if not np.all(np.isfinite(a)):
            raise ConnectomeInputError(f"{p}: holds NaN or infinite values.")
        if a.min() < 0:
            raise ConnectomeInputError(f"{p}: holds negative values (min {a.min():g}); expected connection strengths "
                                       ">= 0 such as streamline counts.")
        scale = max(float(np.abs(a).max()), 1e-12)
        asym = float(np.abs(a - a.T).max())
        if asym > self.symmetry_rtol * scale:
            i, j = np.unravel_index(np.argmax(np.abs(a - a.T)), a.shape)
            raise ConnectomeInputError(
                f"{p}: not symmetric (entry ({i}, {j}) = {a[i, j]:g} but ({j}, {i}) = {a[j, i]:g}); expected an "
                "undirected connectivity matrix.")
        a = a.astype(np.float32)
        np.fill_diagonal(a, 0.0)
        return MetaTensor(torch.from_numpy(a)[None], meta={"filename_or_obj": str(p)})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_nodes={self.num_nodes})"


class LoadConnectomed(MapTransform):
    """Dictionary-based :py:class:`LoadConnectome`: ``data[key]`` (a path) becomes the ``(1, N, N)`` tensor.

    Args:
        keys: keys holding the paths.
        num_nodes, symmetry_rtol: see :py:class:`LoadConnectome`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = LoadConnectome.backend

    def __init__(self, keys: KeysCollection, num_nodes: int | None = 90, symmetry_rtol: float = 1e-4,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadConnectome(num_nodes, symmetry_rtol)

    def __call__(self, data: Mapping[Hashable, str]) -> dict[Hashable, MetaTensor]:
        """Load every ``keys`` entry of ``data``; returns a new dict (other entries unchanged)."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


class ScaleConnectome(Transform):
    """Scale connection strengths ``(C, N, N)`` to [0, 1]: ``log1p`` (when ``log``), then division by each channel's
    largest value; the diagonal is set to 0. BrainNetGAN scales its streamline-count matrices to [0, 1]; the
    logarithm (an addition: the paper does not say how it scaled) keeps the weak connections, whose counts are orders
    of magnitude below the strongest, from all falling near 0. Dividing by each subject's own maximum removes global
    factors such as head size or the number of seeded streamlines.

    Args:
        log: take ``log1p`` first (for counts); ``False`` for strengths already on a comparable scale.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, log: bool = True) -> None:
        self.log = bool(log)

    def __call__(self, matrix: NdarrayOrTensor) -> NdarrayOrTensor:
        """``matrix``: ``(C, N, N)`` non-negative; returns the same type and shape in [0, 1]."""
        x = torch.as_tensor(np.asarray(matrix) if isinstance(matrix, np.ndarray) else matrix).float()
        if x.ndim != 3 or x.shape[-1] != x.shape[-2]:
            raise ConnectomeInputError(f"expected a channel-first connectivity matrix (C, N, N), got {tuple(x.shape)}.")
        if bool((x < 0).any()):
            raise ConnectomeInputError("connection strengths must be >= 0 to be scaled to [0, 1].")
        x = torch.log1p(x) if self.log else x.clone()
        x = x * (1.0 - torch.eye(x.shape[-1], device=x.device, dtype=x.dtype))
        x = x / x.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
        out, *_ = convert_to_dst_type(x, matrix, dtype=torch.float32 if isinstance(matrix, torch.Tensor) else np.float32)
        return out


class ScaleConnectomed(MapTransform):
    """Dictionary-based :py:class:`ScaleConnectome`.

    Args:
        keys: keys of the ``(C, N, N)`` matrices.
        log: see :py:class:`ScaleConnectome`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = ScaleConnectome.backend

    def __init__(self, keys: KeysCollection, log: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = ScaleConnectome(log)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Scale every ``keys`` entry of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d


LoadConnectomeD = LoadConnectomeDict = LoadConnectomed
ScaleConnectomeD = ScaleConnectomeDict = ScaleConnectomed
