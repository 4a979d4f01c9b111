"""Slice-wise FID (and Inception-score analogue) of CT volumes with a feature network trained here.

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021, Sect. 4.2) reports FID and IS computed slice by slice
between two scans (real vs synthetic: 145.2 +- 26.0; two real splits: 130.7 +- 31.1) with ImageNet
Inception features. No downloaded weights may be used here, so the features come from a small MONAI
:class:`~monai.networks.nets.ResNet` (2D) trained on real axial slices to classify the slice's level in
the volume (``num_bins`` equal bins of relative position): like Inception's classes, anatomy defines the
classes, so its penultimate features describe what is in a slice, and the class posteriors give an
Inception-score analogue. FID numbers are therefore on a different scale from the paper's; compare them
only with the real-vs-real reference computed with the same network.

The distance itself is MONAI's :class:`~monai.metrics.FIDMetric`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import FIDMetric
from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock

__all__ = [
    "slice_level_classifier",
    "train_slice_level_classifier",
    "axial_slice_features",
    "slicewise_fid",
    "slice_level_inception_score",
]


def slice_level_classifier(num_bins: int = 8, width: int = 16, feature_dim: int = 32) -> ResNet:
    """A small 2D MONAI ResNet (one basic block per stage) for 1-channel slices; ``feature_dim`` penultimate features."""
    if int(num_bins) < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}.")
    return ResNet(
        block=ResNetBlock,
        layers=[1, 1, 1, 1],
        block_inplanes=[int(width), 2 * int(width), 4 * int(width), int(feature_dim)],
        spatial_dims=2,
        n_input_channels=1,
        conv1_t_size=3,
        conv1_t_stride=1,
        num_classes=int(num_bins),
    )


def _axial(volumes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial slices ``(N * D, 1, H, W)`` of volumes ``(N, 1, H, W, D)`` and their relative positions."""
    if volumes.ndim != 5 or volumes.shape[1] != 1:
        raise ValueError(f"volumes must have shape (N, 1, H, W, D), got {tuple(volumes.shape)}.")
    n, _, h, w, d = volumes.shape
    slices = volumes[:, 0].permute(0, 3, 1, 2).reshape(n * d, 1, h, w)
    pos = (torch.arange(d, dtype=torch.float32) / max(d - 1, 1)).repeat(n)
    return slices, pos


def train_slice_level_classifier(
    volumes: torch.Tensor,
    num_bins: int = 8,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **net_kwargs,
) -> ResNet:
    """Train :func:`slice_level_classifier` on the axial slices of real ``volumes`` ``(N, 1, H, W, D)``.

    Target: ``floor(num_bins * z / D)`` (the slice's level). Light augmentation (random shifts of up to
    4 voxels, intensity jitter) so the features do not key on exact pixel positions. Returns the network
    in eval mode; its accuracy on the training slices is stored in ``net.train_accuracy``.
    """
    g = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    net = slice_level_classifier(num_bins=num_bins, **net_kwargs).to(device)
    x, pos = _axial(volumes.float())
    y = torch.clamp((pos * num_bins).long(), max=num_bins - 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = x.shape[0]
    for _ in range(int(epochs)):
        net.train()
        for idx in torch.randperm(n, generator=g).split(int(batch_size)):
            xb = x[idx]
            sx, sy = (int(v) for v in torch.randint(-4, 5, (2,), generator=g))
            xb = torch.roll(xb, shifts=(sx, sy), dims=(2, 3))
            xb = xb * (1 + 0.05 * torch.randn(len(idx), 1, 1, 1, generator=g)) + 0.05 * torch.randn(
                len(idx), 1, 1, 1, generator=g)
            loss = F.cross_entropy(net(xb.to(device)), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(b.to(device)).argmax(1).cpu() for b in x.split(256)])
    net.train_accuracy = float((pred == y).float().mean())
    return net


@torch.no_grad()
def axial_slice_features(net: ResNet, volumes: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(features ``(N * D, F)``: the input of the classifier's last layer, class probabilities ``(N * D, K)``)."""
    slices, _ = _axial(volumes.float())
    feats: list[torch.Tensor] = []
    hook = net.fc.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach().cpu()))
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        probs = torch.cat([torch.softmax(net(b.to(device)), 1).cpu() for b in slices.split(int(batch_size))])
    finally:
        hook.remove()
        net.train(was_training)
    return torch.cat(feats).double(), probs.double()


def slicewise_fid(
    net: ResNet,
    volumes_a: torch.Tensor,
    volumes_b: torch.Tensor,
    num_pairs: int = 20,
    scans_per_group: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Slice-wise FID between two sets of volumes ``(N, 1, H, W, D)``.

    - ``fid_pooled``: FID between the axial-slice features of all volumes of ``a`` and all of ``b``;
    - ``fid_pairs_mean`` / ``fid_pairs_std``: the paper's protocol: ``num_pairs`` times, FID between the slices
      of ``scans_per_group`` random scans of ``a`` and as many of ``b`` (1 = two scans, as in the paper).
      When ``a is b``, the two groups are disjoint scans of the same set.
    """
    fid = FIDMetric()
    fa, _ = axial_slice_features(net, volumes_a)
    fb, _ = axial_slice_features(net, volumes_b)
    da, db = volumes_a.shape[-1], volumes_b.shape[-1]
    out = {"fid_pooled": float(fid(fb, fa))}
    rng = np.random.default_rng(int(seed))
    same = volumes_a is volumes_b
    na, nb, k = volumes_a.shape[0], volumes_b.shape[0], int(scans_per_group)
    if k < 1 or k > na or k > nb or (same and 2 * k > na):
        raise ValueError(f"scans_per_group={k} does not fit {na} and {nb} volumes.")
    vals = []
    for _ in range(int(num_pairs)):
        if same:
            perm = rng.permutation(na)
            ia, ib = perm[:k], perm[k : 2 * k]
        else:
            ia, ib = rng.choice(na, k, replace=False), rng.choice(nb, k, replace=False)
        sa = torch.cat([fa[i * da : (i + 1) * da] for i in ia])
        sb = torch.cat([fb[i * db : (i + 1) * db] for i in ib])
        vals.append(float(fid(sb, sa)))
    out["fid_pairs_mean"] = float(np.mean(vals)) if vals else float("nan")
    out["fid_pairs_std"] = float(np.std(vals)) if vals else float("nan")
    return out


def slice_level_inception_score(net: ResNet, volumes: torch.Tensor, splits: int = 1) -> tuple[float, float]:
    """Inception-score analogue ``exp(E_x KL(p(y|x) || p(y)))`` over axial slices, with the slice-level classes
    (mean, std over ``splits`` chunks of the slices). At most ``num_bins``; real volumes reach it when every level
    is recognised with certainty."""
    _, p = axial_slice_features(net, volumes)
    scores = []
    for chunk in p.chunk(int(splits)):
        py = chunk.mean(0, keepdim=True)
        kl = (chunk * (torch.log(chunk + 1e-12) - torch.log(py + 1e-12))).sum(1).mean()
        scores.append(float(torch.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))

