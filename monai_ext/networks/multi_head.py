"""A segmentation network shared by several tasks whose label sets differ: one MONAI ``BasicUNet`` body and one
1x1-convolution head per task (MetaHistoSeg, Yuan et al., DGM4MICCAI/DALI 2021, section 2.3: "task-specific
heads", each sample routed only to its own task's head).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.nets import BasicUNet
from torch import nn

__all__ = ["PADDED_LOGIT", "MultiHeadSegNet"]

#: the logit of a class a sample's task does not have, in a batch that mixes tasks: softmax gives it ~0, so
#: cross-entropy and argmax over the padded channels equal those over the task's own classes (fp16-safe)
PADDED_LOGIT = -1.0e4


class MultiHeadSegNet(nn.Module):
    """A MONAI ``BasicUNet`` whose last layer is one 1x1 convolution per task.

    ``forward(x, task_index=None)``:

    - ``task_index`` ``None``: the ``default_task`` (so that tools calling ``network(x)``, TorchScript export and
      the Model Zoo checks get one task's segmentation);
    - an int: that task's logits, (B, class_counts[task], spatial...);
    - a (B,) tensor of task indices: each sample through its own task's head. If the batch holds one task, its
      logits as above; if it mixes tasks, (B, max(class_counts), spatial...) with the channels a sample's task does
      not have set to :data:`PADDED_LOGIT`.

    Args:
        spatial_dims: 2 for tiles, 3 for volumes.
        in_channels: input channels (3 for RGB).
        class_counts: number of classes of each task, background included (e.g. ``[2, 4, 6]``).
        features: ``BasicUNet`` features (six numbers; the last is the width the heads read).
        norm: ``BasicUNet`` normalisation; the default instance norm keeps no running statistics, so the
            adapted weights of a MAML inner step need no per-step statistics.
        dropout: ``BasicUNet`` dropout.
        default_task: the task of ``forward(x)`` without a task index.
    """

    def __init__(self, spatial_dims: int, in_channels: int, class_counts: Sequence[int],
                 features: Sequence[int] = (16, 16, 32, 64, 128, 16),
                 norm: str | tuple = ("instance", {"affine": True}), dropout: float = 0.0,
                 default_task: int = 0) -> None:
        super().__init__()
        counts = [int(c) for c in class_counts]
        if not counts or min(counts) < 2:
            raise ValueError(f"class_counts must list >= 2 classes (background included) per task, got {list(class_counts)}.")
        self.class_counts = counts
        self.body = BasicUNet(spatial_dims, in_channels, int(features[-1]), features=tuple(features), norm=norm,
                              dropout=dropout)
        self.body.final_conv = nn.Identity()  # the last layer is per task
        conv = Conv[Conv.CONV, spatial_dims]
        self.heads = nn.ModuleList([conv(int(features[-1]), c, kernel_size=1) for c in counts])
        self.default_task = self._check_task(int(default_task))

    def _check_task(self, task: int) -> int:
        if not 0 <= task < len(self.heads):
            raise ValueError(f"task index {task} out of range: the network has {len(self.heads)} task heads "
                             f"(class counts {self.class_counts}).")
        return task

    def forward(self, x: torch.Tensor, task_index: int | torch.Tensor | None = None) -> torch.Tensor:
        feats = self.body(x)
        if task_index is None:
            return self.heads[self.default_task](feats)
        if not isinstance(task_index, torch.Tensor):
            return self.heads[self._check_task(int(task_index))](feats)
        index = task_index.reshape(-1).long()
        if index.numel() != x.shape[0]:
            raise ValueError(f"task_index has {index.numel()} entries for a batch of {x.shape[0]}.")
        tasks = [self._check_task(int(t)) for t in torch.unique(index).tolist()]
        if len(tasks) == 1:
            return self.heads[tasks[0]](feats)
        width = max(self.class_counts[t] for t in tasks)
        spatial_pad = (0, 0) * (x.ndim - 2)
        out = None
        for t in tasks:   # every head on the whole batch (1x1 convolutions: cheap), each sample takes its own
            logits = F.pad(self.heads[t](feats), spatial_pad + (0, width - self.class_counts[t]), value=PADDED_LOGIT)
            mine = (index == t).reshape(-1, *([1] * (x.ndim - 1)))
            out = logits if out is None else torch.where(mine, logits, out)
        return out
