"""Needle + reverberation augmentation for ultrasound inpainting (HPI, DGM4MICCAI 2021): geometry of the needle and
its echoes, masks, replay from the record, dictionary version, errors."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.transforms import (
    NeedleReverberation,
    NeedleReverberationd,
    RandNeedleReverberation,
    RandNeedleReverberationd,
    needle_centreline,
)


def _background(shape=(64, 64)):
    return (np.random.default_rng(0).random((1, *shape)) * 0.3).astype(np.float32)


def test_centreline_length_and_bend():
    straight = needle_centreline([10.0, 5.0], 0.0, 40.0)
    assert np.allclose(straight[-1], [10.0, 45.0]) and np.allclose(straight[:, 0], 10.0)
    down = needle_centreline([0.0, 20.0], 90.0, 30.0)
    assert np.allclose(down[-1], [30.0, 20.0], atol=1e-6)
    bent = needle_centreline([10.0, 5.0], 0.0, 40.0, curvature=0.01)
    assert bent[-1, 0] > 10.0 + 5.0  # bends downwards, the arc keeps its length
    assert np.sum(np.linalg.norm(np.diff(bent, axis=0), axis=1)) == pytest.approx(40.0, abs=0.01)


def test_horizontal_needle_echoes_are_equally_spaced_and_decay():
    t = NeedleReverberation([10.0, 8.0], 0.0, 40.0, intensity=1.0, thickness=2.0, num_echoes=3, echo_spacing=6.0,
                            echo_decay=0.5)
    out = t(np.zeros((1, 64, 64), np.float32))
    column = out[0, :, 28]
    assert column[10] == pytest.approx(1.0, abs=1e-6)
    assert [column[10 + 6 * k] for k in (1, 2, 3)] == pytest.approx([0.5, 0.25, 0.125], abs=1e-6)
    assert column[40:].max() == 0 and out[0, :, 55:].max() == 0  # nothing below the last echo or past the tip
    needle, artifact = t.masks((64, 64))
    assert needle[10, 8:49].all() and needle[16].sum() == 0
    # echo rows only, each as wide as the needle at half maximum (2 pixels FWHM: the centre row +- 1)
    assert set(torch.nonzero(artifact[:, 28]).reshape(-1).tolist()) == {15, 16, 17, 21, 22, 23, 27, 28, 29}


def test_dropout_hides_shaft_but_not_ground_truth():
    img = _background()
    t = NeedleReverberation([20.0, 4.0], 0.0, 50.0, dropout=[[0.4, 0.6]], num_echoes=2)
    out = t(img)
    needle, artifact = t.masks((64, 64))
    gap = slice(4 + 22, 4 + 28)
    assert np.array_equal(out[0, 20, gap], img[0, 20, gap])  # invisible there, echoes too
    assert needle[20, gap].all() and not artifact[:, gap].any()
    assert out[0, 20, 8] == pytest.approx(1.0)


def test_replay_from_record_numpy_torch_metatensor():
    img = _background((48, 56))
    rand = RandNeedleReverberation(prob=1.0).set_random_state(7)
    out = rand(torch.as_tensor(img))
    again = NeedleReverberation(**rand.last_params)(img)
    np.testing.assert_allclose(out.numpy(), again, atol=1e-6)
    meta = rand(MetaTensor(torch.as_tensor(img)), randomize=False)
    assert meta.meta["needle_reverberation"] == [rand.last_params]
    assert RandNeedleReverberation(prob=0.0)(img) is img


def test_dictionary_version_writes_masks_and_records():
    data = {"image": _background(), "label": np.zeros((1, 64, 64), np.float32)}
    d = RandNeedleReverberationd(keys="image", prob=1.0).set_random_state(1)(data)
    assert d["needle_mask"].shape == d["artifact_mask"].shape == (1, 64, 64)
    assert d["needle_mask"].sum() > 10 and d["artifact_mask"].sum() > 10
    record = d["image_meta_dict"]["needle_reverberation"][0]
    np.testing.assert_allclose(NeedleReverberation(**record)(data["image"]), d["image"], atol=1e-6)
    skipped = RandNeedleReverberationd(keys="image", prob=0.0)(data)
    assert skipped["artifact_mask"].sum() == 0 and np.array_equal(skipped["image"], data["image"])
    fixed = NeedleReverberationd(["image", "label"], [5.0, 5.0], 30.0, 30.0, artifact_mask_key=None)(data)
    assert "artifact_mask" not in fixed and np.array_equal(fixed["image"] > 0.99, fixed["label"] > 0.99)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        NeedleReverberation([1.0, 1.0], 10.0, 5.0)(np.zeros((1, 8, 8, 8), np.float32))
    with pytest.raises(ValueError, match="dropout segment"):
        NeedleReverberation([1.0, 1.0], 10.0, 5.0, dropout=[[0.5, 0.2]])
    with pytest.raises(ValueError, match="echo_decay"):
        NeedleReverberation([1.0, 1.0], 10.0, 5.0, echo_decay=1.5)
    with pytest.raises(ValueError, match="angle_range"):
        RandNeedleReverberation(angle_range=(50.0, 10.0))
    with pytest.raises(ValueError, match="'label': spatial shape"):
        NeedleReverberationd(["image", "label"], [1.0, 1.0], 10.0, 5.0)({"image": _background(), "label": np.zeros((1, 8, 8))})
