"""Gradient clipping that also skips the optimiser step when the gradient is not finite."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

__all__ = ["GradientGuard"]


class GradientGuard:
    """Ignite handler for MONAI trainers: after the backward pass, clip the gradient norm to ``max_norm`` and,
    when that norm is inf or NaN, drop the gradients (``p.grad = None``) so the optimiser leaves every
    parameter and its moments untouched for that iteration.

    Why: a leapfrog trajectory of the RHVAE occasionally meets a very stiff metric (``G^-1`` entries of 1e5)
    and explodes (latent codes of 1e11); one such batch gives an infinite gradient, and clipping alone turns
    ``inf / inf`` into NaN weights. Skipping the rare non-finite step, as AMP's GradScaler does, keeps
    training going. The number of skipped steps is kept in ``engine.state.skipped_steps`` and logged.

    Args:
        parameters: the parameters to guard (e.g. ``network.parameters()``; a generator is materialised).
        max_norm: maximal total L2 norm of the gradient.
        max_skipped_fraction: stop training with an error when more than this fraction of the iterations
            so far (after at least 20) had to be skipped: the run is then diverging, not hitting a rare batch.
    """

    def __init__(self, parameters: Iterable[torch.nn.Parameter], max_norm: float, max_skipped_fraction: float = 0.2):
        self.parameters = [p for p in parameters if p.requires_grad]
        if not self.parameters:
            raise ValueError("GradientGuard: no trainable parameters given.")
        if not max_norm > 0:
            raise ValueError(f"GradientGuard: max_norm must be > 0, got {max_norm!r}.")
        self.max_norm = float(max_norm)
        self.max_skipped_fraction = float(max_skipped_fraction)
        self.logger = logging.getLogger(__name__)

    def attach(self, engine) -> None:
        from monai.engines.utils import IterationEvents

        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine) -> None:
        norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.max_norm)
        state = engine.state
        if not hasattr(state, "skipped_steps"):
            state.skipped_steps = 0
        if torch.isfinite(norm):
            return
        for p in self.parameters:
            p.grad = None
        state.skipped_steps += 1
        self.logger.warning(
            f"iteration {state.iteration}: gradient norm {float(norm)}; optimiser step skipped "
            f"({state.skipped_steps} so far)."
        )
        if state.iteration >= 20 and state.skipped_steps > self.max_skipped_fraction * state.iteration:
            raise FloatingPointError(
                f"{state.skipped_steps} of {state.iteration} iterations had a non-finite gradient: training diverges "
                "(lower the learning rate or the leapfrog step size)."
            )
