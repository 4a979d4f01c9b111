"""CaCL's losses (Deng et al., section 2.2, eqs. 1, 3, 4), per image and routed by the image label.

With M = 1 for a negative image and 0 for a positive one, and K = +1 for a negative image and -1 for a positive one:

- commitment ``||sg[e] - E(I)||^2`` with ``e = e_P`` for positives and ``e_N`` for negatives (eq. 1; the codebook
  loss of eq. 2 is replaced by the EMA updates, as the paper says);
- reconstruction ``(1 - M) ||I - R_P||^2 + M ||I - R_N||^2`` (eq. 3);
- discriminative codebook ``K ||e_N - e_P||^2`` over the class channels (eq. 4). For a positive image the term is
  unbounded below; here it is clamped at ``-margin`` (the positive's distance counts up to ``margin`` only), so the
  encoder cannot lower the total loss by blowing up its class channels (:func:`discriminative_codebook_loss`).

The paper's eq. 4 gives the encoder a gradient only at the pixels that already picked a class code (through the
straight-through estimate of e_P; e_N is zero on the class channels), so it cannot teach the encoder which pixels
should pick one. In our runs on the embedded data (docs/experiments.md) the class codebook then stayed unused or
flickered. :func:`class_code_margin_loss` is our replacement with the same intent (negatives: e_N = e_P, positives:
e_N != e_P somewhere) on the quantity that decides the code choice, the class margin ``(d_S - d_C)``: a hinge on
the ``top_fraction`` of each image's pixels most inclined to C, which keeps them at least ``delta`` on the S side in
a negative image and at least ``delta`` on the C side in a positive one (multiple-instance learning: a positive
image has class-specific pixels somewhere, a negative image has none anywhere).
"""

from __future__ import annotations

import torch

from .quantizer import CodebookQuantization

__all__ = [
    "CODEBOOK_LOSSES",
    "cacl_commitment_loss",
    "cacl_reconstruction_loss",
    "class_code_margin_loss",
    "discriminative_codebook_loss",
]

#: the discriminative codebook terms: ``paper`` (eq. 4, clamped) | ``margin`` (ours)
CODEBOOK_LOSSES = ("paper", "margin")


def _per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


def _positive(positive: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(positive, device=like.device).reshape(-1).bool()


def cacl_commitment_loss(q: CodebookQuantization, positive: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the per-image commitment (eq. 1), a scalar."""
    pos = _positive(positive, q.z)
    e = torch.where(pos[:, None, None, None], q.e_p, q.e_n).detach()
    return _per_image_mse(q.z, e).mean()


def cacl_reconstruction_loss(images: torch.Tensor, r_p: torch.Tensor, r_n: torch.Tensor,
                             positive: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the label-routed reconstruction error (eq. 3), a scalar."""
    pos = _positive(positive, images)
    return torch.where(pos, _per_image_mse(images, r_p), _per_image_mse(images, r_n)).mean()


def discriminative_codebook_loss(q: CodebookQuantization, positive: torch.Tensor, class_channels: slice,
                                 margin: float = 0.05, normalize: bool = True) -> torch.Tensor:
    """Mean over the batch of ``K ||e_N - e_P||^2`` on ``class_channels`` (eq. 4), positives clamped at -margin.

    The gradient reaches the encoder through ``e_P``'s straight-through estimate (``e_N`` is zero on the class
    channels, so the term is the squared norm of the class code that ``e_P`` chose). ``normalize``: divided by the
    batch's mean squared feature value (no gradient), which makes the term (and ``margin``) independent of the scale
    the encoder's features happen to have; about the fraction of latent pixels on a class code times the relative
    size of those codes."""
    pos = _positive(positive, q.z)
    d = (q.e_p[:, class_channels] - q.e_n[:, class_channels].detach()).pow(2).flatten(1).mean(1)
    if normalize:
        d = d / q.z.detach().pow(2).mean().clamp_min(1e-8)
    return torch.where(pos, -d.clamp(max=float(margin)), d).mean()


def class_code_margin_loss(q: CodebookQuantization, positive: torch.Tensor, delta: float = 0.1,
                           top_fraction: float = 0.05) -> torch.Tensor:
    """Mean over the batch of a hinge on the class margin (see the module docstring), over the ``top_fraction`` of
    each image's latent pixels with the largest margin ``m``: ``mean relu(m + delta)`` for a negative image,
    ``mean relu(delta - m)`` for a positive one."""
    if not 0.0 < float(top_fraction) <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}.")
    pos = _positive(positive, q.z)
    m = q.class_margin.flatten(1)
    k = max(1, int(round(float(top_fraction) * m.shape[1])))
    top = m.topk(k, dim=1).values
    neg_term = torch.relu(top + float(delta)).mean(1)
    pos_term = torch.relu(float(delta) - top).mean(1)
    return torch.where(pos, pos_term, neg_term).mean()
