"""A segmentation network shared by several tasks whose label sets differ: one MONAI ``BasicUNet`` body and one
1x1-convolution head per task (MetaHistoSeg, Yuan et al., DGM4MICCAI/DALI 2021, section 2.3: "task-specific
heads", each sample routed only to its own task's head).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Optional, Union

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
        self.padded_logit = PADDED_LOGIT

    def _check_task(self, task: int) -> int:
        if task < 0 or task >= len(self.class_counts):
            raise ValueError("task index " + str(task) + " out of range: the network has " + str(len(self.class_counts))
                             + " task heads (class counts " + str(self.class_counts) + ").")
        return task

    def _head(self, feats: torch.Tensor, task: int) -> torch.Tensor:
        task = self._check_task(task)
        out = feats
        for i, head in enumerate(self.heads):   # TorchScript indexes a ModuleList by literals only
            if i == task:
                out = head(feats)
        return out

    def forward(self, x: torch.Tensor, task_index: Optional[Union[int, torch.Tensor]] = None) -> torch.Tensor:
        feats = self.body(x)
        if task_index is None:
            return self._head(feats, self.default_task)
        if not isinstance(task_index, torch.Tensor):
            return self._head(feats, int(task_index))
        index = task_index.reshape(-1).long()
        if index.numel() != x.shape[0]:
            raise ValueError("task_index has " + str(index.numel()) + " entries for a batch of " + str(x.shape[0]) + ".")
        present: List[int] = torch.unique(index).tolist()
        tasks: List[int] = [self._check_task(t) for t in present]
        if len(tasks) == 1:
            return self._head(feats, tasks[0])
        width = max([self.class_counts[t] for t in tasks])
        spatial_pad: List[int] = [0, 0] * (x.dim() - 2)
        out = feats
        first = True
        for i, head in enumerate(self.heads):   # every head on the whole batch (1x1 convolutions: cheap)
            if i in tasks:
                logits = F.pad(head(feats), spatial_pad + [0, width - self.class_counts[i]], value=self.padded_logit)
                mine = (index == i).reshape([-1] + [1] * (x.dim() - 1))
                out = logits if first else torch.where(mine, logits, out)
                first = False
        return out
