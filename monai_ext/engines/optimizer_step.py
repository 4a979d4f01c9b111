"""The end of a custom training iteration (``SupervisedTrainer(iteration_update=...)``) as MONAI's own
``SupervisedTrainer`` ends it: backward (through the AMP scaler when there is one), the optimizer step, the detached
loss in the output and the iteration events handlers listen to."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

__all__ = ["step_with_loss"]


def step_with_loss(engine: Any, loss: torch.Tensor) -> dict:
    """Backpropagate ``loss`` and step ``engine.optimizer`` (scaled when ``engine.amp`` and a scaler are set),
    firing BACKWARD_COMPLETED and then MODEL_COMPLETED (where MONAI decollates the output); returns
    ``engine.state.output`` with the loss detached."""
    amp = engine.amp and engine.scaler is not None
    (engine.scaler.scale(loss) if amp else loss).backward()
    engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
    if amp:
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
    else:
        engine.optimizer.step()
    engine.state.output[Keys.LOSS] = loss.detach()
    engine.fire_event(IterationEvents.MODEL_COMPLETED)
    return engine.state.output
