"""A MONAI inferer that returns CaCL's masks, so MONAI's evaluators and the bundle runner can segment with a
:class:`CaCLNet` like with any segmentation network."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

from .network import CACL_MASK_MODES, CaCLNet

__all__ = ["CodebookMaskInferer"]


class CodebookMaskInferer(Inferer):
    """``inferer(images, network)`` -> (B, 1, H, W) float masks in {0, 1} from :meth:`CaCLNet.segment`.

    Args:
        mode: ``codes`` (the paper: latent pixels on a class code) | ``difference`` (``|R_P - R_N| > threshold``).
        threshold: the ``difference`` mode's threshold (intensities in [0, 1]).

    ``network`` may be wrapped (DistributedDataParallel, DataParallel: its ``module`` is used). It is put in eval
    mode. Raises ``TypeError`` when it is not a CaCLNet.
    """

    def __init__(self, mode: str = "codes", threshold: float = 0.1) -> None:
        if mode not in CACL_MASK_MODES:
            raise ValueError(f"mode must be one of {CACL_MASK_MODES}, got {mode!r}.")
        self.mode, self.threshold = mode, float(threshold)

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        net = getattr(network, "module", network)
        if not isinstance(net, CaCLNet):
            raise TypeError(f"CodebookMaskInferer needs a CaCLNet, got {type(net).__name__}.")
        net.eval()
        return net.segment(torch.as_tensor(inputs).float(), self.mode, self.threshold)
