"""Model-agnostic meta-learning (MAML, Finn et al. 2017) as a MONAI trainer, for any network and loss.

Each iteration takes a batch of episodes from :class:`~monai_ext.engines.task_sampling.EpisodeBatchSampler` (one
task per episode, its support items first). For every episode the network's weights take ``inner_steps`` SGD steps
of ``inner_lr`` on the support loss (``torch.func.functional_call`` on a copy of the weights: the module itself is
not changed), then the adapted weights are scored on the query items. The mean query loss over the episodes is the
meta-loss; its gradient with respect to the original weights goes to the trainer's optimiser (the outer loop,
e.g. Adam 1e-4 as MetaHistoSeg).

- ``first_order=False``: second-order MAML, the meta-gradient differentiates through the inner steps
  (``create_graph=True``; memory grows with ``inner_steps``).
- ``first_order=True`` (FOMAML): the inner gradients are treated as constants, so the meta-gradient is the query
  loss's gradient at the adapted weights (about the cost of two plain steps).

Under ``torch.distributed`` each rank runs its own episodes and the meta-gradients are averaged before the step
(:func:`~monai_ext.engines.distributed.synced_optimizer_step`): the network must not be wrapped in
``DistributedDataParallel``, which supposes one forward per step. With ``amp=True`` the forward passes run under
``torch.autocast`` in bfloat16 (no gradient scaler: the inner gradients could not be unscaled).
"""

from __future__ import annotations

from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys
from torch.func import functional_call

from .distributed import synced_optimizer_step

__all__ = ["MAMLTrainer"]


class MAMLTrainer(SupervisedTrainer):
    """MONAI ``SupervisedTrainer`` whose iteration is one MAML meta-update over a batch of episodes.

    Same arguments as ``SupervisedTrainer`` (``prepare_batch`` and ``inferer`` are not used: the batch is read as
    ``batch[image_key]``, ``batch[label_key]``, ``batch[task_key]``; ``decollate`` defaults to ``False``), plus:

    Args:
        episodes_per_batch: episodes per batch; the batch size must be a multiple of it, each consecutive block one
            episode.
        support: support items at the start of each episode (the rest are its query items, at least one).
        inner_lr: the inner SGD step size (MetaHistoSeg: 0.01).
        inner_steps: inner steps per episode (MetaHistoSeg: 1).
        first_order: FOMAML instead of second-order MAML.
        task_key: batch key of the per-item task index (``None``: the network is called with the image only).
        task_arg: keyword under which the network gets the episode's task index (an int).

    ``engine.state.output`` holds ``loss`` (the meta-loss), ``support_loss`` (mean support loss before
    adaptation) and, for the last episode, its query image, label and prediction.
    """

    def __init__(self, *args: Any, episodes_per_batch: int = 4, support: int = 8, inner_lr: float = 0.01,
                 inner_steps: int = 1, first_order: bool = True, task_key: str | None = "task",
                 task_arg: str = "task_index", image_key: str = Keys.IMAGE, label_key: str = Keys.LABEL,
                 **kwargs: Any) -> None:
        kwargs.setdefault("decollate", False)
        super().__init__(*args, **kwargs)
        if int(episodes_per_batch) < 1 or int(support) < 1 or int(inner_steps) < 1 or float(inner_lr) <= 0:
            raise ValueError(f"episodes_per_batch ({episodes_per_batch}), support ({support}) and inner_steps "
                             f"({inner_steps}) must be >= 1 and inner_lr ({inner_lr}) > 0.")
        self.episodes_per_batch, self.support = int(episodes_per_batch), int(support)
        self.inner_lr, self.inner_steps, self.first_order = float(inner_lr), int(inner_steps), bool(first_order)
        self.task_key, self.task_arg = task_key, task_arg
        self.image_key, self.label_key = image_key, label_key

    def _episode_task(self, tasks: torch.Tensor | None, episode: int) -> dict[str, int]:
        if tasks is None:
            return {}
        values = torch.unique(tasks).tolist()
        if len(values) != 1:
            raise ValueError(f"MAMLTrainer: episode {episode} mixes tasks {values}; every block of the batch must be "
                             "one task (use EpisodeBatchSampler as the DataLoader's batch_sampler).")
        return {self.task_arg: int(values[0])}

    def adapt(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], image: torch.Tensor,
              label: torch.Tensor, task: dict[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The inner loop: ``(adapted weights, support loss before the first step)``."""
        fast, first_loss = params, None
        for _ in range(self.inner_steps):
            with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=bool(self.amp)):
                loss = self.loss_function(functional_call(self.network, {**fast, **buffers}, (image,), task), label)
            first_loss = loss if first_loss is None else first_loss
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not self.first_order, allow_unused=True)
            fast = {n: p if g is None else p - self.inner_lr * g for (n, p), g in zip(fast.items(), grads)}
        return fast, first_loss

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        device = engine.state.device
        image = batchdata[self.image_key].to(device, non_blocking=engine.non_blocking)
        label = batchdata[self.label_key].to(device, non_blocking=engine.non_blocking)
        tasks = None if self.task_key is None else torch.as_tensor(batchdata[self.task_key]).reshape(-1).cpu()
        size = image.shape[0] // self.episodes_per_batch
        if image.shape[0] % self.episodes_per_batch or size <= self.support:
            raise ValueError(f"MAMLTrainer: a batch of {image.shape[0]} items does not split into "
                             f"{self.episodes_per_batch} episodes of {self.support} support items plus at least one "
                             "query item.")
        last: dict[str, torch.Tensor] = {}

        def compute_loss() -> tuple[torch.Tensor, torch.Tensor]:
            params = {n: p for n, p in self.network.named_parameters() if p.requires_grad}
            buffers = dict(self.network.named_buffers())
            meta_loss, support_loss = image.new_zeros(()), image.new_zeros(())
            for e in range(self.episodes_per_batch):
                block = slice(e * size, (e + 1) * size)
                task = self._episode_task(None if tasks is None else tasks[block], e)
                x, y = image[block], label[block]
                fast, s_loss = self.adapt(params, buffers, x[: self.support], y[: self.support], task)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(self.amp)):
                    pred = functional_call(self.network, {**fast, **buffers}, (x[self.support :],), task)
                    q_loss = self.loss_function(pred, y[self.support :])
                meta_loss = meta_loss + q_loss.float() / self.episodes_per_batch
                support_loss = support_loss + s_loss.detach().float() / self.episodes_per_batch
                last.update({Keys.IMAGE: x[self.support :], Keys.LABEL: y[self.support :], Keys.PRED: pred.detach()})
            return meta_loss, support_loss

        loss, support_loss = synced_optimizer_step(engine, compute_loss)
        return {**last, Keys.LOSS: loss.detach(), "support_loss": support_loss}
