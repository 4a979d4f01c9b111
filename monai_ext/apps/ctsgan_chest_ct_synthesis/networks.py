"""CT-SGAN networks: a recurrent slice generator and the slice / slab critics.

Pesaranghader, Wang, Havaei, "CT-SGAN: Computed Tomography Synthesis GAN", DGM4MICCAI 2021.
A chest CT volume is generated one axial "3D slice" (three adjacent slices as three channels) at a
time: a BiLSTM ``R_v`` turns a sequence of random inputs ``eps_i`` into slice-specific codes, each is
concatenated with one patient-specific Gaussian code that is constant over the volume, and a 2D
generator ``G_slice`` maps every code to a 3-channel slice. A slice critic ``D_slice`` judges single
3-channel slices (at their position in the volume) and a slab critic ``D_slab`` judges runs of ``T``
consecutive centre slices.

Volume bookkeeping (the paper's 222 3-channel slices -> 224 slices): 3-channel slice ``j`` covers
volume slices ``j, j+1, j+2``. A volume of depth ``D`` therefore takes ``L = D - 2`` generated slices;
its slices ``1 .. D-2`` are their centre channels, slice 0 is the first channel of the first generated
slice and slice ``D-1`` the last channel of the last one (:func:`slices_to_volume`).

Tensor layouts: volumes are channel-first ``(B, 1, H, W, D)`` with the slice (axial) axis last, values
in ``[-1, 1]`` (a HU window mapped linearly); 3-channel slice sequences are ``(B, L, 3, H, W)``; the
generator's noise input is ``(B, patient_dim + eps_dim, L)`` (see :meth:`CTSGANGenerator.forward`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.nets import Generator

__all__ = [
    "CTSGANGenerator",
    "CTSGANSliceCritic",
    "CTSGANSlabCritic",
    "CTSGANCritics",
    "slices_to_volume",
    "volume_to_slices",
    "slice_overlap_disagreement",
]


def slices_to_volume(slices: torch.Tensor) -> torch.Tensor:
    """Pile 3-channel slices ``(B, L, 3, H, W)`` into a volume ``(B, 1, H, W, L + 2)``.

    Centre channels give slices ``1 .. L``; the outer channels of the first and last 3-channel slices
    give slices ``0`` and ``L + 1`` (CT-SGAN, Sect. 2).
    """
    if slices.ndim != 5 or slices.shape[2] != 3:
        raise ValueError("slices must have shape (B, L, 3, H, W), got " + str(list(slices.shape)))
    stack = torch.cat([slices[:, :1, 0], slices[:, :, 1], slices[:, -1:, 2]], dim=1)  # (B, L+2, H, W)
    return stack.permute(0, 2, 3, 1).unsqueeze(1)


def volume_to_slices(volume: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """3-channel slices ``j = start .. stop-1`` of a volume ``(B, 1, H, W, D)``: ``(B, n, 3, H, W)``.

    Slice ``j`` stacks volume slices ``j, j+1, j+2``; the inverse of :func:`slices_to_volume` on the
    slices it covers. ``stop`` defaults to ``D - 2`` (all of them).
    """
    if volume.ndim != 5 or volume.shape[1] != 1:
        raise ValueError(f"volume must have shape (B, 1, H, W, D), got {tuple(volume.shape)}.")
    depth = int(volume.shape[-1])
    stop = depth - 2 if stop is None else int(stop)
    if depth < 3 or not 0 <= start < stop <= depth - 2:
        raise ValueError(f"3-channel slices {start}..{stop - 1} do not fit a volume of depth {depth}.")
    v = volume[:, 0, :, :, start : stop + 2].permute(0, 3, 1, 2)  # (B, n+2, H, W)
    return torch.stack([v[:, :-2], v[:, 1:-1], v[:, 2:]], dim=2)


def slice_overlap_disagreement(slices: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between what adjacent 3-channel slices say about the volume slices they share.

    3-channel slice ``j`` covers volume slices ``j, j+1, j+2`` and slice ``j+1`` covers ``j+1, j+2, j+3``, so
    channels 1, 2 of ``j`` and channels 0, 1 of ``j+1`` are two predictions of the same two volume slices.
    Real volumes cut into 3-channel slices (:func:`volume_to_slices`) give exactly 0. ``slices``:
    ``(B, L, 3, H, W)`` with ``L >= 2``; returns a scalar in the intensity units of ``slices``.
    """
    if slices.ndim != 5 or slices.shape[2] != 3 or slices.shape[1] < 2:
        raise ValueError("slices must have shape (B, L >= 2, 3, H, W), got " + str(list(slices.shape)))
    return 0.5 * ((slices[:, :-1, 1] - slices[:, 1:, 0]).abs().mean() + (slices[:, :-1, 2] - slices[:, 1:, 1]).abs().mean())


