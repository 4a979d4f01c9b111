"""One training iteration of the label-noise study's models: Seg, AE and MT (Vorontsov & Kadoury, DGM4MICCAI 2021).

Every model minimises soft Dice on the *labelled* images of the batch (the batch's ``"labelled"`` flags; an image
whose mask was discarded is unlabelled). The semi-supervised models add a term that every image trains:

- AE: ``reconstruction_weight`` x mean squared error between the network's second decoder output and the input;
- MT: ``consistency_weight`` x mean squared error between the student's and the EMA teacher's sigmoid outputs, each
  on its own Gaussian-noise copy of the input (Tarvainen & Valpola 2017), the weight ramped up linearly over the
  first ``consistency_rampup`` iterations. The teacher is updated by :class:`monai_ext.handlers.MeanTeacherEMA`.

Used as ``SupervisedTrainer(iteration_update=SemiSupervisedIteration(...))``: the trainer's network, optimizer,
``prepare_batch``, AMP scaler and handlers work as usual; ``engine.state.output`` holds image, label, pred, loss
and the loss terms (``loss_dice``, ``loss_reconstruction``, ``loss_consistency``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn
from torch.nn import functional as F

from ...engines import step_with_loss

__all__ = ["SemiSupervisedIteration"]


class SemiSupervisedIteration:
    """The iteration of Seg (both weights 0), AE (``reconstruction_weight`` > 0) or MT (``teacher`` given).

    Args:
        loss_function: the supervised loss of labelled images, e.g. MONAI ``DiceLoss(sigmoid=True)``.
        reconstruction_weight: weight of the input reconstruction (needs a network with
            ``forward(x, return_reconstruction=True)``, e.g. :class:`DualDecoderUNet` with ``reconstruction=True``).
        teacher: the mean teacher (:func:`monai_ext.handlers.ema_teacher`); ``None``: no consistency term.
        consistency_weight: weight of the student-teacher consistency at the end of the ramp-up.
        consistency_rampup: iterations over which the consistency weight grows linearly from 0.
        input_noise_std: standard deviation of the Gaussian noise added to the inputs of student and teacher (MT).
        labelled_key: batch key of the per-image labelled flags (absent: every image is labelled).
    """

    def __init__(
        self,
        loss_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        reconstruction_weight: float = 0.0,
        teacher: nn.Module | None = None,
        consistency_weight: float = 0.0,
        consistency_rampup: int = 0,
        input_noise_std: float = 0.0,
        labelled_key: str = "labelled",
    ) -> None:
        for name, v in (("reconstruction_weight", reconstruction_weight), ("consistency_weight", consistency_weight),
                        ("input_noise_std", input_noise_std), ("consistency_rampup", consistency_rampup)):
            if float(v) < 0:
                raise ValueError(f"SemiSupervisedIteration: {name} must be >= 0, got {v!r}.")
        self.loss_function = loss_function
        self.reconstruction_weight = float(reconstruction_weight)
        self.teacher = teacher
        self.consistency_weight = float(consistency_weight)
        self.consistency_rampup = int(consistency_rampup)
        self.input_noise_std = float(input_noise_std)
        self.labelled_key = labelled_key

    def _labelled(self, batchdata: dict, n: int, device: torch.device) -> torch.Tensor:
        flags = batchdata.get(self.labelled_key) if isinstance(batchdata, dict) else None
        if flags is None:
            return torch.ones(n, dtype=torch.bool, device=device)
        flags = torch.as_tensor(flags, device=device).reshape(-1).bool()
        if flags.numel() != n:
            raise ValueError(f"SemiSupervisedIteration: {flags.numel()} '{self.labelled_key}' flags for {n} images.")
        return flags

    def _noisy(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.input_noise_std * torch.randn_like(x) if self.input_noise_std > 0 else x

    def _losses(self, engine: Any, images: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor) -> dict:
        out: dict[str, torch.Tensor] = {}
        x = self._noisy(images) if self.teacher is not None else images
        if self.reconstruction_weight > 0:
            pred, recon = engine.network(x, return_reconstruction=True)
            out["loss_reconstruction"] = F.mse_loss(recon.float(), images.float())
        else:
            pred = engine.network(x)
        out[Keys.PRED] = pred
        zero = pred.float().sum() * 0.0
        if bool(labelled.all()):                 # no copy of the batch when every image is labelled (the usual case)
            out["loss_dice"] = self.loss_function(pred, labels).mean()
        elif bool(labelled.any()):
            out["loss_dice"] = self.loss_function(pred[labelled], labels[labelled]).mean()
        else:
            out["loss_dice"] = zero
        loss = out["loss_dice"] + self.reconstruction_weight * out.get("loss_reconstruction", zero)
        if self.teacher is not None:
            with torch.no_grad():
                target = torch.sigmoid(self.teacher(self._noisy(images)).float())
            out["loss_consistency"] = F.mse_loss(torch.sigmoid(pred.float()), target)
            ramp = min(1.0, engine.state.iteration / self.consistency_rampup) if self.consistency_rampup else 1.0
            loss = loss + ramp * self.consistency_weight * out["loss_consistency"]
        out[Keys.LOSS] = loss
        return out

    def __call__(self, engine: Any, batchdata: dict) -> dict:
        if batchdata is None:
            raise ValueError("SemiSupervisedIteration: no batch data.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        images, labels = batch[0], batch[1]
        if labels is None:
            raise ValueError("SemiSupervisedIteration: the batch has no 'label' (unlabelled images still need one; "
                             "mark them with labelled = False).")
        labelled = self._labelled(batchdata, images.shape[0], images.device)
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        engine.state.output = {Keys.IMAGE: images, Keys.LABEL: labels}
        amp = engine.amp and engine.scaler is not None
        with torch.autocast("cuda", **engine.amp_kwargs) if amp else nullcontext():
            out = self._losses(engine, images, labels, labelled)
        self._record(engine, out)
        return step_with_loss(engine, out[Keys.LOSS])

    @staticmethod
    def _record(engine: Any, out: dict) -> None:
        engine.state.output[Keys.PRED] = out[Keys.PRED]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.state.output[Keys.LOSS] = out[Keys.LOSS]
        engine.state.output.update({k: v.detach() for k, v in out.items() if k not in (Keys.PRED, Keys.LOSS)})
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
