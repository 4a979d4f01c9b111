"""Shared landmark pieces of the AdaptOR / DAG bundles: point lists, multi-point heatmaps, the Otsu and top-k
post-processing, point-matching F1, and landmark lists carried through MONAI's spatial transforms."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (
    ApplyTransformToPointsd,
    Compose,
    EnsureTyped,
    RandFlipd,
    RandRotated,
    RandSpatialCropd,
    RandZoomd,
)
from scipy import ndimage

import monai_ext.transforms.multi_point_heatmap as heatmap_module
from monai_ext.metrics import PointMatchF1Metric, match_points
from monai_ext.transforms import (
    HeatmapPeaksTopK,
    HeatmapPeaksTopKd,
    HeatmapToPointsOtsu,
    HeatmapToPointsOtsud,
    MultiPointHeatmap,
    MultiPointHeatmapd,
    PointList,
    PointListd,
)

POINTS = np.array([[10.0, 20.0], [30.0, 5.0], [48.0, 40.0]])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_multi_point_heatmap_peaks_at_every_point(as_tensor):
    pts = np.concatenate([POINTS, [[np.nan, np.nan]]])
    heat = MultiPointHeatmap(sigma=2.0)(torch.as_tensor(pts) if as_tensor else pts, spatial_shape=(64, 56))
    assert isinstance(heat, torch.Tensor) == as_tensor and tuple(heat.shape) == (1, 64, 56)
    heat = np.asarray(heat)
    for y, x in POINTS.astype(int):
        assert heat[0, y, x] == pytest.approx(1.0)
        assert heat[0, y + 2, x] == pytest.approx(np.exp(-0.5), abs=0.02)  # sigma 2 px
    assert heat.min() >= 0 and np.sort(heat.ravel())[-4] < 1.0  # three peaks of 1, max-combined (not summed)
    assert MultiPointHeatmap(2.0)(np.zeros((0, 2)), spatial_shape=(8, 8)).max() == 0


def test_multi_point_heatmap_without_monai_generate_heatmap(monkeypatch):
    expected = MultiPointHeatmap(sigma=3.0)(POINTS, spatial_shape=(64, 56))
    monkeypatch.setattr(heatmap_module, "GenerateHeatmap", None)  # MONAI 1.5 has none
    closed_form = MultiPointHeatmap(sigma=3.0)(POINTS, spatial_shape=(64, 56))
    np.testing.assert_allclose(closed_form, expected, atol=0.02)


def test_point_list_pads_and_heatmap_takes_the_image_grid():
    image = MetaTensor(torch.zeros(3, 64, 56), meta={"filename_or_obj": "frame_007.png"})
    d = PointListd("points", max_points=5, image_key="image")({"image": image, "points": POINTS.tolist()})
    assert tuple(d["points"].shape) == (1, 5, 2) and torch.isnan(d["points"][0, 3:]).all()
    d = MultiPointHeatmapd("points", image_key="image", heatmap_key="label", sigma=2.0)(d)
    assert isinstance(d["label"], MetaTensor) and tuple(d["label"].shape) == (1, 64, 56)
    assert d["label"].meta["filename_or_obj"] == "frame_007.png"
    assert tuple(PointList(4)([]).shape) == (1, 4, 2)
    with pytest.raises(ValueError, match="more than max_points=2"):
        PointList(2)(POINTS)
    with pytest.raises(ValueError, match=r"frame_007\.png.*outside the image grid"):
        PointListd("points", max_points=5, image_key="image")({"image": image, "points": [[70.0, 3.0]]})
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        PointList(5)([[1.0, 2.0, 3.0]])


def test_otsu_points_cut_touching_blobs_in_two():
    heat = MultiPointHeatmap(sigma=2.0)(np.concatenate([POINTS, [[52.0, 40.0]]]), spatial_shape=(64, 56))
    found = HeatmapToPointsOtsu()(heat)[0]
    assert len(found) == 4
    assert match_points(found, np.concatenate([POINTS, [[52.0, 40.0]]]), radius=1.0) == (4, 0, 0)
    merged = HeatmapToPointsOtsu(split_oversize=False)(heat)[0]
    assert len(merged) == 3 and np.abs(merged - [50.0, 40.0]).sum(axis=1).min() < 0.5  # one blob for both
    logits = torch.logit(torch.as_tensor(heat).clamp(1e-4, 1 - 1e-4))
    d = HeatmapToPointsOtsud("pred", sigmoid=True)({"pred": logits})
    assert isinstance(d["pred_points"], torch.Tensor) and d["pred_points"].shape[1] == 4
    assert HeatmapToPointsOtsu(min_threshold=0.5)(np.random.default_rng(0).random((1, 32, 32)) * 0.3).shape[1] == 0


def test_topk_peaks_floor_and_count_bounds():
    render = MultiPointHeatmap(sigma=2.0, spatial_shape=(64, 56))
    heat = np.maximum(render(POINTS[:2]), 0.3 * render(POINTS[2:]))
    points, scores = HeatmapPeaksTopK()(heat)
    assert points.shape == (1, 3, 2) and np.allclose(scores, [1, 1, 0.3])
    assert {tuple(p) for p in points[0].astype(int).tolist()} == {tuple(p) for p in POINTS.astype(int).tolist()}
    assert HeatmapPeaksTopK(score_threshold=0.5)(heat)[0].shape[1] == 2
    assert HeatmapPeaksTopK(score_threshold=0.5, min_count=3)(heat)[0].shape[1] == 3
    assert HeatmapPeaksTopK(max_count=1)(heat)[0].shape[1] == 1
    d = HeatmapPeaksTopKd("pred", sigmoid=True)({"pred": torch.full((1, 16, 16), -9.0)})
    assert d["pred_points"].shape == (1, 0, 2) and d["pred_scores"].shape == (0,)
    with pytest.raises(ValueError, match="min_count <= max_count"):
        HeatmapPeaksTopK(min_count=5, max_count=2)


def test_point_match_is_one_to_one_and_maximal():
    # the closest pair first (greedy) would leave one hit: the Hungarian matching finds both
    assert match_points([[0, 0], [0, 5.5]], [[0, 2.9], [0, 8.4]], radius=3.0) == (2, 0, 0)
    assert match_points([[0, 0], [0, 0.5]], [[0, 0.2]], radius=3.0) == (1, 1, 0)  # two predictions, one truth
    assert match_points(np.zeros((0, 2)), [[1, 1]], radius=3.0) == (0, 0, 1)
    assert match_points([[0, 0]], [[0, 4]], radius=3.0, spacing=[0.5, 0.5]) == (1, 0, 0)  # 2 mm apart
    metric = PointMatchF1Metric(radius=3.0)
    counts = metric([[[0, 0], [9, 9]], np.full((1, 4, 2), np.nan)], [[[0, 1]], [[5, 5]]])
    assert counts.tolist() == [[1, 1, 0], [0, 0, 1]]
    result = metric.aggregate()
    assert (result["precision"], result["sensitivity"], result["f1"]) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_points_follow_monai_spatial_augmentation(as_tensor, seed):
    """A rendered point and its coordinates go through random flip / rotate / zoom / crop; the coordinates still
    name the pixel where the rendered point ended up."""
    point = np.array([[[21.0, 30.0]]])
    image = np.zeros((1, 64, 48), np.float32)
    image[0, 20:23, 29:32] = 1.0  # a 3x3 dot centred on the point
    augment = Compose([
        EnsureTyped("image"),
        ApplyTransformToPointsd("points", refer_keys="image", invert_affine=False),  # grid -> world
        RandFlipd("image", prob=0.5, spatial_axis=0),
        RandFlipd("image", prob=0.5, spatial_axis=1),
        RandRotated("image", range_x=np.pi / 4, prob=1.0, keep_size=True),
        RandZoomd("image", prob=1.0, min_zoom=0.8, max_zoom=1.25, keep_size=True),
        RandSpatialCropd("image", roi_size=(44, 40), random_size=False),
        ApplyTransformToPointsd("points", refer_keys="image", invert_affine=True),  # world -> new grid
    ])
    augment.set_random_state(seed)
    out = augment({"image": torch.as_tensor(image) if as_tensor else image, "points": point})
    moved = np.asarray(out["points"])[0, 0]
    dot = np.asarray(out["image"])[0]
    assert dot.max() > 0.5, "the dot left the crop: pick another seed"
    centre = np.asarray(ndimage.center_of_mass(np.clip(dot, 0, None)))
    assert np.linalg.norm(moved - centre) < 0.75
