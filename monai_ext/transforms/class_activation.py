"""Class activation maps of a segmentation network (Grad-CAM), as array and dictionary transforms.

MONAI's :class:`monai.visualize.GradCAM` explains a classifier: it back-propagates one class score (a number per
sample) to a layer's activations, weights each channel by its mean gradient and sums, ``relu(sum_k w_k A_k)``
(Selvaraju et al., ICCV 2017). A segmentation network gives a logit per voxel and class instead, so here a small
wrapper turns them into one score per class first (Seg-Grad-CAM, Vinogradova et al., AAAI 2020): the sum of the
class's logits over the voxels that the network assigns to that class (its argmax), or over all voxels when it
assigns none. Restricting the sum to the predicted region asks "what made the network label *these* voxels as the
class"; the sum over all voxels would be dominated by the far larger area where the class is absent and its
logits are strongly negative, and would explain the background rather than the lesion.

Paper 000 (the project proposal) plans class activation maps to see why the network segments well or badly.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection, NdarrayOrTensor
from monai.networks.utils import one_hot
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple_rep
from monai.visualize import GradCAM
from torch import nn

__all__ = [
    "SegmentationGradCAM",
    "SegmentationGradCAMd",
    "SegmentationGradCAMD",
    "SegmentationGradCAMDict",
]


class _PredictedRegionScores(nn.Module):
    """(B, C, ...) segmentation logits -> (B, C) scores: per class, the sum of its logits over the voxels whose
    argmax is that class (all voxels when there are none). The region is a constant for the gradient."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)
        if isinstance(logits, (list, tuple)):  # deep supervision: the full-resolution output comes first
            logits = logits[0]
        n_classes, n_spatial = logits.shape[1], logits.ndim - 2
        with torch.no_grad():
            region = one_hot(logits.argmax(1, keepdim=True), n_classes, dtype=logits.dtype, dim=1)
            empty = region.flatten(2).sum(-1) == 0
            region = torch.where(empty.view(*empty.shape, *([1] * n_spatial)), torch.ones_like(region), region)
        return (logits * region).flatten(2).sum(-1)


def _unscaled(x):
    return x


