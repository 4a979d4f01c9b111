"""The class-aware codebook of CaCL (Deng et al., DGM4MICCAI/DALI 2021, section 2.1 and Fig. 3).

One codebook of ``num_shared + num_class`` vectors of ``embedding_dim`` channels, in two parts: the shared codes S
are non-zero only in the first ``shared_channels`` channels, the class codes C only in the others. Every feature
vector is quantised twice, ``e_N`` to its nearest code in S and ``e_P`` to its nearest code in S + C. The codes follow
the encoder by exponential moving averages (VQ-VAE-2): the codes that ``e_P`` picks for positive images update S and
C, the codes that ``e_N`` picks for negative images update S only, so C only ever learns from positive images.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ...engines.distributed import is_distributed

__all__ = ["ClassAwareCodebookQuantizer", "CodebookQuantization"]


def _squared_distances(flat: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(N, K) squared Euclidean distances between the rows of ``flat`` (N, D) and ``codes`` (K, D)."""
    return flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ codes.t() + codes.pow(2).sum(1)[None]


class CodebookQuantization(dict):
    """What :meth:`ClassAwareCodebookQuantizer.forward` returns (a dict with attribute access):

    - ``z``: the encoder's features (B, D, h, w);
    - ``e_n`` / ``e_p``: the S-only / S + C quantisations, with straight-through gradients to ``z`` (B, D, h, w);
    - ``index_n`` / ``index_p``: the chosen codes (B, h, w), int64; an index >= ``num_shared`` is a class code;
    - ``class_margin``: (B, h, w) how much closer each feature vector is to its nearest C code than to its nearest S
      code, ``(d_S - d_C) / mean(z^2)`` (squared distances, relative to the batch's mean squared feature; > 0: e_P
      picks a class code), differentiable in ``z`` (the codes and the normaliser are constants).
    """

    __getattr__ = dict.__getitem__


