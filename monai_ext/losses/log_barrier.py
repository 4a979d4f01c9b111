"""The log-barrier extension of Kervadec et al. (MIDL 2020, "Constrained deep networks: Lagrangian optimization via
log-barrier extensions"): a penalty for inequality constraints ``z <= 0`` that is a log barrier inside the feasible
set and continues linearly outside it, so an infeasible start still has a finite value and gradient.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LogBarrierExtension"]


class LogBarrierExtension(torch.nn.Module):
    """``psi_t(z) = -(1/t) log(-z)`` for ``z <= -1/t^2``, else ``t z - (1/t) log(1/t^2) + 1/t`` (elementwise).

    ``t`` is the barrier's temperature: a larger ``t`` approaches the hard constraint. Training starts with
    ``t = t0`` and multiplies it by a factor every epoch (:class:`monai_ext.handlers.BarrierTemperatureHandler`);
    every loss that holds this module sees the same ``t``.

    Args:
        t0: initial temperature (> 0; Kervadec et al. and the box-correction paper: 5).
    """

    def __init__(self, t0: float = 5.0) -> None:
        super().__init__()
        if not float(t0) > 0:
            raise ValueError(f"the barrier temperature t0 must be positive, got {t0!r}.")
        self.t = float(t0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Penalty of the constraint values ``z`` (any shape, same shape out; 0 is reached only as ``z -> -inf``)."""
        t = self.t
        inside = z <= -1.0 / t**2
        barrier = -torch.log(torch.where(inside, -z, torch.ones_like(z))) / t
        linear = t * z - math.log(1.0 / t**2) / t + 1.0 / t
        return torch.where(inside, barrier, linear)

    def extra_repr(self) -> str:
        return f"t={self.t:g}"
