"""CaCL's network: a VQ-VAE with the class-aware codebook, and the masks it gives (Deng et al., section 2.4).

The encoder and decoder are MONAI's VQ-VAE blocks (:class:`monai.networks.nets.vqvae.Encoder` / ``Decoder``); the
quantiser is :class:`ClassAwareCodebookQuantizer`. One image gives two reconstructions through the same decoder:
``R_P`` from the S + C quantisation and ``R_N`` from the S-only one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets.vqvae import Decoder, Encoder
from torch import nn

from .quantizer import ClassAwareCodebookQuantizer, CodebookQuantization

__all__ = ["CACL_MASK_MODES", "CaCLNet"]

#: how a mask is read from the model: ``codes`` (the paper: latent pixels quantised to a class code, nearest-neighbour
#: upsampled) | ``difference`` (pixels where R_P and R_N differ by more than a threshold, at the image's resolution)
CACL_MASK_MODES = ("codes", "difference")


class CaCLNet(nn.Module):
    """Class-aware codebook VQ-VAE for RGB (or other multi-channel) 2D images.

    Args:
        in_channels: image channels (3 for RGB); images are in [0, 1].
        channels, num_res_layers, num_res_channels, downsample_parameters, upsample_parameters: MONAI ``VQVAE``'s
            encoder / decoder settings; the latent grid is the image divided by the product of the strides.
        num_shared, num_class, embedding_dim, shared_channels, decay, dead_code_threshold: the codebook
            (:class:`ClassAwareCodebookQuantizer`; the paper: 27, 5, 64, 32, 0.98; restarts are ours).

    ``forward(images)`` returns ``R_P`` (the S + C reconstruction, (B, in_channels, H, W) in [0, 1]) so that MONAI
    inferers and evaluators can run it as an autoencoder; training uses :meth:`encode_quantize` and :meth:`decode`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64),
        num_res_layers: int = 2,
        num_res_channels: Sequence[int] = (32, 64),
        downsample_parameters: Sequence[Sequence[int]] = ((2, 4, 1, 1), (1, 3, 1, 1)),
        upsample_parameters: Sequence[Sequence[int]] = ((1, 3, 1, 1, 0), (2, 4, 1, 1, 0)),
        num_shared: int = 27,
        num_class: int = 5,
        embedding_dim: int = 64,
        shared_channels: int = 32,
        decay: float = 0.98,
        dead_code_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        down = [tuple(int(v) for v in p) for p in downsample_parameters]
        up = [tuple(int(v) for v in p) for p in upsample_parameters]
        self.encoder = Encoder(spatial_dims=2, in_channels=self.in_channels, out_channels=embedding_dim,
                               channels=tuple(channels), num_res_layers=num_res_layers,
                               num_res_channels=tuple(num_res_channels), downsample_parameters=down, dropout=0.0,
                               act="RELU")
        self.decoder = Decoder(spatial_dims=2, in_channels=embedding_dim, out_channels=self.in_channels,
                               channels=tuple(channels), num_res_layers=num_res_layers,
                               num_res_channels=tuple(num_res_channels), upsample_parameters=up, dropout=0.0,
                               act="RELU", output_act="SIGMOID")
        self.quantizer = ClassAwareCodebookQuantizer(num_shared, num_class, embedding_dim, shared_channels, decay,
                                                     dead_code_threshold=dead_code_threshold)
        self.stride = 1
        for p in down:
            self.stride *= p[0]

    def check_images(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is (B, in_channels, H, W) with H and W multiples of the stride."""
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            hint = ""
            if images.dim() == 4 and images.shape[1] == 1:
                hint = " (a grayscale image? convert it to RGB, or train a 1-channel model)"
            raise ValueError("CaCLNet expects images of shape (B, " + str(self.in_channels) + ", H, W)"
                             + (" (RGB)" if self.in_channels == 3 else "") + ", got " + str(list(images.shape))
                             + hint + ".")
        if images.shape[2] % self.stride != 0 or images.shape[3] % self.stride != 0:
            raise ValueError("CaCLNet: image size " + str(list(images.shape[2:])) + " must be a multiple of "
                             + str(self.stride) + ".")

    def encode_quantize(self, images: torch.Tensor, positive: torch.Tensor | None = None) -> CodebookQuantization:
        """Encoder + both quantisations (the codes are updated in training mode; ``positive``: (B,) labels)."""
        self.check_images(images)
        return self.quantizer(self.encoder(images), positive)

    def decode(self, e: torch.Tensor) -> torch.Tensor:
        return self.decoder(e)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """R_P of ``images`` (eval semantics: no code update), TorchScript-able."""
        self.check_images(images)
        return self.decoder(self.quantizer.quantize_p(self.encoder(images)))

    @torch.no_grad()
    def segment(self, images: torch.Tensor, mode: str = "codes", threshold: float = 0.1) -> torch.Tensor:
        """(B, 1, H, W) float masks in {0, 1} of the class-specific pattern.

        ``codes``: the latent pixels whose S + C code is a class code (section 2.4), upsampled by nearest neighbour.
        ``difference``: the pixels where ``max_c |R_P - R_N| > threshold`` (intensities in [0, 1]).
        (The paper's "+ morph." variant dilates the mask by a disk of radius 1: :class:`monai_ext.transforms.MaskMorphology`.)
        """
        if mode not in CACL_MASK_MODES:
            raise ValueError(f"mode must be one of {CACL_MASK_MODES}, got {mode!r}.")
        q = self.encode_quantize(images)
        if mode == "codes":
            latent = (q.index_p >= self.quantizer.num_shared).float()[:, None]
            mask = F.interpolate(latent, size=images.shape[2:], mode="nearest")
        else:
            mask = ((self.decode(q.e_p) - self.decode(q.e_n)).abs().amax(1, keepdim=True) > threshold).float()
        return mask
