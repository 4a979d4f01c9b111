"""Transfer learning: start a network from another model's weights and fine-tune all of it, its decoder only or its
last block only (the three fine-tuning modes of paper 000, the COVID-19-CT-Seg benchmark; "layer transfer" in
paper 003).

:func:`load_pretrained` loads a ``.pt`` state dict (also one saved as ``{"model": state_dict}`` by MONAI's
``CheckpointSaver``, or with DistributedDataParallel's ``module.`` prefixes) strictly, then freezes everything but the
part to fine-tune with MONAI's :func:`~monai.networks.utils.freeze_layers`. How the parts are found
(:func:`finetune_parameter_names`):

- MONAI ``UNet`` (and subclasses): the network is nested ``Sequential(down, SkipConnection(<next level>), up)``
  levels; the decoder is the ``up`` block of every level (up-convolution + residual unit), the last block is the
  ``up`` block of the outermost level (the one that produces the class maps). The bottom block counts as encoder.
- MONAI ``VNet``: the decoder is ``up_tr*`` and ``out_tr``; the last block is ``out_tr``.
- any other network: ``"last"`` is the last module (in registration order) that holds parameters itself; a
  ``"decoder"`` needs one of the networks above (else a ``ValueError``).

Frozen parameters get ``requires_grad = False`` (an optimizer then never changes them: they get no gradient) and
batch-norm layers whose parameters are all frozen keep their running statistics (momentum 0), so that the frozen
part computes at inference what the source model computed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from monai.networks.layers import SkipConnection
from monai.networks.nets import UNet, VNet
from monai.networks.utils import freeze_layers
from torch import nn

from .parallel import unwrap_parallel

__all__ = ["FINETUNE_MODES", "finetune_parameter_names", "load_pretrained"]

#: the fine-tuning modes: every layer, the decoder only, the last block only
FINETUNE_MODES: tuple[str, ...] = ("all", "decoder", "last")

logger = logging.getLogger(__name__)

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _unet_up_blocks(net: UNet) -> list[nn.Module]:
    ups = []
    level = net.model
    while isinstance(level, nn.Sequential) and len(level) == 3 and isinstance(level[1], SkipConnection):
        ups.append(level[2])
        level = level[1].submodule
    return ups


def _check_mode(finetune: str) -> str:
    if finetune not in FINETUNE_MODES:
        raise ValueError(f"finetune must be one of {list(FINETUNE_MODES)}, got {finetune!r}.")
    return finetune


def finetune_parameter_names(network: nn.Module, finetune: str = "all") -> list[str]:
    """Names (as in ``network.named_parameters()`` of the unwrapped network) of the parameters that fine-tuning
    mode ``finetune`` trains: ``"all"``, ``"decoder"`` or ``"last"`` (see the module docstring for the parts).

    Raises:
        ValueError: an unknown mode, or ``"decoder"`` for a network whose decoder is not known here.
    """
    net = unwrap_parallel(network)
    names = [n for n, _ in net.named_parameters()]
    if _check_mode(finetune) == "all":
        return names
    if isinstance(net, UNet):
        ups = _unet_up_blocks(net)
        blocks = ups[:1] if finetune == "last" else ups
    elif isinstance(net, VNet):
        blocks = [m for n, m in net.named_children()
                  if n == "out_tr" or (finetune == "decoder" and n.startswith("up_tr"))]
    elif finetune == "last":
        blocks = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))][-1:]
    else:
        raise ValueError(
            f"finetune='decoder': the decoder of a {type(net).__name__} is not known (MONAI UNet and VNet are); "
            "use finetune='all' or 'last'."
        )
    owned = {id(p) for b in blocks for p in b.parameters()}
    return [n for n, p in net.named_parameters() if id(p) in owned]


def _read_pretrained_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"pretrained weights {path}: cannot be read as a PyTorch state dict ({type(e).__name__}: {str(e)[:200]})."
        ) from e
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(
            f"pretrained weights {path}: holds a {type(state).__name__}, not a state dict (parameter names -> "
            "tensors, as torch.save(network.state_dict()) or a bundle's models/model.pt)."
        )
    if all(str(k).startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {str(k)[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _fit_problems(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], limit: int = 5) -> list[str]:
    def few(items: list[str]) -> str:
        return "; ".join(items[:limit]) + (f"; ... ({len(items) - limit} more)" if len(items) > limit else "")

    mismatched = [f"{k}: file {tuple(state[k].shape)} vs network {tuple(v.shape)}"
                  for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {few(mismatched)}")
    if missing:
        problems.append(f"{len(missing)} tensor(s) of the network not in the file: {few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) of the file not in the network: {few(unexpected)}")
    return problems


def load_pretrained(network: nn.Module, path: str | os.PathLike, finetune: str = "all") -> nn.Module:
    """Load the weights file ``path`` into ``network`` and freeze all but the part ``finetune`` trains.

    Args:
        network: the network to start (a (Distributed)DataParallel wrapper is unwrapped).
        path: a ``.pt`` file holding the network's state dict (``torch.save(net.state_dict())``, a bundle's
            ``models/model.pt``), plain or as ``{"model": state_dict}``.
        finetune: ``"all"`` (every parameter trains), ``"decoder"`` or ``"last"`` (see
            :func:`finetune_parameter_names`).

    Returns:
        ``network``, with the weights loaded and ``requires_grad`` set per the mode.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: an unknown mode; a file that is not a state dict; weights that do not fit the network (the
            message names the file and lists a few mismatched shapes, missing and unexpected tensors).
    """
    mode = _check_mode(finetune)
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"pretrained weights {p}: no such file (expected a .pt state dict, e.g. another bundle's models/model.pt)."
        )
    net = unwrap_parallel(network)
    trainable = finetune_parameter_names(net, mode)
    state = _read_pretrained_state(p)
    own = net.state_dict()
    problems = _fit_problems(own, state)
    if problems:
        raise ValueError(
            f"pretrained weights {p} do not fit the network ({type(net).__name__}, {len(own)} tensors; the file holds "
            f"{len(state)}): " + ". ".join(problems) + ". Was it trained with other channels, input channels or "
            "number of classes?"
        )
    net.load_state_dict(state)
    if mode == "all":
        for param in net.parameters():
            param.requires_grad_(True)
    else:
        freeze_layers(net, exclude_vars="^(" + "|".join(re.escape(n) for n in trainable) + ")$")
        for m in net.modules():
            params = list(m.parameters())
            if isinstance(m, _BATCH_NORMS) and params and not any(q.requires_grad for q in params):
                m.momentum = 0.0
    n_train = sum(q.numel() for q in net.parameters() if q.requires_grad)
    n_all = sum(q.numel() for q in net.parameters())
    logger.info(f"loaded {p}; fine-tuning '{mode}': {n_train} of {n_all} parameters trainable.")
    return network
