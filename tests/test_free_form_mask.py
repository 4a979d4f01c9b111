"""Free-form inpainting hole masks (Yu et al. 2019, as HPI trains with): rasterised strokes, random draws that
replay from their record, dictionary version, errors."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.transforms import FreeFormMask, FreeFormMaskd, RandFreeFormMask, RandFreeFormMaskd


def test_strokes_are_rasterised_with_their_width():
    img = np.zeros((1, 40, 40), np.float32)
    dab = FreeFormMask([{"points": [[20, 20]], "width": 10}])(img)[0]
    assert dab.sum() == pytest.approx(np.pi * 5**2, rel=0.15) and dab[20, 20] == 1 and dab[20, 26] == 0
    line = FreeFormMask([{"points": [[10, 5], [10, 35]], "width": 4}])(torch.as_tensor(img))[0]
    assert line[8:13, 5:36].all() and line[13:].sum() == 0 and line[:8].sum() == 0  # rows 8-12: within 2 px
    bent = FreeFormMask([{"points": [[5, 5], [5, 30], [30, 30]], "width": 2}]).mask((40, 40))
    assert bent[5, 20] == 1 and bent[20, 30] == 1 and bent[20, 20] == 0  # the corner is not cut


def test_random_masks_replay_and_cover_a_sensible_area():
    img = np.zeros((1, 64, 48), np.float32)
    rand = RandFreeFormMask().set_random_state(3)
    fractions = []
    for _ in range(30):
        m = rand(img)
        np.testing.assert_array_equal(FreeFormMask(**rand.last_params)(img), m)
        fractions.append(float(m.mean()))
    assert 0.03 < np.mean(fractions) < 0.4 and max(fractions) < 0.8 and min(fractions) > 0
    assert RandFreeFormMask(prob=0.0)(img).sum() == 0
    meta = rand(MetaTensor(torch.as_tensor(img)), randomize=False)
    assert meta.meta["free_form_mask"] == rand.last_params and meta.shape == (1, 64, 48)


def test_dictionary_versions():
    data = {"image": np.zeros((2, 32, 32), np.float32)}
    d = RandFreeFormMaskd(keys="image").set_random_state(0)(data)
    assert d["mask"].shape == (1, 32, 32) and d["mask"].sum() > 0
    np.testing.assert_array_equal(FreeFormMask(**d["mask_meta_dict"]["free_form_mask"])(data["image"]), d["mask"])
    assert RandFreeFormMaskd(keys="image", prob=0.0)(data)["mask"].sum() == 0
    fixed = FreeFormMaskd("image", [{"points": [[1, 1]], "width": 3}], mask_key="hole")(data)
    assert fixed["hole"][0, 1, 1] == 1 and "mask" not in fixed


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="stroke 0: expected a brush 'width'"):
        FreeFormMask([{"points": [[1, 1]], "width": 0}])
    with pytest.raises(ValueError, match="stroke 1: expected 'points'"):
        FreeFormMask([{"points": [[1, 1]], "width": 2}, {"points": [1, 2, 3], "width": 2}])
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        RandFreeFormMask()(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="num_strokes"):
        RandFreeFormMask(num_strokes=(3, 1))