class SegmentationGradCAM(Transform):
    """Grad-CAM of one class of a segmentation network on a channel-first image (C, H, W[, D]): a (1, H, W[, D])
    float32 map in [0, 1] on the image's grid (min-max scaled per image; all zeros when the map is constant).

    Computed with MONAI's :class:`monai.visualize.GradCAM` on a copy of ``network`` (so the hooks it registers,
    the ``zero_grad`` it calls and the eval mode it sets never touch the network itself) wrapped to give one score
    per class (see the module docstring), over the whole image at once (not in sliding windows, so that all of the
    map shares one normalisation): the image is padded at its end (``padding_mode``) to a multiple of ``divisible``
    along each axis, as U-Nets need, and the map cropped back. The layer's map (``relu`` of the weighted sum of its
    channels) is upsampled to the image as MONAI does (linear interpolation).

    Gradients are enabled inside, also when called under ``torch.no_grad`` or ``torch.inference_mode`` (a MONAI
    evaluator's postprocessing), and ``torch.autocast`` is disabled (the map in float32).

    Args:
        network: the segmentation network (logits (B, n_classes, ...)); its current weights are used at each call.
        target_layers: name of the layer (as in ``network.named_modules()``) whose activations are weighted, e.g.
            ``"model.1.submodule.2"`` (the last decoder block of a MONAI ``UNet`` with 4 levels) or ``"up_tr32"``
            (MONAI ``VNet``).
        class_index: the class to explain.
        divisible: pad each spatial size to a multiple of this (16: both MONAI ``UNet`` with 3-4 strides of 2 and
            ``VNet``).
        padding_mode: ``torch.nn.functional.pad`` mode for that padding (``"replicate"``: edge values).

    ``t(img)``: numpy or torch (same device as the network or not); returns the input's type (a MetaTensor keeps
    the image's meta data, so an ``Invertd`` with the image as ``orig_keys`` brings it back to the input grid).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        network: nn.Module,
        target_layers: str,
        class_index: int = 3,
        divisible: int = 16,
        padding_mode: str = "replicate",
    ) -> None:
        if not isinstance(network, nn.Module):
            raise TypeError(f"SegmentationGradCAM: network must be a torch.nn.Module, got {type(network).__name__}.")
        layers = dict(network.named_modules())
        if not isinstance(target_layers, str) or not target_layers or target_layers not in layers:
            hint = ", ".join([n for n in layers if n and n.count(".") <= 2][:16])
            raise ValueError(
                f"SegmentationGradCAM: target_layers {target_layers!r} is not a layer of the {type(network).__name__} "
                f"(names as in network.named_modules(), e.g. {hint})."
            )
        if int(class_index) < 0:
            raise ValueError(f"SegmentationGradCAM: class_index must be >= 0, got {class_index!r}.")
        if int(divisible) < 1:
            raise ValueError(f"SegmentationGradCAM: divisible must be >= 1, got {divisible!r}.")
        self.network = network
        self.target_layers = target_layers
        self.class_index = int(class_index)
        self.divisible = int(divisible)
        self.padding_mode = padding_mode

    def _device(self) -> torch.device:
        p = next(iter(self.network.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The class activation map of ``img`` (C, *spatial): (1, *spatial), values in [0, 1]."""
        if img.ndim < 3:
            raise ValueError(f"SegmentationGradCAM: expected a channel-first image (C, H, W[, D]), got {tuple(img.shape)}.")
        device = self._device()
        spatial = tuple(int(s) for s in img.shape[1:])
        with torch.inference_mode(False), torch.enable_grad():
            x = convert_to_tensor(img, track_meta=False).to(device=device, dtype=torch.float32).clone()
            pad = []
            for s in reversed(spatial):
                pad += [0, (-s) % self.divisible]
            x = x.unsqueeze(0)
            if any(pad):
                x = F.pad(x, pad, mode=self.padding_mode)
            net = copy.deepcopy(self.network)
            for p in net.parameters():
                p.requires_grad_(False)
            scores = _PredictedRegionScores(net)
            cam = GradCAM(scores, target_layers="network." + self.target_layers, postprocessing=_unscaled)
            x.requires_grad_(True)
            with torch.autocast(device_type=device.type, enabled=False):
                try:
                    acti_map = cam(x, class_idx=self.class_index)
                except IndexError as e:
                    raise ValueError(
                        f"SegmentationGradCAM: class_index {self.class_index} is not an output class of the network."
                    ) from e
            acti_map = acti_map.detach()[0, :1][(slice(None),) + tuple(slice(0, s) for s in spatial)]
        lo, hi = acti_map.min(), acti_map.max()
        if not bool(torch.isfinite(lo) and torch.isfinite(hi)) or float(hi - lo) <= 1e-12 * max(1.0, abs(float(hi))):
            out = torch.zeros_like(acti_map)
        else:
            out = ((acti_map - lo) / (hi - lo)).clamp(0.0, 1.0)
        out = out.to(torch.float32)
        if isinstance(img, np.ndarray):
            return out.cpu().numpy()
        return convert_to_dst_type(out.to(img.device), dst=img, dtype=torch.float32)[0]


class SegmentationGradCAMd(MapTransform):
    """Dictionary version of :class:`SegmentationGradCAM`: the class activation map of each ``keys`` image is
    written to the matching ``output_keys`` entry (a (1, *spatial) float32 map in [0, 1]; a MetaTensor image gives
    a MetaTensor with its meta data). Other arguments as :class:`SegmentationGradCAM`."""

    backend = SegmentationGradCAM.backend

    def __init__(
        self,
        keys: KeysCollection,
        network: nn.Module,
        target_layers: str,
        class_index: int = 3,
        output_keys: KeysCollection = "cam",
        divisible: int = 16,
        padding_mode: str = "replicate",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = ensure_tuple_rep(output_keys, len(self.keys))
        if len(set(self.output_keys)) != len(self.output_keys):
            raise ValueError(f"SegmentationGradCAMd: one output key per image key, got {self.output_keys}.")
        self.cam = SegmentationGradCAM(network, target_layers, class_index, divisible, padding_mode)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Add the maps; returns a new dictionary (the images are not changed)."""
        d = dict(data)
        for key, out_key in self.key_iterator(d, self.output_keys):
            d[out_key] = self.cam(d[key])
        return d


SegmentationGradCAMD = SegmentationGradCAMDict = SegmentationGradCAMd
