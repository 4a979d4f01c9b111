"""Test scores of the active-learning benchmark's classifier: accuracy, balanced accuracy (mean recall over the
classes: what an unbalanced test set hides from accuracy) and the recall of each class, as MONAI ``MetricsSaver``
rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...engines.active_learning import pool_predictions
from ...io import atomic_write

__all__ = ["evaluate_classifier"]


def evaluate_classifier(network: torch.nn.Module, items: Sequence[Mapping[str, Any]], transform: Any,
                        output_dir: str | Path, num_classes: int = 3, prefix: str = "test",
                        device: str | torch.device = "cpu") -> dict[str, float]:
    """Scores of ``network`` (logits over ``num_classes``) on ``items`` (``{"image", "label"}``) after
    ``transform``; written to ``output_dir/metrics.csv`` (``<prefix>_accuracy``, ``<prefix>_balanced_accuracy``,
    ``<prefix>_recall_class<k>``) and returned."""
    if not items:
        raise ValueError("evaluate_classifier: no test items.")
    probs, _ = pool_predictions(network, items, transform, device=device)
    pred = probs.argmax(1)
    truth = np.asarray([int(it["label"]) for it in items])
    recalls = [float((pred[truth == k] == k).mean()) if (truth == k).any() else float("nan") for k in range(num_classes)]
    scores = {f"{prefix}_accuracy": float((pred == truth).mean()),
              f"{prefix}_balanced_accuracy": float(np.nanmean(recalls))}
    scores.update({f"{prefix}_recall_class{k}": r for k, r in enumerate(recalls)})
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.csv", lambda p: p.write_text("".join(f"{k},{v}\n" for k, v in scores.items())))
    print("test scores: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
    return scores
