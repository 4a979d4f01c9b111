"""Conditional inpainting networks of CT-SGAN's learned nodule injector and eraser.

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021, Sect. 3 and Appendix B, Figs. 6-7) injects and erases
nodules with two 3D cGANs after Jin et al. (MICCAI 2018, "CT-realistic lung nodule simulation"): a
generator fills the masked central region of a volume of interest (VOI) and a discriminator judges the
(condition, VOI) pair. Both share the architecture here and differ by their conditioning:

- injector: the VOI with its central region blanked, the region mask and a target nodule mask (a ball of
  the wanted diameter), so the size is controllable;
- eraser: the VOI with the nodule (not blanked) and the region mask.

Intensities: HU mapped linearly to [-1, 1] (:func:`monai_ext.transforms.hu_to_unit` / :func:`~monai_ext.transforms.unit_to_hu` over
:data:`NODULE_HU_WINDOW`). Only the region is
generated; outside it the input is passed through, so a VOI pasted back changes the CT only inside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import BasicUNet, PatchDiscriminator
from torch import nn

__all__ = ["INPAINT_MODES", "NODULE_HU_WINDOW", "NoduleInpaintingGenerator", "NodulePairCritic"]

#: The inpainting networks' intensity window: HU in ``[-1000, 400]`` map to ``[-1, 1]`` (``monai_ext.transforms.hu_to_unit``).
NODULE_HU_WINDOW = (-1000.0, 400.0)

INPAINT_MODES = ("inject", "erase")


def _inpaint_check_mode(mode: str) -> str:
    if mode not in INPAINT_MODES:
        raise ValueError(f"mode={mode!r}: expected one of {INPAINT_MODES}.")
    return mode


class NoduleInpaintingGenerator(nn.Module):
    """3D conditional inpainting generator (MONAI :class:`~monai.networks.nets.BasicUNet` backbone).

    Args:
        mode: ``"inject"`` (inputs: blanked VOI, region mask, target nodule mask) or ``"erase"`` (inputs:
            VOI with the nodule, region mask).
        features: BasicUNet widths (6 values; the default, 0.87 M parameters, is a 3.5 MB checkpoint); the VOI
            sides must be divisible by 16.

    ``forward(voi, region, nodule_mask=None)``: ``voi`` (B, 1, H, W, D) in [-1, 1], ``region`` (B, 1, H, W, D)
    in {0, 1} (the central region to fill), ``nodule_mask`` (B, 1, H, W, D) in {0, 1} (injector only).
    Returns (B, 1, H, W, D) in [-1, 1]: the input outside ``region``, generated inside.
    """

    def __init__(self, mode: str = "inject", features: Sequence[int] = (8, 16, 32, 64, 64, 8)) -> None:
        super().__init__()
        self.mode = _inpaint_check_mode(mode)
        self.inject = mode == "inject"
        in_channels = 3 if self.inject else 2
        self.in_channels = in_channels
        self.unet = BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=1, features=tuple(features))

    def condition(self, voi: torch.Tensor, region: torch.Tensor, nodule_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The conditioning channels (also what the critic sees beside the VOI)."""
        if voi.ndim != 5 or voi.shape[1] != 1:
            raise ValueError(f"voi: expected (B, 1, H, W, D), got shape {tuple(voi.shape)}.")
        if region.shape != voi.shape:
            raise ValueError(f"region: shape {tuple(region.shape)} does not match voi {tuple(voi.shape)}.")
        if self.inject:
            if nodule_mask is None or nodule_mask.shape != voi.shape:
                got = None if nodule_mask is None else tuple(nodule_mask.shape)
                raise ValueError(f"nodule_mask: the injector needs a (B, 1, H, W, D) target mask like voi, got {got}.")
            return torch.cat([voi * (1.0 - region), region, nodule_mask], 1)
        return torch.cat([voi, region], 1)

    def forward(self, voi: torch.Tensor, region: torch.Tensor, nodule_mask: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.condition(voi, region, nodule_mask)
        if any(int(s) % 16 for s in voi.shape[2:]):
            raise ValueError(f"voi: spatial size {tuple(voi.shape[2:])} must be divisible by 16.")
        region = (region > 0.5).to(voi.dtype)  # a binary mask keeps the voxels outside the region bit for bit
        fill = torch.tanh(self.unet(cond))
        return voi * (1.0 - region) + fill * region


class NodulePairCritic(nn.Module):
    """Conditional patch critic (MONAI :class:`~monai.networks.nets.PatchDiscriminator`, 3D) on the
    concatenated conditioning channels and VOI. ``forward(condition, voi)`` -> patch logits (B, 1, h, w, d)."""

    def __init__(self, mode: str = "inject", channels: int = 16, num_layers_d: int = 2) -> None:
        super().__init__()
        _inpaint_check_mode(mode)
        cond = 3 if mode == "inject" else 2
        self.net = PatchDiscriminator(spatial_dims=3, channels=channels, in_channels=cond + 1, out_channels=1,
                                      num_layers_d=num_layers_d, norm="INSTANCE")

    def forward(self, condition: torch.Tensor, voi: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, voi], 1))[-1]
