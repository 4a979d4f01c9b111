"""Per-class Dice of the FS-Net bundle's evaluation: an ignite ``output_transform`` that keeps one class channel."""

from __future__ import annotations

from typing import Any, Callable

from monai.handlers import from_engine

__all__ = ["class_channel_output"]


def class_channel_output(channel: int) -> Callable[[Any], tuple[list, list]]:
    """``output_transform`` for MONAI metric handlers: the decollated engine output's one-hot ``pred`` and
    ``label`` cut to channel ``channel`` ((1, *spatial) each), e.g. ``MeanDice(include_background=True,
    output_transform=class_channel_output(1))`` for the Dice of class 1 alone."""
    c = int(channel)
    if c < 0:
        raise ValueError(f"class_channel_output: channel must be >= 0, got {channel!r}.")
    pick = from_engine(["pred", "label"])

    def transform(output: Any) -> tuple[list, list]:
        preds, labels = pick(output)
        return [p[c:c + 1] for p in preds], [y[c:c + 1] for y in labels]

    return transform