def _upsamplings(image_size: int) -> int:
    k = math.log2(image_size / 4)
    if image_size < 8 or k != int(k):
        raise ValueError(f"image_size must be 4 * 2**k with k >= 1 (8, 16, 32, 64, 128, 256...), got {image_size}.")
    return int(k)


class CTSGANGenerator(nn.Module):
    """CT-SGAN generator: BiLSTM ``R_v`` + slice generator ``G_slice`` (Pesaranghader et al. 2021, Fig. 2).

    ``G_slice`` is MONAI's :class:`~monai.networks.nets.Generator` (linear to ``4 x 4``, then ``log2(image_size / 4)``
    stride-2 transposed convolutions) followed by ``tanh``; its output is one 3-channel slice in ``[-1, 1]``.
    ``R_v`` is a bidirectional LSTM fed with ``eps_i``; its initial state ``h_0`` is a learned linear map of
    the (random) patient code, so it is random as in the paper and needs no separate input.

    Args:
        image_size: in-plane size ``H = W`` of the slices, ``4 * 2**k`` (the paper's 224 is not of that form:
            the bundle's inference resizes to any output size).
        patient_dim: size of the patient/scanner code (constant over a volume).
        eps_dim: size of the per-slice random input of ``R_v``.
        slice_dim: size of the slice-specific code that ``R_v`` outputs.
        lstm_hidden: hidden size of each direction of the BiLSTM.
        lstm_layers: number of BiLSTM layers.
        base_channels: channels of the last hidden ``G_slice`` layer; each earlier layer doubles it (capped at
            ``max_channels``), e.g. 256 (4x4) -> 128 -> 64 -> 32 -> 3 (64x64) for ``image_size=64``.
        max_channels: cap on the ``G_slice`` channels.
        norm: normalisation of ``G_slice`` (MONAI name or (name, args)); group norm needs no batch statistics,
            so generation in eval mode matches training.
        position_features: number of sinusoidal features of the relative slice position (0 .. 1) fed to ``R_v``
            beside ``eps_i`` (0: only ``eps_i``, as in the paper). An addition: ``R_v`` can infer the position
            from the sequence ends, but learns the slice-to-level mapping much faster when told.
    """

    def __init__(
        self,
        image_size: int = 64,
        patient_dim: int = 48,
        eps_dim: int = 16,
        slice_dim: int = 32,
        lstm_hidden: int = 32,
        lstm_layers: int = 1,
        base_channels: int = 32,
        max_channels: int = 256,
        norm: str | tuple = ("group", {"num_groups": 8}),
        act: str | tuple = "relu",
        position_features: int = 8,
    ) -> None:
        super().__init__()
        for name, v in dict(patient_dim=patient_dim, eps_dim=eps_dim, slice_dim=slice_dim,
                            lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, base_channels=base_channels).items():
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}.")
        k = _upsamplings(int(image_size))
        self.image_size = int(image_size)
        self.patient_dim = int(patient_dim)
        self.eps_dim = int(eps_dim)
        self.slice_dim = int(slice_dim)
        self.lstm_hidden = int(lstm_hidden)
        self.lstm_layers = int(lstm_layers)
        if int(position_features) < 0 or int(position_features) % 2:
            raise ValueError(f"position_features must be an even number >= 0, got {position_features}.")
        self.position_features = int(position_features)
        self.rnn = nn.LSTM(self.eps_dim + self.position_features, self.lstm_hidden, num_layers=self.lstm_layers, batch_first=True,
                           bidirectional=True)
        self.h0 = nn.Linear(self.patient_dim, 2 * 2 * self.lstm_layers * self.lstm_hidden)
        self.slice_code = nn.Linear(2 * self.lstm_hidden, self.slice_dim)
        # unit-variance slice codes: at initialisation the LSTM outputs are far smaller than the N(0, 1) patient
        # code, so G_slice would start (and stay long) nearly constant along the slice axis
        self.slice_norm = nn.LayerNorm(self.slice_dim, elementwise_affine=False)
        widths = [min(int(max_channels), int(base_channels) * 2 ** (k - 1 - i)) for i in range(k)]
        self.g_slice = Generator(
            latent_shape=(self.patient_dim + self.slice_dim,),
            start_shape=(widths[0], 4, 4),
            channels=tuple(widths[1:]) + (3,),
            strides=(2,) * k,
            kernel_size=3,
            num_res_units=0,
            act=act,
            norm=norm,
        )

    @property
    @torch.jit.unused
    def noise_channels(self) -> int:
        """Channels of the noise input: ``patient_dim + eps_dim``."""
        return self.patient_dim + self.eps_dim

    def sample_noise(
        self, batch: int, num_slices: int, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        """Standard normal noise ``(batch, patient_dim + eps_dim, num_slices - 2)`` for volumes of depth ``num_slices``."""
        if int(num_slices) < 3:
            raise ValueError(f"num_slices must be >= 3 (one 3-channel slice), got {num_slices}.")
        device = device if device is not None else next(self.parameters()).device
        z = torch.randn(int(batch), self.noise_channels, int(num_slices) - 2, generator=generator)
        return z.to(device)

    def codes(self, noise: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(B, L, patient_dim + slice_dim)``: the patient code (read from noise column 0) beside
        the slice-specific codes of ``R_v``."""
        if noise.ndim != 3 or noise.shape[1] != self.patient_dim + self.eps_dim:
            raise ValueError(
                "noise must have shape (B, patient_dim + eps_dim = " + str(self.patient_dim + self.eps_dim)
                + ", L), got " + str(list(noise.shape))
            )
        b, length = noise.shape[0], noise.shape[2]
        patient = noise[:, : self.patient_dim, 0]
        eps = noise[:, self.patient_dim :, :].transpose(1, 2)  # (B, L, eps_dim)
        if self.position_features > 0:
            pos = torch.linspace(0.0, 1.0, length, device=noise.device, dtype=noise.dtype)
            freq = torch.arange(self.position_features // 2, device=noise.device, dtype=noise.dtype)
            ang = math.pi * pos[:, None] * torch.pow(2.0, freq)[None, :]
            feat = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)  # (L, position_features)
            eps = torch.cat([eps, feat.unsqueeze(0).expand(b, length, self.position_features)], dim=2)
        hc = torch.tanh(self.h0(patient)).view(b, 2, 2 * self.lstm_layers, self.lstm_hidden)
        h0 = hc[:, 0].transpose(0, 1).contiguous()
        c0 = hc[:, 1].transpose(0, 1).contiguous()
        out, _ = self.rnn(eps, (h0, c0))
        z_slice = self.slice_norm(self.slice_code(out))  # (B, L, slice_dim)
        return torch.cat([patient.unsqueeze(1).expand(b, length, self.patient_dim), z_slice], dim=2)

    def slices(self, noise: torch.Tensor, start: int = 0, stop: int = -1) -> torch.Tensor:
        """3-channel slices ``start .. stop-1`` (``stop=-1``: to the end), ``(B, n, 3, H, W)`` in ``[-1, 1]``.

        ``R_v`` always runs over the whole sequence (it is bidirectional); ``G_slice`` only over the
        requested slab, which is what keeps training memory small.
        """
        z = self.codes(noise)
        stop_ = z.shape[1] if stop < 0 else stop
        z = z[:, start:stop_]
        b, n = z.shape[0], z.shape[1]
        img = torch.tanh(self.g_slice(z.reshape(b * n, z.shape[2])))
        return img.view(b, n, 3, self.image_size, self.image_size)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Generate volumes.

        Args:
            noise: ``(B, patient_dim + eps_dim, L)``; channels ``0 .. patient_dim-1`` of column 0 are the patient
                code (the other columns of those channels are ignored), channels ``patient_dim ..`` are ``eps_1..L``.

        Returns:
            ``(B, 1, image_size, image_size, L + 2)`` in ``[-1, 1]``, slice axis last.
        """
        return slices_to_volume(self.slices(noise))


def _down_convs(
    spatial_dims: int, in_channels: int, channels: Sequence[int], strides: Sequence, norm, act
) -> nn.Sequential:
    layers = nn.Sequential()
    c_in = in_channels
    for i, (c, s) in enumerate(zip(channels, strides)):
        layers.add_module(
            f"conv{i}",
            Convolution(spatial_dims, c_in, int(c), strides=s, kernel_size=3, act=act, norm=norm if i > 0 else None),
        )
        c_in = int(c)
    return layers


def _position_channel(x: torch.Tensor, position: torch.Tensor | None) -> torch.Tensor:
    """Append a constant channel holding each sample's relative slice position, mapped to [-1, 1]."""
    if position is None:
        raise ValueError("this critic is position-conditioned: pass position (B,) with values in [0, 1].")
    pos = position.to(x).reshape(-1, *([1] * (x.ndim - 1)))
    if pos.shape[0] != x.shape[0]:
        raise ValueError(f"position has {pos.shape[0]} values for a batch of {x.shape[0]}.")
    return torch.cat([x, (2.0 * pos - 1.0).expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class CTSGANSliceCritic(nn.Module):
    """CT-SGAN slice critic ``D_slice``: judges single 3-channel slices ``(B, 3, H, W)``.

    The paper's ``D_slice`` decides real vs generated "with respect to the slice position"; here the
    relative position (0 first slice, 1 last) enters as an extra constant input channel (``position=True``).
    Stride-2 MONAI convolutions down to ``4 x 4``, then a linear layer to one score per slice (no sigmoid:
    Wasserstein critic; the BCE loss applies its own).

    Args:
        image_size: ``H = W`` of the slices (``4 * 2**k``).
        in_channels: channels of a slice (3 in CT-SGAN).
        base_channels: channels of the first convolution, doubled per layer up to ``max_channels``.
        position: condition on the slice position.
        norm: normalisation after each convolution but the first (none by default: the gradient penalty is
            per sample, batch norm would couple samples).
    """

    def __init__(
        self,
        image_size: int = 64,
        in_channels: int = 3,
        base_channels: int = 32,
        max_channels: int = 256,
        position: bool = True,
        norm: str | tuple | None = None,
        act: str | tuple = ("leakyrelu", {"negative_slope": 0.2}),
    ) -> None:
        super().__init__()
        k = _upsamplings(int(image_size))
        self.image_size = int(image_size)
        self.in_channels = int(in_channels)
        self.position = bool(position)
        widths = [min(int(max_channels), int(base_channels) * 2**i) for i in range(k)]
        self.features = _down_convs(2, self.in_channels + int(self.position), widths, [2] * k, norm, act)
        self.head = nn.Linear(widths[-1] * 16, 1)

    def forward(self, x: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(B,)`` of slices ``x`` ``(B, in_channels, H, W)`` at relative positions ``position`` ``(B,)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"D_slice expects (B, {self.in_channels}, {self.image_size}, {self.image_size}), got {tuple(x.shape)}."
            )
        if self.position:
            x = _position_channel(x, position)
        return self.head(self.features(x).flatten(1)).squeeze(1)


class CTSGANSlabCritic(nn.Module):
    """CT-SGAN slab critic ``D_slab``: judges ``T`` consecutive centre slices, ``(B, 1, H, W, T)``.

    3D MONAI convolutions, stride 2 in-plane at every layer and along the slab while its depth is above 1,
    then a linear layer on the ``4 x 4 x t`` map; optionally conditioned on the slab's relative position
    (of its first slice), as :class:`CTSGANSliceCritic`.
    """

    def __init__(
        self,
        image_size: int = 64,
        slab_size: int = 8,
        base_channels: int = 16,
        max_channels: int = 128,
        position: bool = True,
        norm: str | tuple | None = None,
        act: str | tuple = ("leakyrelu", {"negative_slope": 0.2}),
    ) -> None:
        super().__init__()
        k = _upsamplings(int(image_size))
        if int(slab_size) < 1:
            raise ValueError(f"slab_size must be >= 1, got {slab_size}.")
        self.image_size = int(image_size)
        self.slab_size = int(slab_size)
        self.position = bool(position)
        widths = [min(int(max_channels), int(base_channels) * 2**i) for i in range(k)]
        strides, depth = [], self.slab_size
        for _ in range(k):
            sd = 2 if depth > 1 else 1
            strides.append((2, 2, sd))
            depth = (depth + sd - 1) // sd
        self.features = _down_convs(3, 1 + int(self.position), widths, strides, norm, act)
        self.head = nn.Linear(widths[-1] * 16 * depth, 1)

    def forward(self, x: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(B,)`` of slabs ``x`` ``(B, 1, H, W, T)`` starting at relative positions ``position`` ``(B,)``."""
        want = (1, self.image_size, self.image_size, self.slab_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"D_slab expects (B, {', '.join(map(str, want))}), got {tuple(x.shape)}.")
        if self.position:
            x = _position_channel(x, position)
        return self.head(self.features(x).flatten(1)).squeeze(1)


class CTSGANCritics(nn.Module):
    """``D_slice`` and ``D_slab`` in one module (one optimiser, one checkpoint entry)."""

    def __init__(self, slice_critic: CTSGANSliceCritic, slab_critic: CTSGANSlabCritic) -> None:
        super().__init__()
        self.slice_critic = slice_critic
        self.slab_critic = slab_critic

    def forward(
        self, slices: torch.Tensor, slice_position: torch.Tensor, slab: torch.Tensor, slab_position: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(``D_slice`` scores, ``D_slab`` scores)."""
        return self.slice_critic(slices, slice_position), self.slab_critic(slab, slab_position)
