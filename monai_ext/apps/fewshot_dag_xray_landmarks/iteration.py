"""One training iteration of Deep Adaptive Graph and of Few-shot DAG (Zhou et al., "Semi-supervised landmark
localization for X-ray with few-shot Deep Adaptive Graph", DALI 2021).

Labelled images (the batch's ``labelled`` flags; their landmarks finite) learn their true landmarks:
``L_global + w1 * L_local``, ``L_global = max(0, mean |v_global - v| - m)`` on the graph after the global affine
step and ``L_local`` the mean L1 of every local step. With a ``teacher`` (a copy of the trained DAG, an exponential
moving average of the student when :class:`monai_ext.handlers.MeanTeacherEMA` updates it, fixed otherwise), every
unlabelled image also learns the teacher's last local prediction on the clean image while the student sees it with
Gaussian noise, the same two terms against those pseudo landmarks, plus ``w2 *`` the JS divergence between the
channel-softmaxed feature maps of student and teacher.

Used as ``SupervisedTrainer(iteration_update=DAGIteration(...))``; the network is a
:class:`monai_ext.networks.DeepAdaptiveGraph` (``forward(x, return_stages=True)``); ``engine.state.output`` holds
image, pred (the student's landmarks), loss and its terms.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn

from ...engines import step_with_loss
from ...losses import ChannelSoftmaxJSDivergenceLoss, MarginL1LandmarkLoss

__all__ = ["DAGIteration"]


class DAGIteration:
    """The iteration of DAG (no teacher), of the pseudo-label baseline (a fixed teacher) and of Few-shot DAG (an
    EMA teacher; ``js_weight`` > 0 adds the feature consistency).

    Args:
        margin: ``m`` of the global loss, pixels.
        local_weight: ``w1``.
        teacher: the teacher network (:func:`monai_ext.handlers.ema_teacher` of the trained DAG) or ``None``.
        js_weight: ``w2``.
        noise_std: standard deviation of the Gaussian noise on the student's input (with a teacher).
        points_key: batch key of the landmarks ``(B, 1, N, 2)`` (grid coordinates; NaN for unlabelled images).
        labelled_key: batch key of the labelled flags (absent: an image is labelled when its points are finite).
    """

    def __init__(self, margin: float = 2.0, local_weight: float = 1.0, teacher: nn.Module | None = None,
                 js_weight: float = 0.0, noise_std: float = 0.0, points_key: str = "points",
                 labelled_key: str = "labelled") -> None:
        for name, v in (("local_weight", local_weight), ("js_weight", js_weight), ("noise_std", noise_std)):
            if not float(v) >= 0:
                raise ValueError(f"DAGIteration: {name} must be >= 0, got {v!r}.")
        self.global_loss = MarginL1LandmarkLoss(margin, reduction="none")
        self.local_loss = MarginL1LandmarkLoss(0.0, reduction="none")
        self.js_loss = ChannelSoftmaxJSDivergenceLoss(reduction="none")
        self.local_weight, self.js_weight, self.noise_std = float(local_weight), float(js_weight), float(noise_std)
        self.teacher = teacher
        self.points_key, self.labelled_key = points_key, labelled_key

    def _batch(self, engine: Any, batchdata: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(batchdata, dict) or "image" not in batchdata or self.points_key not in batchdata:
            raise ValueError(f"DAGIteration: the batch needs 'image' and '{self.points_key}'.")
        device = engine.state.device
        images = torch.as_tensor(batchdata["image"]).to(device, non_blocking=engine.non_blocking).float()
        points = torch.as_tensor(batchdata[self.points_key]).to(device).float()
        if points.ndim == 4:
            points = points[:, 0]
        finite = torch.isfinite(points).all(dim=-1).all(dim=-1)
        flags = batchdata.get(self.labelled_key)
        labelled = finite if flags is None else torch.as_tensor(flags, device=device).reshape(-1).bool()
        if bool((labelled & ~finite).any()):
            raise ValueError("DAGIteration: an image marked labelled has missing (NaN) landmarks.")
        return images, points, labelled

    def _supervised(self, out: tuple, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        _, g, local = out
        return self.global_loss(g[rows], target[rows]) + self.local_weight * self.local_loss(local[:, rows],
                                                                                              target[rows])

    def __call__(self, engine: Any, batchdata: dict) -> dict:
        images, points, labelled = self._batch(engine, batchdata)
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        engine.state.output = {Keys.IMAGE: images}
        amp = engine.amp and engine.scaler is not None
        with torch.autocast("cuda", **engine.amp_kwargs) if amp else nullcontext():
            x = images + self.noise_std * torch.randn_like(images) if self.teacher is not None else images
            out = engine.network(x, return_stages=True)
            zero = out[1].float().sum() * 0.0
            loss_sup = self._supervised(out, points, labelled).mean() if bool(labelled.any()) else zero
            loss_unl, loss_js = zero, zero
            unlabelled = ~labelled
            if self.teacher is not None and bool(unlabelled.any()):
                with torch.no_grad():
                    t_features, _, t_local = self.teacher(images, return_stages=True)
                pseudo = t_local[-1].detach()
                loss_unl = self._supervised(out, pseudo, unlabelled).mean()
                if self.js_weight > 0:
                    loss_js = self.js_loss(out[0][unlabelled].float(), t_features[unlabelled].float()).mean()
            loss = loss_sup + loss_unl + self.js_weight * loss_js
        engine.state.output[Keys.PRED] = out[2][-1].detach()
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.state.output.update({Keys.LOSS: loss, "loss_labelled": loss_sup.detach(),
                                    "loss_unlabelled": loss_unl.detach(), "loss_js": loss_js.detach()})
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        return step_with_loss(engine, loss)