class ClassAwareCodebookQuantizer(nn.Module):

    """Shared + class-specific codebook with EMA updates.

    Args:
        num_shared: codes in S (the paper: 27).
        num_class: codes in C (the paper: 5).
        embedding_dim: channels per code (the paper: 64); the encoder's output channels.
        shared_channels: channels that S uses (the first ones; the paper: 32); C uses the rest.
        decay: EMA decay of the code updates (the paper: 0.98).
        epsilon: Laplace smoothing of the code counts.

        dead_code_threshold: a code whose EMA count falls below this (feature vectors per batch) is restarted
            (0: never).

    Not in the paper, both standard VQ practice: the codes are initialised from the first training batch, and codes
    that no feature vector picks any more (dead codes) are restarted from the batch. An S code restarts at a random
    feature vector; a C code at a feature vector of a positive image drawn among those the shared codebook S
    explains worst (the largest quantisation errors: what positive images have and S lacks), each masked to its
    channels. Without restarts, a C code that loses its pixels never gets any back and the class-specific codebook
    can die early in training. Under ``torch.distributed`` the EMA statistics are summed over the ranks and rank 0's
    restarts are broadcast, so every rank keeps the same codebook.
    """

    __jit_unused_properties__ = ["class_channels"]
    __jit_ignored_attributes__ = ["_generator"]

    def __init__(self, num_shared: int = 27, num_class: int = 5, embedding_dim: int = 64, shared_channels: int = 32,
                 decay: float = 0.98, epsilon: float = 1e-5, dead_code_threshold: float = 0.5) -> None:
        super().__init__()
        if num_shared < 1 or num_class < 1:
            raise ValueError(f"num_shared and num_class must be >= 1, got {num_shared} and {num_class}.")
        if not 0 < shared_channels < embedding_dim:
            raise ValueError(f"shared_channels must be in 1..embedding_dim-1 ({embedding_dim - 1}), got {shared_channels}.")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}.")
        self.num_shared, self.num_class = int(num_shared), int(num_class)
        self.embedding_dim, self.shared_channels = int(embedding_dim), int(shared_channels)
        self.decay, self.epsilon = float(decay), float(epsilon)
        self.dead_code_threshold = float(dead_code_threshold)
        k = self.num_shared + self.num_class
        mask = torch.zeros(k, self.embedding_dim)
        mask[: self.num_shared, : self.shared_channels] = 1.0
        mask[self.num_shared :, self.shared_channels :] = 1.0
        self.register_buffer("channel_mask", mask)
        self.register_buffer("codes", torch.randn(k, self.embedding_dim) * mask)
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("code_sum", self.codes.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self._generator = torch.Generator(device="cpu").manual_seed(0)

    @property
    def class_channels(self) -> slice:
        """The channels of the class codes C."""
        return slice(self.shared_channels, self.embedding_dim)

    def _nearest(self, flat: torch.Tensor, num_codes: int, codes: torch.Tensor | None = None) -> torch.Tensor:
        codes = (self.codes if codes is None else codes)[:num_codes]
        return _squared_distances(flat, codes).argmin(1)

    def quantize_p(self, z: torch.Tensor) -> torch.Tensor:
        """The S + C quantisation e_P of features ``z`` (B, D, h, w), without gradient or code update: what the
        network's ``forward`` decodes (TorchScript-able)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.codes.to(flat.dtype)
        return codes[_squared_distances(flat, codes).argmin(1)].reshape(b, h, w, d).permute(0, 3, 1, 2)

    @torch.no_grad()
    def _candidates(self, flat: torch.Tensor, positive_rows: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """New codes for the codes ``which`` (bool, K): S codes from random feature vectors, C codes from feature
        vectors of positive images among the 10 % worst explained by S (all feature vectors when the batch has no
        positive image), masked to their channels; rank 0's draw on every rank."""
        gen = self._generator
        new = self.codes.clone()
        s_idx = torch.nonzero(which[: self.num_shared]).flatten()
        if len(s_idx):
            pick = torch.randint(flat.shape[0], (len(s_idx),), generator=gen).to(flat.device)
            new[s_idx] = flat[pick] * self.channel_mask[s_idx]
        c_idx = torch.nonzero(which[self.num_shared :]).flatten() + self.num_shared
        if len(c_idx):
            pool = flat[positive_rows] if bool(positive_rows.any()) else flat
            err = (pool - new[self._nearest(pool, self.num_shared, new)]).pow(2).sum(1)
            worst = err.topk(max(1, pool.shape[0] // 10)).indices
            pick = worst[torch.randint(len(worst), (len(c_idx),), generator=gen).to(flat.device)]
            new[c_idx] = pool[pick]
        new = new * self.channel_mask
        if is_distributed():
            dist.broadcast(new, src=0)
        return new

    @torch.no_grad()
    def _restart(self, flat: torch.Tensor, positive_rows: torch.Tensor, which: torch.Tensor) -> None:
        if not bool(which.any()):
            return
        new = self._candidates(flat, positive_rows, which)
        self.codes[which] = new[which]
        self.code_sum[which] = new[which]
        self.cluster_size[which] = 1.0

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, index: torch.Tensor, has_positive: bool) -> None:
        """EMA of the codes' counts and sums. The class codes only when the batch (on any rank) has a positive
        image: a negative batch leaves them exactly as they are. Laplace smoothing within each part."""
        k = self.codes.shape[0]
        onehot = torch.zeros(flat.shape[0], k, device=flat.device, dtype=flat.dtype)
        onehot.scatter_(1, index[:, None], 1.0)
        counts, sums = onehot.sum(0), onehot.t() @ flat
        flag = torch.tensor([float(has_positive)], device=flat.device)
        if is_distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
            dist.all_reduce(flag)
        parts = [slice(0, self.num_shared)] + ([slice(self.num_shared, k)] if float(flag) > 0 else [])
        for part in parts:
            size = self.cluster_size[part]
            size.mul_(self.decay).add_(counts[part], alpha=1.0 - self.decay)
            self.code_sum[part].mul_(self.decay).add_(sums[part], alpha=1.0 - self.decay)
            n = size.sum()
            smoothed = (size + self.epsilon) / (n + size.numel() * self.epsilon) * n
            self.codes[part] = self.code_sum[part] / smoothed[:, None] * self.channel_mask[part]

    @torch.jit.unused  # the training path (Python); scripted networks use quantize_p
    def forward(self, z: torch.Tensor, positive: torch.Tensor | None = None) -> CodebookQuantization:
        """Quantise features ``z`` (B, embedding_dim, h, w). ``positive``: (B,) image labels (1 / True: positive);
        needed in training mode, where the codes are updated (EMA), and ignored in eval mode."""
        if z.ndim != 4 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"features of shape (B, {self.embedding_dim}, h, w) expected, got {tuple(z.shape)}.")
        b, d, h, w = z.shape
        zf = z.float().permute(0, 2, 3, 1).reshape(-1, d)
        flat = zf.detach()
        if self.training:
            if positive is None:
                raise ValueError("ClassAwareCodebookQuantizer: the image labels (positive) are needed in training.")
            pos_img = torch.as_tensor(positive, device=z.device).reshape(-1).bool()
            if pos_img.numel() != b:
                raise ValueError(f"positive: {pos_img.numel()} labels for a batch of {b}.")
            pos_rows = pos_img[:, None].expand(b, h * w).reshape(-1)
            if not bool(self.initialised):
                self._restart(flat, pos_rows, torch.ones_like(self.cluster_size, dtype=torch.bool))
                self.initialised.fill_(True)
        codes = self.codes.detach().clone()              # the codes of this batch's choice (updated below)
        d2 = _squared_distances(zf, codes)
        index_n = d2.detach()[:, : self.num_shared].argmin(1)
        index_p = d2.detach().argmin(1)
        margin = d2[:, : self.num_shared].amin(1) - d2[:, self.num_shared :].amin(1)
        margin = (margin / flat.pow(2).sum(1).mean().clamp_min(1e-8)).reshape(b, h, w)
        if self.training:
            # positives update the codes e_P picks (S and C); negatives the codes e_N picks (S only)
            self._ema_update(flat, torch.where(pos_rows, index_p, index_n), bool(pos_img.any()))
            if self.dead_code_threshold > 0:
                self._restart(flat, pos_rows, self.cluster_size < self.dead_code_threshold)
        e_n = codes[index_n].reshape(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        e_p = codes[index_p].reshape(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        return CodebookQuantization(
            z=z, e_n=z + (e_n - z).detach(), e_p=z + (e_p - z).detach(),
            index_n=index_n.reshape(b, h, w), index_p=index_p.reshape(b, h, w), class_margin=margin,
        )
