"""U-Net with strided-convolution downsampling and multi-scale segmentation maps summed into the output.

The network of Kayalibay, Jensen & van der Smagt, "CNN-based Segmentation of Medical Imaging Data",
arXiv:1701.03056 (2017), widths and block layout as in the authors' reference model (``fcn_rffc4`` in
github.com/BRML/CNNbasedMedicalSegmentation, ``model_defs.py``), with the paper's ablations as switches:

- long skip connections merged by concatenation (the paper's final model) or by element-wise summation
  (``skip_mode``), or removed (``long_skips=False``);
- one segmentation map per decoder scale, upsampled (linear interpolation) and summed into the output
  (``multiscale=True``, "deep supervision" the paper's way), or only the last decoder's map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.blocks import ADN, Convolution, UpSample
from monai.networks.layers.factories import Act, Norm
from torch import nn

__all__ = ["MultiScaleSumUNet"]

_SKIP_MODES = ("sum", "concat")


class _StridedResidualDown(nn.Module):
    """One contracting step of the reference model: ``s = conv3x3(stride)(x)``;
    ``out = PReLU(BN(s + conv3x3(PReLU(BN(s)))))``.

    MONAI's ``ResidualUnit`` branches its shortcut before the strided convolution (with a separate strided
    projection conv) and normalises each branch before the sum; the reference model shares the strided
    convolution and normalises after the sum, so the step is composed from ``Convolution`` and ``ADN`` here.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        stride: int,
        act: tuple | str,
        norm: tuple | str,
        dropout: float | None,
    ) -> None:
        super().__init__()
        self.down = Convolution(
            spatial_dims, in_channels, out_channels, strides=stride, kernel_size=3, bias=False, conv_only=True
        )
        self.body = nn.Sequential(
            ADN("NDA", out_channels, act=act, norm=norm, norm_dim=spatial_dims, dropout=dropout, dropout_dim=1),
            Convolution(spatial_dims, out_channels, out_channels, kernel_size=3, bias=False, conv_only=True),
        )
        self.post = ADN("NDA", out_channels, act=act, norm=norm, norm_dim=spatial_dims, dropout=dropout, dropout_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.down(x)
        return self.post(s + self.body(s))


class _ExpandUp(nn.Module):
    """One expanding step: 1x1 conv (halve the feature maps) -> 3x3 transposed conv (stride) -> merge with the
    long skip (sum / concat / none) -> 3x3 conv; every conv followed by BN + PReLU. Optionally a 1x1
    segmentation head, whose map is added to the (linearly upsampled) map of the coarser scale."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        stride: int,
        skip_mode: str,
        long_skip: bool,
        out_channels: int | None,
        upsample_coarser: bool,
        act: tuple | str,
        norm: tuple | str,
        dropout: float | None,
    ) -> None:
        super().__init__()
        reduced = max(1, in_channels // 2)
        width = 2 * skip_channels
        self.concat = bool(long_skip and skip_mode == "concat")
        self.add = bool(long_skip and skip_mode == "sum")
        self.reduce = Convolution(
            spatial_dims, in_channels, reduced, kernel_size=1, act=act, norm=norm, dropout=dropout, bias=False
        )
        self.up = Convolution(
            spatial_dims,
            reduced,
            skip_channels,
            strides=stride,
            kernel_size=3,
            act=act,
            norm=norm,
            dropout=dropout,
            bias=False,
            is_transposed=True,
        )
        merged = 2 * skip_channels if self.concat else skip_channels
        self.conv = Convolution(
            spatial_dims, merged, width, kernel_size=3, act=act, norm=norm, dropout=dropout, bias=False
        )
        self.head: nn.Module | None = None
        self.seg_up: nn.Module | None = None
        if out_channels is not None:
            self.head = Convolution(spatial_dims, width, out_channels, kernel_size=1, conv_only=True)
        if upsample_coarser:  # the coarser level's map, added to this level's
            self.seg_up = UpSample(
                spatial_dims,
                scale_factor=stride,
                mode="nontrainable",
                interp_mode="linear",
                align_corners=False,
            )
        self.out_width = width

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, seg: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.up(self.reduce(x))
        if self.concat:
            x = torch.cat([skip, x], dim=1)
        elif self.add:
            x = x + skip
        x = self.conv(x)
        head = self.head
        seg_up = self.seg_up
        if head is not None:
            s = head(x)
            if seg is not None and seg_up is not None:
                s = s + seg_up(seg)
            seg = s
        return x, seg


class MultiScaleSumUNet(nn.Module):
    """U-Net of Kayalibay et al. 2017 ("CNN-based Segmentation of Medical Imaging Data", arXiv:1701.03056):
    strided-convolution downsampling, PReLU after batch norm, and segmentation maps from several decoder
    scales upsampled and summed into the output.

    Layout (``L = len(strides)``, ``C = channels``), every convolution followed by batch norm + PReLU unless
    stated, zero padding throughout so sizes change only in strided / transposed convolutions:

    - level 0: 3x3 conv ``in_channels -> C[0]`` at full resolution;
    - contracting step ``i = 1..L``: strided 3x3 conv ``C[i-1] -> C[i]`` (stride ``strides[i-1]``, no
      pooling) followed by a residual 3x3 conv (``s + conv(s)``, then BN + PReLU);
    - expanding step to level ``i = L-1..0``: 1x1 conv halving the feature maps, 3x3 transposed conv
      (stride ``strides[i]``) to ``C[i]``, merge with the contracting path's level-``i`` features
      (``skip_mode``: concatenation or element-wise sum; nothing when ``long_skips=False``), 3x3 conv to
      ``2 * C[i]`` feature maps;
    - segmentation maps: a 1x1 conv to ``out_channels`` (no norm / activation) on every expanding level
      (``multiscale=True``); each coarser map is upsampled by linear interpolation and added to the next
      finer one, so the output is the sum of all scales' maps. ``multiscale=False``: only level 0's map.

    With ``channels=(8, 16, 32, 64)``, ``strides=(2, 2, 2)``, ``skip_mode="concat"``, this is the authors'
    final model (``fcn_rffc4``) up to the first contracting step, whose strided conv widens to ``C[1]`` here
    (the reference keeps ``C[0]`` and sums an 8-channel shortcut into a 16-channel conv).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (e.g. MR modalities).
        out_channels: output channels (classes).
        channels: feature maps per level, ``len(strides) + 1`` entries (level 0 = full resolution).
        strides: stride of each contracting step (>= 1); the transposed convs and the segmentation-map
            upsampling use the same factors.
        skip_mode: ``"concat"`` (paper's final model) or ``"sum"`` (element-wise summation) for the long skips.
        long_skips: False removes the long skip connections (no merge; the decoder sees only the bottleneck).
        multiscale: True sums segmentation maps from every decoder scale into the output; False uses only the
            last decoder's map.
        dropout: dropout probability after every normalisation (MONAI's ``ADN``, order norm-dropout-act).
        act: activation (default PReLU, as in the paper).
        norm: normalisation (default batch norm, as in the paper).

    Input: ``(B, in_channels, *spatial)`` with ``len(spatial) == spatial_dims`` and every spatial size divisible
    by ``prod(strides)`` (a ``ValueError`` naming the input shape otherwise). Output: logits (no softmax),
    ``(B, out_channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (8, 16, 32, 64),
        strides: Sequence[int] = (2, 2, 2),
        skip_mode: str = "concat",
        long_skips: bool = True,
        multiscale: bool = True,
        dropout: float = 0.0,
        act: tuple | str = Act.PRELU,
        norm: tuple | str = Norm.BATCH,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        chans = [int(c) for c in channels]
        strd = [int(s) for s in strides]
        if len(chans) < 2:
            raise ValueError(f"channels needs at least 2 levels, got {tuple(channels)}")
        if len(strd) != len(chans) - 1:
            raise ValueError(f"len(strides) must be len(channels) - 1 = {len(chans) - 1}, got {tuple(strides)}")
        if min(chans) < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be >= 1: in={in_channels}, out={out_channels}, channels={chans}")
        if min(strd) < 1:
            raise ValueError(f"strides must be >= 1, got {tuple(strides)}")
        if skip_mode not in _SKIP_MODES:
            raise ValueError(f"skip_mode must be one of {_SKIP_MODES}, got {skip_mode!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.spatial_dims = int(spatial_dims)
        self.divisor = int(math.prod(strd))
        self.skip_mode = skip_mode
        self.long_skips = bool(long_skips)
        self.multiscale = bool(multiscale)
        drop = float(dropout) if dropout > 0 else None

        self.input_block = Convolution(
            spatial_dims, in_channels, chans[0], kernel_size=3, act=act, norm=norm, dropout=drop, bias=False
        )
        self.down = nn.ModuleList(
            [
                _StridedResidualDown(spatial_dims, chans[i], chans[i + 1], strd[i], act, norm, drop)
                for i in range(len(strd))
            ]
        )
        ups = []
        width = chans[-1]
        for i in reversed(range(len(strd))):  # coarse -> fine
            head = out_channels if (multiscale or i == 0) else None
            coarser = bool(multiscale and i < len(strd) - 1)
            up = _ExpandUp(
                spatial_dims, width, chans[i], strd[i], skip_mode, long_skips, head, coarser, act, norm, drop
            )
            ups.append(up)
            width = up.out_width
        self.up = nn.ModuleList(ups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *spatial)`` -> logits ``(B, out_channels, *spatial)``."""
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"MultiScaleSumUNet expects (B, C, *spatial) with {self.spatial_dims} spatial dims, "
                f"got input shape {list(x.shape)}"
            )
        for size in x.shape[2:]:
            if size % self.divisor != 0:
                raise ValueError(
                    f"MultiScaleSumUNet: every spatial size must be divisible by prod(strides) = {self.divisor}, "
                    f"got input shape {list(x.shape)}"
                )
        feats = [self.input_block(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        n = len(feats)
        y = feats[n - 1]
        seg: torch.Tensor | None = None
        for j, block in enumerate(self.up):
            y, seg = block(y, feats[n - 2 - j], seg)
        if seg is None:  # unreachable: level 0 always has a head (kept for TorchScript's Optional refinement)
            raise RuntimeError("no segmentation map")
        return seg
