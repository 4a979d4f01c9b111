"""Label corruptions of Vorontsov & Kadoury (DGM4MICCAI/DALI 2021): B-spline warp (unbiased), constant shift
(biased), per-tumour crops (left / rand_0.5 / rand_0, calibrated to remove half the tumour): behaviour, replay from
the record, numpy / torch / MetaTensor, 3D, dictionary versions and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from monai_ext.transforms import (
    MASK_CROP_EXPONENTS,
    MASK_CROP_MODES,
    BSplineMaskWarp,
    BSplineMaskWarpd,
    MaskCrop,
    MaskCropd,
    MaskShift,
    MaskShiftd,
    RandBSplineMaskWarp,
    RandBSplineMaskWarpD,
    RandBSplineMaskWarpd,
    RandMaskCrop,
    RandMaskCropd,
    RandMaskCropDict,
    calibrate_mask_crop_exponent,
    mask_crop_calibration_masks,
    mean_removed_fraction,
)

CUDA = [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    return mask_crop_calibration_masks(100, seed=0)


def _ellipse(shape=(64, 64), centre=(30, 34), axes=(14, 9)) -> np.ndarray:
    grid = np.mgrid[tuple(slice(0, n) for n in shape)]
    r = sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes))
    return (r <= 1).astype(np.uint8)[None]


def _centroid(mask) -> np.ndarray:
    return np.argwhere(np.asarray(mask)[0]).mean(0)


def _removed(before: np.ndarray, after: np.ndarray) -> float:
    return 1.0 - float(np.asarray(after).sum()) / float(before.sum())


# ----------------------------------------------------------------------------- calibration set


def test_calibration_blobs_are_single_tumours_inside_the_frame(blobs):
    assert blobs.shape == (100, 1, 64, 64) and blobs.dtype == np.uint8
    for m in blobs:
        assert ndimage.label(m[0], np.ones((3, 3)))[1] == 1
        assert not (m[0, 0].any() or m[0, -1].any() or m[0, :, 0].any() or m[0, :, -1].any())
    area = blobs.sum((1, 2, 3))
    assert area.min() > 80 and area.max() < 1500
    np.testing.assert_array_equal(mask_crop_calibration_masks(5, seed=0), blobs[:5])


# ----------------------------------------------------------------------------- warp


def test_warp_sigma_zero_is_identity(blobs):
    t = RandBSplineMaskWarp(prob=1.0, sigma=0.0).set_random_state(0)
    for m in blobs[:10]:
        out = t(m)
        np.testing.assert_array_equal(out, m)
        assert out is not m
    np.testing.assert_array_equal(BSplineMaskWarp(np.zeros((2, 3, 3)))(blobs[0]), blobs[0])
    # a control displacement that is the same everywhere is a pure translation (by minus the displacement)
    out = BSplineMaskWarp(np.stack([np.full((3, 3), 4.0), np.zeros((3, 3))]))(_ellipse())
    np.testing.assert_array_equal(out, MaskShift((-4, 0))(_ellipse()))


def _reference_warp(mask: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """The warp from its definition: the control grid interpolated at every pixel (cubic spline, control point
    j at j (n - 1) / (g - 1)), the mask sampled at x + u(x) (linear, 0 outside), thresholded at 0.5."""
    shape = mask.shape[1:]
    pix = np.indices(shape, dtype=float)
    grid_coords = np.stack([p * (g - 1) / (n - 1) for p, n, g in zip(pix, shape, disp.shape[1:])])
    field = np.stack([ndimage.map_coordinates(d, grid_coords, order=3, mode="mirror") for d in disp])
    vals = ndimage.map_coordinates(mask[0].astype(float), pix + field, order=1, mode="constant", cval=0.0)
    return (vals >= 0.5).astype(mask.dtype)[None]


def test_warp_matches_its_definition(blobs):
    rng = np.random.default_rng(4)
    for m in blobs[:5]:
        disp = rng.normal(0, 5, (2, 3, 3))
        np.testing.assert_array_equal(BSplineMaskWarp(disp)(m), _reference_warp(m, disp))
    m3 = np.zeros((1, 16, 14, 10), np.uint8)
    m3[0, 4:12, 3:11, 2:8] = 1
    disp = rng.normal(0, 2, (3, 3, 4, 3))  # the control grid may differ per axis
    np.testing.assert_array_equal(BSplineMaskWarp(disp)(m3), _reference_warp(m3, disp))
    # sub-pixel: sampling at x - 0.3 gives the first row 0.7 (kept), at x - 0.7 it gives 0.3 (dropped: < 0.5)
    rect = np.zeros((1, 12, 12), np.uint8)
    rect[0, 4:8, 3:9] = 1
    for d, top in ((0.3, 4), (0.7, 5)):
        out = BSplineMaskWarp(np.stack([np.full((3, 3), -d), np.zeros((3, 3))]))(rect)
        assert np.nonzero(out[0].any(1))[0].min() == top, d
    # the field passes through the control values: only the centre control point moves (4 px along axis 1)
    disp = np.zeros((2, 3, 3))
    disp[1, 1, 1] = 4.0
    dot = np.zeros((1, 33, 33), np.uint8)
    dot[0, 16, 20] = 1
    out = BSplineMaskWarp(disp)(dot)
    assert out[0, 16, 16] == 1 and out.sum() == 1


def test_warp_sigma_5_is_unbiased_and_keeps_the_area(blobs):
    t = RandBSplineMaskWarp(sigma=5.0).set_random_state(1)
    ratios, shifts, changed = [], [], 0
    for i in range(100):
        m = blobs[i % len(blobs)]
        out = t(m)
        assert out.shape == m.shape and out.dtype == m.dtype and set(np.unique(out)) <= {0, 1}
        changed += int((out != m).any())
        ratios.append(out.sum() / m.sum())
        shifts.append(_centroid(out) - _centroid(m))
    ratios, shifts = np.array(ratios), np.array(shifts)
    assert changed >= 98
    assert abs(ratios.mean() - 1) < 0.1 and np.mean(np.abs(ratios - 1)) < 0.3, ratios
    assert np.all(np.abs(shifts.mean(0)) < 1.5), shifts.mean(0)  # no systematic displacement
    assert 1.0 < np.linalg.norm(shifts, axis=1).mean() < 8.0  # but each draw moves the mask by a few px
    # bigger sigma, bigger change
    big = RandBSplineMaskWarp(sigma=10.0).set_random_state(1)
    d5 = np.mean([(t(m) != m).sum() for m in blobs[:30]])
    d10 = np.mean([(big(m) != m).sum() for m in blobs[:30]])
    assert d10 > 1.3 * d5


def test_warp_3d_and_control_grid():
    m = np.zeros((1, 24, 20, 12), np.uint8)
    m[0, 6:16, 5:15, 3:9] = 1
    t = RandBSplineMaskWarp(sigma=2.0, grid_size=4).set_random_state(0)
    out = t(m)
    assert out.shape == m.shape and np.asarray(t.last_params["displacements"]).shape == (3, 4, 4, 4)
    assert (out != m).any() and abs(out.sum() / m.sum() - 1) < 0.5
    np.testing.assert_array_equal(BSplineMaskWarp(**t.last_params)(m), out)
    np.testing.assert_array_equal(BSplineMaskWarp(np.zeros((3, 3, 3, 3)))(m), m)


# ----------------------------------------------------------------------------- shift


@pytest.mark.parametrize("shift", [(5, 0), (0, -7), (-3, 4)])
def test_shift_moves_the_centroid_by_exactly_the_shift(shift):
    m = _ellipse()
    out = MaskShift(shift)(m)
    assert out.sum() == m.sum()
    np.testing.assert_allclose(_centroid(out) - _centroid(m), shift, atol=1e-9)


def test_shift_drops_what_leaves_the_frame_and_fills_zeros():
    m = np.zeros((1, 10, 8), np.uint8)
    m[0, 6:10, 2:5] = 1
    out = MaskShift((3, -1))(m)
    expected = np.zeros_like(m)
    expected[0, 9:10, 1:4] = 1
    np.testing.assert_array_equal(out, expected)
    assert not MaskShift((10, 0))(m).any() and not MaskShift((0, -8))(m).any()
    m3 = np.zeros((1, 8, 8, 6), np.float32)
    m3[0, 2:4, 2:4, 1:3] = 1
    out3 = MaskShift((1, 2, -1))(m3)
    assert out3.dtype == np.float32 and out3.sum() == m3.sum()
    np.testing.assert_allclose(_centroid(out3) - _centroid(m3), (1, 2, -1))


# ----------------------------------------------------------------------------- crop


def test_crop_left_removes_only_the_low_side_of_axis_0(blobs):
    t = RandMaskCrop(mode="left").set_random_state(0)
    moved = 0
    for m in blobs[:40]:
        out = t(m)
        gone = (m[0] == 1) & (out[0] == 0)
        assert not ((out[0] == 1) & (m[0] == 0)).any()
        if gone.any() and out.any():
            assert np.argwhere(gone)[:, 0].max() < np.argwhere(out[0])[:, 0].min()
            c0, c1 = _centroid(m), _centroid(out)
            assert c1[0] > c0[0]
            moved += 1
        (box,) = t.last_params["boxes"]
        rows, cols = np.nonzero(m[0])
        assert box[0] == rows.min() and box[1] == cols.min() and box[3] == cols.max() + 1
    assert moved >= 30


@pytest.mark.parametrize("mode", MASK_CROP_MODES)
def test_crop_default_exponent_removes_half_on_average(blobs, mode):
    t = RandMaskCrop(mode=mode).set_random_state(3)
    assert t.exponent == MASK_CROP_EXPONENTS[mode]
    fracs = [_removed(m, t(m)) for _ in range(5) for m in blobs]
    assert np.mean(fracs) == pytest.approx(0.5, abs=0.07), np.mean(fracs)
    assert mean_removed_fraction(blobs, mode, MASK_CROP_EXPONENTS[mode], 20) == pytest.approx(0.5, abs=0.02)
    if mode == "rand_0.5":  # at k = 0 it removes about 0.66: only a density favouring small boxes reaches 0.5
        assert MASK_CROP_EXPONENTS[mode] < 0
        assert mean_removed_fraction(blobs[:30], mode, 0.0, 5) > 0.6


def test_crop_rand_0_sometimes_removes_almost_nothing(blobs):
    t0 = RandMaskCrop(mode="rand_0").set_random_state(0)
    t5 = RandMaskCrop(mode="rand_0.5").set_random_state(0)
    f0 = [_removed(m, t0(m)) for _ in range(3) for m in blobs]
    f5 = [_removed(m, t5(m)) for _ in range(3) for m in blobs]
    assert np.min(f0) < 0.05 and np.mean(np.array(f0) < 0.05) > 0.01
    assert np.min(f5) > 0.1
    for mode, t in (("rand_0", t0), ("rand_0.5", t5)):  # boxes inside the bounding box, edge fractions in range
        m = blobs[7]
        t(m)
        (box,) = t.last_params["boxes"]
        rows, cols = np.nonzero(m[0])
        lo = np.array([rows.min(), cols.min()])
        hi = np.array([rows.max(), cols.max()]) + 1
        assert np.all(np.array(box[:2]) >= lo) and np.all(np.array(box[2:]) <= hi)
        if mode == "rand_0.5":
            assert np.all(np.array(box[2:]) - box[:2] >= np.floor(0.5 * (hi - lo)))


def test_crop_one_box_per_component_with_full_connectivity():
    m = np.zeros((1, 32, 32), np.uint8)
    m[0, 2:8, 2:8] = 1
    m[0, 8:12, 8:12] = 1  # touches the first square diagonally: the same tumour (8-connectivity)
    m[0, 20:30, 15:28] = 1
    t = RandMaskCrop(mode="left").set_random_state(0)
    t(m)
    boxes = t.last_params["boxes"]
    assert len(boxes) == 2
    assert boxes[0][1] == 2 and boxes[0][3] == 12 and boxes[1][1] == 15 and boxes[1][3] == 28
    assert RandMaskCrop()(np.zeros((1, 8, 8), np.uint8)).sum() == 0  # no tumour: nothing to crop


def test_crop_3d():
    m = np.zeros((1, 20, 20, 10), bool)
    m[0, 2:8, 3:9, 1:5] = True
    m[0, 8, 9, 5] = True  # 26-connected to the first block
    m[0, 12:18, 12:18, 4:9] = True
    for mode in MASK_CROP_MODES:
        t = RandMaskCrop(mode=mode, exponent=2.0).set_random_state(1)
        out = t(m)
        assert out.dtype == bool and out.shape == m.shape and len(t.last_params["boxes"]) == 2
        assert all(len(b) == 6 for b in t.last_params["boxes"]) and out.sum() < m.sum()
        np.testing.assert_array_equal(MaskCrop(**t.last_params)(m), out)
    out = MaskCrop([[2, 3, 1, 4, 9, 5]])(m)
    assert out.sum() == m.sum() - 2 * 6 * 4 and not out[0, 2:4, 3:9, 1:5].any()


def test_calibrate_exponent(blobs):
    few = blobs[:30]
    k = calibrate_mask_crop_exponent(few, "rand_0", target=0.5, n_draws=10, iterations=25)
    assert 0.3 < k < 2.0
    assert mean_removed_fraction(few, "rand_0", k, n_draws=10, seed=0) == pytest.approx(0.5, abs=0.01)
    k7 = calibrate_mask_crop_exponent(few, "left", target=0.7, n_draws=10, iterations=25)
    assert k7 > 0.5 and mean_removed_fraction(few, "left", k7, n_draws=10) == pytest.approx(0.7, abs=0.01)
    k5 = calibrate_mask_crop_exponent(few, "rand_0.5", n_draws=5)                   # below 0: favours small boxes
    assert -0.9 < k5 < -0.3 and mean_removed_fraction(few, "rand_0.5", k5, n_draws=5) == pytest.approx(0.5, abs=0.01)
    assert calibrate_mask_crop_exponent(few[:5], "rand_0", target=0.999, n_draws=2, max_exponent=5.0) == 5.0


# ----------------------------------------------------------------------------- replay, types, devices


def _random_transforms():
    return [
        (RandBSplineMaskWarp(sigma=5.0), BSplineMaskWarp, "mask_warp"),
        (RandMaskCrop(mode="rand_0"), MaskCrop, "mask_crop"),
        (RandMaskCrop(mode="left"), MaskCrop, "mask_crop"),
        (RandMaskCrop(mode="rand_0.5"), MaskCrop, "mask_crop"),
    ]


def test_replay_from_the_record_is_exact(blobs):
    for rand, det, field in _random_transforms():
        rand.set_random_state(5)
        for m in blobs[:8]:
            mt = MetaTensor(torch.as_tensor(m), meta={"filename_or_obj": "x.nii.gz"})
            out = rand(mt)
            assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x.nii.gz"
            (record,) = out.meta[field]
            assert record == rand.last_params and field not in mt.meta
            replay = det(**record)(m)
            np.testing.assert_array_equal(replay, out.numpy())
            np.testing.assert_array_equal(rand(m, randomize=False), replay)
        # seeded: the same draws again
        rand.set_random_state(5)
        first = rand(blobs[0])
        np.testing.assert_array_equal(first, rand.set_random_state(5)(blobs[0]))
    out = MaskShift((2, -3))(MetaTensor(torch.as_tensor(blobs[0])))
    np.testing.assert_array_equal(MaskShift(**out.meta["mask_shift"][0])(blobs[0]), out.numpy())
    # records accumulate over applications
    twice = MaskShift((1, 0))(MaskShift((2, 0))(MetaTensor(torch.as_tensor(blobs[0]))))
    assert twice.meta["mask_shift"] == [{"shift": [2, 0]}, {"shift": [1, 0]}]


def test_prob_zero_returns_the_input(blobs):
    m = blobs[0]
    for t in (RandBSplineMaskWarp(prob=0.0), RandMaskCrop(prob=0.0)):
        assert t(m) is m and t.last_params is None
    out = RandMaskCropd("label", prob=0.0)({"label": m})
    assert out["label"] is m and "label_meta_dict" not in out


@pytest.mark.parametrize("device", ["cpu", *CUDA])
def test_numpy_and_torch_give_equal_results(blobs, device):
    m = blobs[3]
    cases = [
        lambda: BSplineMaskWarp(np.random.default_rng(0).normal(0, 5, (2, 3, 3))),
        lambda: RandBSplineMaskWarp(sigma=5.0).set_random_state(2),
        lambda: MaskShift((4, -2)),
        lambda: MaskCrop([[10, 10, 30, 40], [0, 0, 5, 5]]),
        lambda: RandMaskCrop(mode="rand_0").set_random_state(2),
    ]
    for make in cases:
        ref = make()(m)
        assert isinstance(ref, np.ndarray) and ref.dtype == np.uint8
        for dtype in (torch.uint8, torch.float32, torch.bool, torch.int64):
            x = torch.as_tensor(m).to(device=device, dtype=dtype)
            got = make()(x)
            assert isinstance(got, torch.Tensor) and got.dtype == dtype and got.device == x.device
            np.testing.assert_array_equal(got.cpu().numpy().astype(np.uint8), ref)
            np.testing.assert_array_equal(x.cpu().numpy().astype(np.uint8), m)  # input unchanged
        got = make()(m.astype(np.float64))
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, ref)


# ----------------------------------------------------------------------------- dictionary versions


def test_dictionary_versions_touch_only_the_label_and_record(blobs):
    img = np.random.default_rng(0).random((1, 64, 64)).astype(np.float32)
    m = blobs[4]
    cases = [
        (RandBSplineMaskWarpd("label", sigma=5.0).set_random_state(0), RandBSplineMaskWarp(sigma=5.0), "mask_warp"),
        (RandMaskCropd("label", mode="rand_0").set_random_state(0), RandMaskCrop(mode="rand_0"), "mask_crop"),
        (BSplineMaskWarpd("label", np.ones((2, 3, 3))), BSplineMaskWarp(np.ones((2, 3, 3))), "mask_warp"),
        (MaskShiftd("label", (3, 1)), MaskShift((3, 1)), "mask_shift"),
        (MaskCropd("label", [[20, 20, 40, 40]]), MaskCrop([[20, 20, 40, 40]]), "mask_crop"),
    ]
    for dt, at, field in cases:
        if hasattr(at, "set_random_state"):
            at.set_random_state(0)
        src_meta = {"filename_or_obj": "a.nii"}
        data = {"image": img, "label": m, "label_meta_dict": src_meta}
        out = dt(data)
        assert out["image"] is img and out is not data and data["label"] is m
        np.testing.assert_array_equal(out["label"], at(m))
        (record,) = out["label_meta_dict"][field]
        assert out["label_meta_dict"]["filename_or_obj"] == "a.nii" and field not in src_meta
        assert "image_meta_dict" not in out
        if hasattr(dt, "last_params"):
            assert record == dt.last_params
        # MetaTensor label: the record goes into its meta
        mt = MetaTensor(torch.as_tensor(m))
        out_mt = dt({"image": img, "label": mt})
        assert field in out_mt["label"].meta and "label_meta_dict" not in out_mt
    assert RandBSplineMaskWarpD is RandBSplineMaskWarpd and RandMaskCropDict is RandMaskCropd


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_value_errors_naming_the_argument():
    m = _ellipse()
    two = m * 2
    four = np.zeros((4, 16, 16), np.uint8)
    for t in (RandBSplineMaskWarp(), BSplineMaskWarp(np.zeros((2, 3, 3))), MaskShift((1, 0)), RandMaskCrop(),
              MaskCrop([])):
        with pytest.raises(ValueError, match=r"img.*binary.*\[2\]"):
            t(two)
        with pytest.raises(ValueError, match=r"img.*one channel.*\(4, 16, 16\)"):
            t(four)
        with pytest.raises(ValueError, match="img"):
            t(np.zeros((16, 16), np.uint8))
        with pytest.raises(ValueError, match="img"):
            t(torch.full((1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="sigma=-1"):
        RandBSplineMaskWarp(sigma=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        RandBSplineMaskWarpd("label", sigma=-0.5)
    with pytest.raises(ValueError, match="grid_size"):
        RandBSplineMaskWarp(grid_size=1)
    with pytest.raises(ValueError, match="mode='right'"):
        RandMaskCrop(mode="right")
    with pytest.raises(ValueError, match="mode='right'"):
        RandMaskCropd("label", mode="right")
    with pytest.raises(ValueError, match="mode"):
        mean_removed_fraction([m], "right", 0.0)
    with pytest.raises(ValueError, match="exponent"):
        RandMaskCrop(exponent=-1.0)
    with pytest.raises(ValueError, match="displacements"):
        BSplineMaskWarp(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="displacements"):
        BSplineMaskWarp(np.zeros((3, 3, 3, 3)))(m)  # 3D grid for a 2D mask
    with pytest.raises(ValueError, match="shift"):
        MaskShift((1.5, 0))
    with pytest.raises(ValueError, match="shift"):
        MaskShift((1, 0, 0))(m)
    with pytest.raises(ValueError, match="boxes"):
        MaskCrop([[5, 5, 2, 8]])
    with pytest.raises(ValueError, match="boxes"):
        MaskCrop([[0, 0, 70, 10]])(m)
    with pytest.raises(ValueError, match="'label'.*binary"):
        RandMaskCropd("label")({"label": two})
    with pytest.raises(ValueError, match="'label'.*one channel"):
        MaskShiftd("label", (1, 1))({"label": four})
    with pytest.raises(ValueError, match="target"):
        calibrate_mask_crop_exponent([m], "left", target=1.5)


# ----------------------------------------------------------------------------- erosion / dilation


def _square(n=32, lo=10, hi=20):
    m = np.zeros((1, n, n), np.uint8)
    m[0, lo:hi, lo:hi] = 1
    return m


def test_morphology_dilates_erodes_and_is_the_identity_at_radius_zero():
    from monai_ext.transforms import MaskMorphology

    m = _square()
    grown, shrunk = MaskMorphology(2)(m), MaskMorphology(-2)(m)
    assert grown.sum() > m.sum() > shrunk.sum() and np.all(grown >= m) and np.all(shrunk <= m)
    assert shrunk.sum() == 36                       # a 10 x 10 square eroded by 2 px on each side
    np.testing.assert_array_equal(MaskMorphology(0)(m), m)
    m3 = np.zeros((1, 12, 12, 12), np.uint8)
    m3[0, 4:8, 4:8, 4:8] = 1
    assert MaskMorphology(1)(m3).sum() > 64 and MaskMorphology(-1)(m3).sum() == 8


def test_random_morphology_is_unbiased_and_biased_modes_are_one_sided():
    from monai_ext.transforms import MaskMorphology, RandMaskMorphology

    m = _square()
    rand = RandMaskMorphology(max_radius=2, mode="random").set_random_state(0)
    radii = []
    for _ in range(300):
        out = rand(m)
        radii.append(rand.last_params["radius"])
        np.testing.assert_array_equal(out, MaskMorphology(**rand.last_params)(m))   # replay from the record
    assert set(radii) == {-2, -1, 0, 1, 2} and abs(np.mean(radii)) < 0.25
    for mode, sign in (("dilate", 1), ("erode", -1)):
        t = RandMaskMorphology(max_radius=2, mode=mode).set_random_state(1)
        for _ in range(20):
            out = t(m)
            assert t.last_params["radius"] * sign in (1, 2)
            assert (int(out.sum()) - int(m.sum())) * sign > 0


def test_morphology_dict_touches_only_the_label_and_records_on_numpy_and_torch():
    from monai_ext.transforms import RandMaskMorphologyd

    m = _square()
    img = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    t = RandMaskMorphologyd(keys="label", max_radius=2, mode="erode").set_random_state(3)
    d = t({"image": img, "label": m})
    assert d["image"] is img and d["label"].sum() < m.sum()
    assert d["label_meta_dict"]["mask_morphology"][0]["radius"] in (-1, -2)
    t.set_random_state(3)
    dt = t({"image": torch.as_tensor(img), "label": MetaTensor(torch.as_tensor(m))})
    np.testing.assert_array_equal(dt["label"].numpy(), d["label"])
    assert dt["label"].meta["mask_morphology"] == d["label_meta_dict"]["mask_morphology"]


def test_morphology_bad_input_is_named():
    from monai_ext.transforms import MaskMorphology, RandMaskMorphology

    with pytest.raises(ValueError, match="radius=1.5"):
        MaskMorphology(1.5)
    with pytest.raises(ValueError, match="max_radius"):
        RandMaskMorphology(max_radius=0)
    with pytest.raises(ValueError, match="mode='open'"):
        RandMaskMorphology(mode="open")
    with pytest.raises(ValueError, match="binary mask"):
        MaskMorphology(1)(_square() * 2)
