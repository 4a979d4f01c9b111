"""The image and label of a batch as plain tensors on the training device: the start of a ``prepare_batch`` that
needs both (mixup, FGSM)."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import default_prepare_batch

__all__ = ["labelled_batch_tensors"]


def labelled_batch_tensors(
    batchdata: dict[str, torch.Tensor],
    device: str | torch.device | None,
    non_blocking: bool,
    owner: str,
    need: str,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` moved as MONAI's ``default_prepare_batch`` moves them, as plain ``torch.Tensor`` (the
    MetaTensor metadata dropped). A batch without a label raises ``ValueError`` naming ``owner`` and what it
    ``need``s the label for."""
    images, labels = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
    if labels is None:
        raise ValueError(f"{owner}: the batch has no 'label'; {need}.")
    images = images.as_tensor() if hasattr(images, "as_tensor") else images
    labels = labels.as_tensor() if hasattr(labels, "as_tensor") else labels
    return images, labels
