"""Training engine of CaCL (Deng et al., section 2.2-2.3): the combined VQ-VAE step and the 4-way classifier step.

Why an engine and not MONAI's :class:`~monai.engines.GanTrainer`: GanTrainer's generator takes latents, not the
batch, and its discriminator sees real / fake only. CaCL's "generator" is an autoencoder routed by the image label
and its discriminator is a 4-way classifier Cl_s of {input positive I_P, input negative I_N, reconstructed positive
R_P, reconstructed negative R_N}. So :class:`CaCLTrainer` subclasses :class:`~monai.engines.SupervisedTrainer`
(events, handlers, checkpoints as usual) and replaces ``_iteration``:

1. combined step (every iteration), eq. 7: ``w_map * mapping + w_commit * commitment + w_recons * reconstruction
   + w_disc * discriminative_codebook``. The mapping loss (eq. 6) asks Cl_s to take R_P for I_P and R_N for I_N; for
   a negative image R_P is asked to pass as I_N too (it should equal R_N: a negative image has no class pattern).
2. classifier step (every ``classifier_interval`` iterations; the paper: every ten epochs), eq. 5: cross-entropy over
   the real images (I_P / I_N by their label) and generated images from two history pools (R_P of positive images,
   R_N of all images).

Under ``torch.distributed`` the weights start equal on every rank, gradients are averaged before each step and the
codebook's EMA statistics are summed over the ranks (see :mod:`monai_ext.engines.distributed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys
from torch import nn
from torch.optim import Optimizer

from ...engines.distributed import average_gradients, broadcast_module, is_distributed
from ...engines.history_pool import HistoryImagePool
from ...engines.labelled_batch import labelled_batch_tensors
from .losses import (
    CODEBOOK_LOSSES,
    cacl_commitment_loss,
    cacl_reconstruction_loss,
    class_code_margin_loss,
    discriminative_codebook_loss,
)
from .network import CaCLNet

__all__ = ["CACL_CLASSES", "CaCLTrainer", "image_labels"]

#: the classifier's classes, in this order
CACL_CLASSES = ("input_positive", "input_negative", "recons_positive", "recons_negative")
_IP, _IN, _RP, _RN = range(4)


def image_labels(labels: torch.Tensor, owner: str = "CaCL") -> torch.Tensor:
    """(B,) bool image labels from a batch's ``label`` ((B,) or (B, 1) of 0 / 1). Raises ``ValueError`` naming
    ``owner`` on other values or shapes."""
    lab = torch.as_tensor(labels)
    if lab.ndim > 1:
        lab = lab.reshape(lab.shape[0], -1)
        if lab.shape[1] != 1:
            raise ValueError(f"{owner}: one image label per image expected, got labels of shape {tuple(labels.shape)}.")
        lab = lab[:, 0]
    bad = ~((lab == 0) | (lab == 1))
    if bool(bad.any()):
        raise ValueError(f"{owner}: image labels must be 0 (pattern absent) or 1 (present), got "
                         f"{sorted({float(v) for v in lab[bad].tolist()})[:5]}.")
    return lab.bool()


class CaCLTrainer(SupervisedTrainer):
    """Alternating combined / classifier updates of a :class:`CaCLNet` and its classifier Cl_s.

    Args:
        device, max_epochs, train_data_loader, epoch_length, train_handlers: as for SupervisedTrainer. Batches are
            dicts with ``image`` (B, C, H, W) in [0, 1] and ``label`` (B,) image labels 0 / 1.
        network: the :class:`CaCLNet`; optimizer: its optimiser (encoder and decoder; the codes follow by EMA).
        classifier: Cl_s, a network mapping images to 4 logits (:data:`CACL_CLASSES`); classifier_optimizer: its
            optimiser.
        mapping_weight, commitment_weight, reconstruction_weight, codebook_weight: the weights of eq. 7 (the paper:
            1, 0.25, 100, 50).
        codebook_loss: the discriminative codebook term, ``paper`` (eq. 4: :func:`discriminative_codebook_loss`
            with ``codebook_margin``, ``codebook_normalize``) | ``margin`` (ours: :func:`class_code_margin_loss` with
            ``margin_delta``, ``margin_top_fraction``).
        classifier_interval: a classifier step every this many iterations (>= 1).
        pool_size: capacity of each history pool (the paper: 64).

    ``engine.state.output``: ``pred`` (R_P), ``loss`` (eq. 7), ``recons``, ``commitment``, ``codebook``,
    ``mapping``, ``classifier`` (the last classifier loss), ``class_code_pos`` / ``class_code_neg`` (fraction of the
    latent pixels of the positive / negative images of the batch that picked a class code), floats.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: CaCLNet,
        optimizer: Optimizer,
        classifier: nn.Module,
        classifier_optimizer: Optimizer,
        mapping_weight: float = 1.0,
        commitment_weight: float = 0.25,
        reconstruction_weight: float = 100.0,
        codebook_weight: float = 50.0,
        codebook_loss: str = "margin",
        codebook_margin: float = 0.05,
        codebook_normalize: bool = True,
        margin_delta: float = 0.1,
        margin_top_fraction: float = 0.05,
        classifier_interval: int = 10,
        pool_size: int = 64,
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
    ) -> None:
        if not isinstance(network, CaCLNet):
            raise TypeError(f"network: expected a CaCLNet, got {type(network).__name__}.")
        if codebook_loss not in CODEBOOK_LOSSES:
            raise ValueError(f"codebook_loss must be one of {CODEBOOK_LOSSES}, got {codebook_loss!r}.")
        if isinstance(classifier_interval, bool) or int(classifier_interval) < 1:
            raise ValueError(f"classifier_interval must be a positive integer, got {classifier_interval!r}.")
        super().__init__(device=device, max_epochs=max_epochs, train_data_loader=train_data_loader, network=network,
                         optimizer=optimizer, loss_function=nn.MSELoss(), epoch_length=epoch_length,
                         train_handlers=train_handlers, decollate=False)
        self.classifier = classifier
        self.classifier_optimizer = classifier_optimizer
        self.weights = {"mapping": float(mapping_weight), "commitment": float(commitment_weight),
                        "recons": float(reconstruction_weight), "codebook": float(codebook_weight)}
        self.codebook_loss = codebook_loss
        self.codebook_margin = float(codebook_margin)
        self.codebook_normalize = bool(codebook_normalize)
        self.margin_delta = float(margin_delta)
        self.margin_top_fraction = float(margin_top_fraction)
        self.classifier_interval = int(classifier_interval)
        self.pool_p = HistoryImagePool(pool_size, seed=1)
        self.pool_n = HistoryImagePool(pool_size, seed=2)
        self.last_classifier_loss = float("nan")
        if is_distributed():
            broadcast_module(network)
            broadcast_module(classifier)

    def _classifier_step(self, images: torch.Tensor, positive: torch.Tensor, r_p: torch.Tensor,
                         r_n: torch.Tensor) -> None:
        fakes_p = self.pool_p.query(r_p[positive]) if bool(positive.any()) else r_p[:0].detach()
        fakes_n = self.pool_n.query(r_n)
        x = torch.cat([images, fakes_p, fakes_n])
        target = torch.cat([torch.where(positive, _IP, _IN),
                            torch.full((len(fakes_p),), _RP, device=images.device),
                            torch.full((len(fakes_n),), _RN, device=images.device)]).long()
        self.classifier_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.classifier(x), target)
        loss.backward()
        average_gradients(self.classifier)
        self.classifier_optimizer.step()
        self.last_classifier_loss = float(loss.detach())

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict) -> dict:  # type: ignore[override]
        net: CaCLNet = engine.network  # type: ignore[assignment]
        images, labels = labelled_batch_tensors(batchdata, engine.state.device, engine.non_blocking, "CaCLTrainer",
                                                "it holds the image labels (0 / 1)")
        positive = image_labels(labels, "CaCLTrainer").to(images.device)
        images = images.float()
        net.train()
        self.classifier.train()
        q = net.encode_quantize(images, positive)
        r_p, r_n = net.decode(q.e_p), net.decode(q.e_n)

        recons = cacl_reconstruction_loss(images, r_p, r_n, positive)
        commitment = cacl_commitment_loss(q, positive)
        if self.codebook_loss == "paper":
            codebook = discriminative_codebook_loss(q, positive, net.quantizer.class_channels, self.codebook_margin,
                                                    self.codebook_normalize)
        else:
            codebook = class_code_margin_loss(q, positive, self.margin_delta, self.margin_top_fraction)
        self.classifier.requires_grad_(False)
        target_p = torch.where(positive, _IP, _IN).long()
        mapping = F.cross_entropy(self.classifier(r_p), target_p) + F.cross_entropy(
            self.classifier(r_n), torch.full_like(target_p, _IN))
        self.classifier.requires_grad_(True)
        w = self.weights
        loss = (w["mapping"] * mapping + w["commitment"] * commitment + w["recons"] * recons
                + w["codebook"] * codebook)
        engine.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(net)
        engine.optimizer.step()

        if (engine.state.iteration - 1) % self.classifier_interval == 0:
            self._classifier_step(images, positive, r_p.detach(), r_n.detach())

        class_code = (q.index_p >= net.quantizer.num_shared).float().flatten(1).mean(1)
        frac = {k: float(class_code[m].mean()) if bool(m.any()) else float("nan")
                for k, m in (("class_code_pos", positive), ("class_code_neg", ~positive))}
        return {Keys.IMAGE: images, Keys.LABEL: labels, Keys.PRED: r_p.detach(), Keys.LOSS: loss.detach(),
                "recons": float(recons.detach()), "commitment": float(commitment.detach()),
                "codebook": float(codebook.detach()), "mapping": float(mapping.detach()),
                "classifier": self.last_classifier_loss, **frac}
