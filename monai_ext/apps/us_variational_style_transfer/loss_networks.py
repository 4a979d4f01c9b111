"""Loss networks for the perceptual and Gram-matrix style losses that need no downloaded weights.

The paper (Hung & Galeotti, DGM4MICCAI 2021, Sec. 2.4) computes both losses on ImageNet VGG16 features.
Candidates here, selected in ``configs/train.yaml`` by the key ``loss_network`` (see :func:`us_loss_network`):

- ``"random_multiscale"``: one layer of fixed random filters at several kernel sizes (3 ... 15 pixels) plus
  the same at half resolution, ReLU (:func:`random_multiscale_feature_extractor`). Gram matrices of such
  random features describe textures well (Ustyuzhaninov et al., "What does it take to generate natural
  textures?", ICLR 2017).
- ``"random_vgg"``: a random VGG-like stack (:func:`~.losses.random_feature_extractor`).
- ``"style_classifier"``: a small CNN trained here, self-supervised on the simulator's machine styles, to tell
  the style of a random 32 x 32 crop (:class:`USStyleClassifier`, :func:`train_us_style_classifier`): the
  crop hides the layout, so its features must hold texture.
- ``"content_encoder"``: the stage-1 content encoder (the bundle's choice before 0.4.0).
- a path: a ``torch.save``'d ``nn.Module`` or a :class:`USStyleClassifier` state dict; for anything else
  (e.g. a VGG16 checkpoint) build a :class:`~.losses.StyleFeatureExtractor` in the config.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...io import atomic_write
from .losses import StyleFeatureExtractor, random_feature_extractor
from .networks import SwishConvBlock, load_us_content_encoder

__all__ = [
    "LOSS_NETWORKS",
    "RandomMultiScaleFilters",
    "random_multiscale_feature_extractor",
    "USStyleClassifier",
    "train_us_style_classifier",
    "us_loss_network",
]

LOSS_NETWORKS = ("random_multiscale", "random_vgg", "style_classifier", "content_encoder")


class RandomMultiScaleFilters(nn.Module):
    """Fixed random filters of several sizes, ReLU, one feature map per (resolution, kernel size).

    Args:
        kernel_sizes: filter sizes (odd, pixels).
        channels: filters per size.
        resolutions: downsampling factors of the input (average pooling) the filters also run at.
        seed: the filters are drawn from this seed (zero-mean Gaussian, He scaling), so the network is
            reproducible without a file.
        in_channels: input channels.
    """

    def __init__(
        self,
        kernel_sizes: Sequence[int] = (3, 5, 7, 11, 15),
        channels: int = 32,
        resolutions: Sequence[int] = (1, 2),
        seed: int = 0,
        in_channels: int = 1,
    ):
        super().__init__()
        if any(int(k) < 1 or int(k) % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd and positive, got {list(kernel_sizes)}.")
        if any(int(r) < 1 for r in resolutions):
            raise ValueError(f"resolutions must be >= 1, got {list(resolutions)}.")
        self.resolutions = [int(r) for r in resolutions]
        gen = torch.Generator().manual_seed(int(seed))
        self.convs = nn.ModuleList()
        for k in kernel_sizes:
            conv = nn.Conv2d(int(in_channels), int(channels), int(k), padding=int(k) // 2, padding_mode="reflect")
            with torch.no_grad():
                w = torch.randn(conv.weight.shape, generator=gen)
                w -= w.mean(dim=(1, 2, 3), keepdim=True)  # no response to a flat image: texture, not brightness
                conv.weight.copy_(w * (2.0 / (int(in_channels) * int(k) ** 2)) ** 0.5)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.01)
            self.convs.append(conv)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for r in self.resolutions:
            xr = F.avg_pool2d(x, r) if r > 1 else x
            feats += [F.relu(conv(xr)) for conv in self.convs if conv.kernel_size[0] // 2 < min(xr.shape[-2:])]
        feats.append(x)  # the intensities themselves: their Gram term is the mean squared brightness
        return feats


def random_multiscale_feature_extractor(
    kernel_sizes: Sequence[int] = (3, 5, 7, 11, 15), channels: int = 32, resolutions: Sequence[int] = (1, 2),
    seed: int = 0,
) -> StyleFeatureExtractor:
    """:class:`RandomMultiScaleFilters` as a frozen :class:`~.losses.StyleFeatureExtractor` on inputs centred at
    0.5 (the middle of the [0, 1] display range)."""
    return StyleFeatureExtractor(RandomMultiScaleFilters(kernel_sizes, channels, resolutions, seed),
                                 mean=[0.5], std=[0.25])


class USStyleClassifier(nn.Module):
    """A small CNN that tells an ultrasound image's machine style: :class:`~.networks.SwishConvBlock` stages
    with max-pooling between them, global average, linear head. As a loss network it returns the stages'
    feature maps (``forward``); :meth:`logits` gives the class scores.

    Args:
        num_styles: number of style classes.
        channels: width per stage.
    """

    def __init__(self, num_styles: int = 6, channels: Sequence[int] = (16, 32, 64)):
        super().__init__()
        chans = [int(c) for c in channels]
        self.num_styles, self.channels = int(num_styles), chans
        self.stages = nn.ModuleList(
            SwishConvBlock(2, c_in, c_out) for c_in, c_out in zip([1] + chans[:-1], chans))
        self.head = nn.Linear(chans[-1], int(num_styles))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k, stage in enumerate(self.stages):
            x = stage(F.max_pool2d(x, 2) if k else x)
            feats.append(x)
        return feats

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self(x)[-1].mean(dim=(2, 3)))


def train_us_style_classifier(
    images: torch.Tensor,
    styles: Sequence[int],
    out: str | Path | None = None,
    epochs: int = 30,
    crop: int = 32,
    channels: Sequence[int] = (16, 32, 64),
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    val_images: torch.Tensor | None = None,
    val_styles: Sequence[int] | None = None,
) -> tuple[USStyleClassifier, dict[str, Any]]:
    """Train :class:`USStyleClassifier` to predict the style index of random ``crop`` x ``crop`` crops (random
    flips left-right) of ``images`` (N, 1, H, W). Self-supervised: the style labels come from the simulator
    (or the acquiring machine), no anatomy label is used. Validation accuracy on the centre crops of
    ``val_images`` when given. Writes ``out`` (state dict + ``info``) atomically when given."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got {tuple(images.shape)}.")
    y = torch.as_tensor(list(styles), dtype=torch.long)
    if len(y) != len(images):
        raise ValueError(f"{len(images)} images but {len(y)} style labels.")
    if min(images.shape[-2:]) < crop:
        raise ValueError(f"crop {crop} is larger than the images {tuple(images.shape[-2:])}.")
    num_styles = int(y.max()) + 1
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    net = USStyleClassifier(num_styles, channels)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    h, w = images.shape[-2:]
    t0, history = time.time(), []

    def crops(x: torch.Tensor, centre: bool = False) -> torch.Tensor:
        if centre:
            i, j = (h - crop) // 2, (w - crop) // 2
            return x[..., i:i + crop, j:j + crop]
        i = torch.randint(0, h - crop + 1, (len(x),), generator=gen)
        j = torch.randint(0, w - crop + 1, (len(x),), generator=gen)
        out_ = torch.stack([x[b, :, i[b]:i[b] + crop, j[b]:j[b] + crop] for b in range(len(x))])
        flip = torch.rand(len(x), generator=gen) < 0.5
        out_[flip] = out_[flip].flip(-1)
        return out_

    for epoch in range(int(epochs)):
        net.train()
        order = torch.randperm(len(images), generator=gen)
        total, correct = 0.0, 0
        for b in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[b:b + batch_size]
            logits = net.logits(crops(images[idx]))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        n = (len(order) // batch_size) * batch_size
        rec = {"epoch": epoch + 1, "loss": total / max(n, 1), "train_accuracy": correct / max(n, 1)}
        if val_images is not None and val_styles is not None:
            net.eval()
            with torch.no_grad():
                pred = net.logits(crops(val_images, centre=True)).argmax(1)
            rec["val_accuracy"] = float((pred == torch.as_tensor(list(val_styles))).float().mean())
        history.append(rec)
        if (epoch + 1) % 5 == 0 or epoch == 0:
            print(f"style classifier epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items() if k != "epoch"))
    net.eval()
    info = {"num_styles": num_styles, "channels": list(net.channels), "crop": int(crop), "epochs": int(epochs),
            "seed": int(seed), "train_images": len(images), "seconds": round(time.time() - t0, 1), "history": history}
    if out is not None:
        atomic_write(out, lambda p: torch.save({"state_dict": net.state_dict(), "info": info}, p))
    return net, info


def _load_style_classifier(path: Path) -> USStyleClassifier:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "state_dict" not in state or "info" not in state:
        raise ValueError(f"{path}: not a USStyleClassifier checkpoint (expected keys 'state_dict' and 'info').")
    info = state["info"]
    net = USStyleClassifier(int(info["num_styles"]), info["channels"])
    net.load_state_dict(state["state_dict"])
    return net


def us_loss_network(
    name: str,
    content_autoencoder: str | Path | None = None,
    style_classifier: str | Path | None = None,
    seed: int = 0,
) -> StyleFeatureExtractor:
    """The frozen loss network ``name`` (one of :data:`LOSS_NETWORKS`, or a file) for
    :class:`~.losses.VariationalStyleTransferLoss`. ``content_autoencoder``: the stage-1 checkpoint (for
    ``"content_encoder"``); ``style_classifier``: the :class:`USStyleClassifier` checkpoint (for
    ``"style_classifier"``); ``seed``: the random networks' filters."""
    if name == "random_multiscale":
        return random_multiscale_feature_extractor(seed=seed)
    if name == "random_vgg":
        return random_feature_extractor(channels=(32, 64, 128, 128), seed=seed)
    if name in ("content_encoder", "style_classifier"):
        ckpt = content_autoencoder if name == "content_encoder" else style_classifier
        if ckpt is None or not Path(ckpt).is_file():
            raise FileNotFoundError(f"loss_network {name!r} needs its checkpoint; {ckpt} does not exist.")
        net = load_us_content_encoder(ckpt) if name == "content_encoder" else _load_style_classifier(Path(ckpt))
        return StyleFeatureExtractor(net)
    path = Path(str(name))
    if path.is_file():
        try:  # a USStyleClassifier checkpoint (tensors only)
            return StyleFeatureExtractor(_load_style_classifier(path))
        except (ValueError, RuntimeError, pickle.UnpicklingError):
            pass
        module = torch.load(str(path), map_location="cpu", weights_only=False)  # a module the user saved
        if not isinstance(module, nn.Module):
            raise ValueError(f"{path}: neither a USStyleClassifier checkpoint nor a saved torch.nn.Module.")
        return StyleFeatureExtractor(module)
    raise ValueError(f"loss_network must be one of {LOSS_NETWORKS} or an existing file, got {name!r}.")
