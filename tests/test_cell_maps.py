"""Cell instance labels <-> centroid / region maps (CellTargets, CentroidSeededWatershed): targets separate touching
cells, and the watershed gets the cells back from them, on the cone-mosaic phantom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ext.metrics import instance_overlap_scores
from monai_ext.phantoms import generate_cone_pair
from monai_ext.transforms import CellTargets, CellTargetsd, CentroidSeededWatershed, CentroidSeededWatershedd


def test_targets_keep_touching_cells_apart_and_put_a_ball_on_each_centre():
    lab = np.zeros((1, 9, 12), np.int32)
    lab[0, 2:7, 1:6], lab[0, 2:7, 6:11] = 1, 2                 # two 5 x 5 cells side by side
    t = CellTargets(centroid_radius=1.0)(lab)
    assert t.shape == (2, 9, 12) and t.dtype == np.float32
    assert t[1, 2:7, 5].sum() == 0 and t[1, 2:7, 6].sum() == 0  # the touching columns are not region
    assert t[1, 2:7, 1:5].all() and t[1, 2:7, 7:11].all()
    assert t[0, 4, 3] == t[0, 4, 8] == 1 and t[0].sum() == 10   # a radius-1 cross on each centre
    out = CellTargetsd("label", centroid_radius=1.0)({"label": torch.as_tensor(lab)})["label"]
    assert isinstance(out, torch.Tensor) and np.array_equal(out.numpy(), t)
    with pytest.raises(ValueError, match="non-negative integers"):
        CellTargets()(lab - 1)


def test_watershed_recovers_the_cells_of_a_cone_mosaic_from_their_targets():
    labels = generate_cone_pair(1, size=96)["labels"][:1]
    maps = CellTargets(centroid_radius=1.5)(labels)
    inst = CentroidSeededWatershed(region_threshold=0.5)(torch.as_tensor(maps))
    assert isinstance(inst, torch.Tensor) and inst.dtype == torch.int32 and inst.shape == (1, 96, 96)
    s = instance_overlap_scores(inst[0].numpy(), labels[0])
    assert s["recall"] > 0.95 and s["precision"] > 0.95 and s["area_overlap"] > 0.7
    blurred = CentroidSeededWatershedd("pred", min_size=5)({"pred": maps * 0.8 + 0.1})["pred"]   # Otsu on the region
    assert instance_overlap_scores(blurred[0], labels[0])["recall"] > 0.9
    with pytest.raises(ValueError, match="centroid, region"):
        CentroidSeededWatershed()(maps[:1])
