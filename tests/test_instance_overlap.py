"""Per-instance detection and shape scores (matching by IoU, area overlap, Dice, area difference, contour
distances), checked against hand-computed values and MONAI's panoptic-quality counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import compute_panoptic_quality

from monai_ext.metrics import instance_overlap_scores, match_instances


def _squares(shift: int = 0, drop: int | None = None, extra: bool = False) -> np.ndarray:
    lab = np.zeros((40, 40), np.int32)
    for k, (r, c) in enumerate([(5, 5), (5, 25), (25, 5), (25, 25)], start=1):
        if k != drop:
            lab[r : r + 10, c + shift : c + shift + 10] = k
    if extra:
        lab[17:21, 17:21] = 9
    return lab


def test_identical_instances_score_perfectly_whatever_their_label_values():
    ref = _squares()
    pred = np.where(ref > 0, 5 - ref, 0)                      # same cells, other label numbers
    s = instance_overlap_scores(pred, ref)
    assert s["detected"] == 4 and s["missed"] == s["false"] == 0
    assert s["area_overlap"] == s["dice"] == 1.0 and s["area_difference_pct"] == s["asd"] == s["msd"] == 0.0
    assert sorted(m[1] for m in match_instances(pred, ref)) == [1, 2, 3, 4]


def test_shifted_missing_and_extra_cells():
    ref, pred = _squares(), _squares(shift=1, drop=2, extra=True)
    s = instance_overlap_scores(pred, ref)
    assert s["detected"] == 3 and s["missed"] == 1 and s["false"] == 1
    assert s["area_overlap"] == pytest.approx(90 / 110) and s["dice"] == pytest.approx(0.9)
    assert s["area_difference_pct"] == 0.0 and s["msd"] == pytest.approx(1.0) and 0 < s["asd"] < s["rsd"] <= 1.0
    assert instance_overlap_scores(pred, ref, spacing=2.0)["msd"] == pytest.approx(2.0)
    # MONAI's panoptic quality matches at IoU > 0.5 too: the same counts
    pq = compute_panoptic_quality(torch.as_tensor(pred), torch.as_tensor(ref), output_confusion_matrix=True)
    tp, fp, fn = (float(v) for v in pq[:3])
    assert (tp, fp, fn) == (s["detected"], s["false"], s["missed"])


def test_low_overlap_is_not_a_detection_and_bad_input_is_named():
    ref = _squares()
    assert instance_overlap_scores(_squares(shift=6), ref)["detected"] == 0
    assert np.isnan(instance_overlap_scores(np.zeros_like(ref), ref)["dice"])
    with pytest.raises(ValueError, match="same shape"):
        match_instances(ref[:30], ref)
    with pytest.raises(ValueError, match="negative labels"):
        instance_overlap_scores(-ref, ref)
    with pytest.raises(ValueError, match="integer labels"):
        instance_overlap_scores(ref + 0.5, ref)
