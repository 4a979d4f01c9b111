"""FGSM adversarial examples added to training, as a MONAI ``prepare_batch``.

Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015): the fast gradient
sign method moves every input value by ``epsilon`` in the direction that increases the loss,
``x_adv = x + epsilon * sign(grad_x J(theta, x, y))``, and adversarial training minimises the mixed objective
``alpha J(x, y) + (1 - alpha) J(x_adv, y)`` with alpha = 0.5. Paper 000 (the project proposal) takes it from
Ren et al. (MLMI 2019), who added FGSM examples to train brain-MR segmentation on 7 volumes.

:class:`FGSMPrepareBatch` returns the clean samples and their adversarial copies as one batch (2B samples, the
labels repeated): a loss averaged over the batch is then the mixed objective with alpha = 0.5.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from torch import nn

from ..networks import unwrap_parallel
from .labelled_batch import labelled_batch_tensors

__all__ = ["FGSMPrepareBatch"]


class FGSMPrepareBatch(PrepareBatch):
    """``prepare_batch`` for :class:`monai.engines.SupervisedTrainer` that adds FGSM adversarial examples.

    For a batch (image, label) on ``device``: with probability ``prob`` compute ``g = d loss_function(network(x),
    y) / dx`` with :func:`torch.autograd.grad` (w.r.t. the input only: nothing is accumulated into the parameters'
    ``.grad``), ``x_adv = clip(x + eps * sign(g), *clip_range)``, ``eps = epsilon_hu / hu_per_unit``, and return
    ``(cat([x, x_adv]), cat([y, y]))``; otherwise the clean batch. The adversarial samples are detached (constants
    for the training step), as in Goodfellow et al.

    Args:
        network: the network being trained (a DDP / DataParallel wrapper is unwrapped).
        loss_function: the training loss, called as ``loss_function(network(x), y)``.
        epsilon_hu: size of the step in Hounsfield units (>= 0; 0 returns the clean batch alone). The default 15 HU
            (0.01 of the lung window W1500) is below the noise of a standard-dose chest CT (about 20-40 HU in lung
            and soft tissue), so an adversarial patch still looks like a plausible scan.
        hu_per_unit: HU per unit of the network's input, i.e. the width of the window that scaled HU to [0, 1]
            (1500 for the lung window -1350..150 HU).
        prob: probability of adding adversarial examples to a batch, in [0, 1] (1.0: every batch, Goodfellow's
            mixed objective; smaller values alternate between B and 2B samples).
        clip_range: (low, high) range of the input (the window: [0, 1]); ``None``: no clipping.
        train_mode: ``True``: the gradient is taken in training mode (batch-norm on batch statistics, dropout on),
            as the training step itself computes the loss (the trainer calls ``network.train()`` only after
            ``prepare_batch``, so after a validation round the network would still be in eval mode); ``False``: in
            eval mode; ``None``: in whatever mode the network is. The mode is restored afterwards, and so are the
            network's buffers: in training mode this extra forward pass would otherwise move the batch-norm running
            statistics once more per iteration.
        amp: compute the gradient under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU), as the trainer's
            forward pass with ``amp=True``. The loss is scaled by ``amp_loss_scale`` before differentiating (the sign
            does not depend on it) so that small float16 gradients do not flush to zero; if the gradient is not
            finite it is recomputed in float32.

    Cost: one more forward and backward pass (w.r.t. the input) per batch, and the training step then runs on 2B
    samples: about 2x the compute and activation memory of a plain step (3 forward+backward passes of B samples
    instead of 1). The last step's size is in ``last_epsilon``; ``last_applied`` says whether the batch got
    adversarial samples.
    """

    def __init__(
        self,
        network: nn.Module,
        loss_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        epsilon_hu: float = 15.0,
        hu_per_unit: float = 1500.0,
        prob: float = 1.0,
        clip_range: Sequence[float] | None = (0.0, 1.0),
        train_mode: bool | None = True,
        amp: bool = False,
        amp_loss_scale: float = 1024.0,
    ) -> None:
        if not float(epsilon_hu) >= 0.0:
            raise ValueError(f"FGSMPrepareBatch: epsilon_hu must be >= 0, got {epsilon_hu!r}.")
        if not float(hu_per_unit) > 0.0:
            raise ValueError(f"FGSMPrepareBatch: hu_per_unit must be > 0 (the window width in HU), got {hu_per_unit!r}.")
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"FGSMPrepareBatch: prob must be in [0, 1], got {prob!r}.")
        if clip_range is not None:
            clip_range = (float(clip_range[0]), float(clip_range[1]))
            if not clip_range[0] < clip_range[1]:
                raise ValueError(f"FGSMPrepareBatch: clip_range must be (low, high) with low < high, got {clip_range}.")
        if not float(amp_loss_scale) > 0.0:
            raise ValueError(f"FGSMPrepareBatch: amp_loss_scale must be > 0, got {amp_loss_scale!r}.")
        self.network = network
        self.loss_function = loss_function
        self.epsilon_hu = float(epsilon_hu)
        self.hu_per_unit = float(hu_per_unit)
        self.epsilon = self.epsilon_hu / self.hu_per_unit
        self.prob = float(prob)
        self.clip_range = clip_range
        self.train_mode = train_mode
        self.amp = bool(amp)
        self.amp_loss_scale = float(amp_loss_scale)
        self.last_applied = False
        self.last_epsilon = self.epsilon

    def input_gradient(self, images: torch.Tensor, labels: torch.Tensor, amp: bool | None = None) -> torch.Tensor:
        """``d loss_function(network(images), labels) / d images`` (same shape as ``images``), leaving the
        network's parameters' ``.grad``, its mode and its buffers as they were. Works under ``torch.no_grad``."""
        # the module inside a (Distributed)DataParallel wrapper: the input-gradient pass is then a plain forward and
        # backward of this process's module (no buffer broadcast, no gradient-reduction bookkeeping of the wrapper)
        net = unwrap_parallel(self.network)
        amp = self.amp if amp is None else amp
        was_training = net.training
        buffers = [b.detach().clone() for b in net.buffers()]
        x = images.detach().clone().requires_grad_(True)
        if amp:
            dtype = torch.float16 if x.device.type == "cuda" else torch.bfloat16
            autocast = torch.autocast(device_type=x.device.type, dtype=dtype)
            scale = self.amp_loss_scale
        else:
            autocast, scale = contextlib.nullcontext(), 1.0
        try:
            if self.train_mode is not None:
                net.train(bool(self.train_mode))
            with torch.enable_grad():
                with autocast:
                    loss = self.loss_function(net(x), labels).mean()
                (grad,) = torch.autograd.grad(loss.float() * scale, x)
        finally:
            net.train(was_training)
            with torch.no_grad():
                for b, saved in zip(net.buffers(), buffers):
                    b.copy_(saved)
        if amp and not bool(torch.isfinite(grad).all()):
            return self.input_gradient(images, labels, amp=False)
        return grad

    def adversarial(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``clip(images + epsilon * sign(grad), clip_range)``, detached (``epsilon = epsilon_hu / hu_per_unit``)."""
        grad = self.input_gradient(images, labels)
        adv = images.detach() + self.epsilon * torch.sign(grad).to(images.dtype)
        if self.clip_range is not None:
            adv = adv.clamp(*self.clip_range)
        return adv.detach()

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Move the batch to ``device`` (as MONAI's default), then return clean + adversarial samples and labels."""
        images, labels = labelled_batch_tensors(
            batchdata, device, non_blocking, "FGSMPrepareBatch", "the adversarial step needs the loss", **kwargs
        )
        self.last_applied = False
        if self.epsilon == 0.0 or (self.prob < 1.0 and float(torch.rand(())) >= self.prob):
            return images, labels
        adv = self.adversarial(images, labels)
        self.last_applied = True
        return torch.cat([images, adv]), torch.cat([labels, labels])
