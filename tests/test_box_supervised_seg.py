"""Box-supervised segmentation (Redekop et al. 2021; Kervadec et al. 2020): the log barrier and the box losses, the
barrier temperature handler, per-slice box masks from world-mm boxes, box files, the patch-classifier box correction,
and the bundle on MONAI's bundle runner (corrector -> train -> evaluate -> infer) with bad input named. Tiny settings
test the plumbing; the study's results are in the bundle's docs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from monai_ext.apps.box_supervised_seg import (
    SliceBoxCorrector,
    box_seg_datalist,
    check_box_switches,
    label_box_mm,
    read_box_file,
    synthesize_box_dataset,
    tile_starts,
    write_box_file,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.handlers import BarrierTemperatureHandler
from monai_ext.losses import (
    BoxSizeConstraintLoss,
    BoxSupervisedLoss,
    BoxTightnessPriorLoss,
    LogBarrierExtension,
    OutsideBoxBackgroundCELoss,
)
from monai_ext.metrics import slice_box_iou
from monai_ext.transforms import TightSliceBoxes, WorldBoxToSliceBoxes, WorldBoxToSliceBoxesd, slice_box_extents

from error_chain import error_text

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "box_supervised_seg"


# --- log barrier and box losses -------------------------------------------------------------------------------


def test_log_barrier_extension_is_continuous_and_linear_outside_the_feasible_set():
    psi = LogBarrierExtension(5.0)
    edge = -1.0 / 25.0
    z = torch.tensor([edge - 1e-6, edge + 1e-6])
    a, b = psi(z).tolist()
    assert a == pytest.approx(b, abs=1e-4)                               # continuous at -1/t^2
    z = torch.tensor([-2.0, 0.5, 1.5], requires_grad=True)
    out = psi(z)
    assert out[0].item() == pytest.approx(-math.log(2.0) / 5.0)         # the barrier inside
    out.sum().backward()
    assert z.grad[1].item() == pytest.approx(5.0) and z.grad[2].item() == pytest.approx(5.0)   # slope t outside
    psi.t = 10.0
    assert psi(torch.tensor([1.0])).item() > 10.0 - 1e-6
    with pytest.raises(ValueError, match="t0"):
        LogBarrierExtension(0.0)


def _box(n=2, size=16, rows=(4, 12), cols=(2, 10)):
    box = torch.zeros(n, 1, size, size)
    box[:, :, rows[0]:rows[1], cols[0]:cols[1]] = 1
    return box


def test_background_ce_counts_only_pixels_outside_the_box():
    box = _box()
    logits = torch.full((2, 1, 16, 16), -8.0)
    logits[box > 0] = 8.0                                     # foreground only inside: no background error
    assert OutsideBoxBackgroundCELoss()(logits, box).item() < 1e-3
    logits = torch.zeros(2, 1, 16, 16)
    assert OutsideBoxBackgroundCELoss()(logits, box).item() == pytest.approx(math.log(2.0), rel=1e-5)
    two = torch.cat([torch.zeros_like(logits), logits + 3.0], dim=1)        # softmax of [0, x] = sigmoid(x)
    assert OutsideBoxBackgroundCELoss("softmax")(two, box).item() == pytest.approx(
        OutsideBoxBackgroundCELoss()(logits + 3.0, box).item(), rel=1e-5)


def test_tightness_prior_penalises_box_lines_without_foreground():
    box = _box(1)
    full = torch.full((1, 1, 16, 16), -10.0)
    full[:, :, 4:12, 2:10] = 10.0                              # touches every row and column of the box
    missing = full.clone()
    missing[:, :, 4:8, 2:10] = -10.0                           # the upper half of the box empty
    loss = BoxTightnessPriorLoss(band_width=2)
    assert loss(missing, box).item() > loss(full, box).item() + 1.0
    assert loss(full, torch.zeros_like(box)).item() == 0.0     # no box, no constraint
    l_shape = box.clone()
    l_shape[:, :, 4:6, 2:4] = 0
    with pytest.raises(ValueError, match="one filled axis-aligned box"):
        loss(full, l_shape)
    with pytest.raises(ValueError, match="band_width"):
        BoxTightnessPriorLoss(band_width=0)


def test_size_constraint_holds_the_fraction_of_the_box_between_its_bounds():
    box = _box(1)
    inside = torch.full((1, 1, 16, 16), -10.0)
    inside[:, :, 4:12, 2:8] = 10.0                             # 75 % of the box
    too_small = torch.full((1, 1, 16, 16), -10.0)
    too_small[:, :, 4:6, 2:4] = 10.0                           # 6 %
    loss = BoxSizeConstraintLoss(0.5, 0.9)
    assert loss(too_small, box).item() > loss(inside, box).item() + 1.0
    pixel_counts = BoxSizeConstraintLoss(0.5, 0.9, normalize=False)
    assert pixel_counts(too_small, box).item() > loss(too_small, box).item()    # Kervadec's scale: pixels
    with pytest.raises(ValueError, match="lower < upper"):
        BoxSizeConstraintLoss(0.9, 0.5)


def test_box_supervised_loss_trains_a_logit_map_toward_the_object_in_its_box():
    torch.manual_seed(0)
    box = _box(4)
    logits = torch.zeros(4, 1, 16, 16, requires_grad=True)
    loss = BoxSupervisedLoss(band_width=2, tightness_weight=0.01, size_weight=0.1)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(60):
        opt.zero_grad()
        loss(logits, box).backward()
        opt.step()
    p = torch.sigmoid(logits.detach())
    assert p[box == 0].max() < 0.1                             # background outside
    frac = p[box > 0].mean().item()
    assert 0.45 < frac < 0.95                                  # inside: within the size bounds
    assert set(loss.last_terms) == {"background_ce", "tightness", "size"}
    with pytest.raises(ValueError, match="box must be"):
        loss(logits, box[:, :, :8])
    with pytest.raises(ValueError, match="activation"):
        loss(torch.zeros(4, 2, 16, 16), box)


def test_barrier_temperature_grows_every_epoch_up_to_its_cap():
    psi = LogBarrierExtension(5.0)
    engine = Engine(lambda e, b: None)
    BarrierTemperatureHandler(psi, factor=1.1, max_t=6.0).attach(engine)
    engine.run([0], max_epochs=1)
    assert psi.t == pytest.approx(5.5) and engine.state.barrier_t == pytest.approx(5.5)
    engine.run([0], max_epochs=3)
    assert psi.t == pytest.approx(6.0)
    with pytest.raises(ValueError, match="factor"):
        BarrierTemperatureHandler(psi, factor=0.9)


# --- slice boxes and box files --------------------------------------------------------------------------------


def _label_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros((20, 18, 12), np.uint8)
    label[5:12, 4:9, 3:9] = 1
    label[6:8, 9:14, 4:6] = 2                                   # non-convex: an arm on two slices
    affine = np.array([[-2.0, 0, 0, 40], [0, -1.5, 0, 10], [0, 0, 3.0, -50], [0, 0, 0, 1]])   # LPS-like axes
    nib.save(nib.Nifti1Image(label, affine), str(path))
    return label, affine


def test_world_box_of_a_label_cuts_into_its_voxel_box_and_tight_boxes_are_tighter(tmp_path):
    label, affine = _label_file(tmp_path / "lab.nii.gz")
    box_mm = label_box_mm(tmp_path / "lab.nii.gz")
    img = MetaTensor(torch.zeros(1, *label.shape), affine=torch.as_tensor(affine))
    mask = WorldBoxToSliceBoxes()(img, box_mm)
    assert mask.meta["voxel_box"] == [[5, 12], [4, 14], [3, 9]]
    assert mask.dtype == torch.uint8 and int(mask.sum()) == 7 * 10 * 6
    tight = TightSliceBoxes()(torch.as_tensor(label[None]))
    extents = slice_box_extents(tight)
    assert extents[3] == (5, 12, 4, 9) and extents[4] == (5, 12, 4, 14) and extents[0] is None
    iou = slice_box_iou(mask, tight)
    assert np.isnan(iou[0]) and iou[4] == pytest.approx(1.0) and iou[3] == pytest.approx(35 / 70)
    assert np.nanmean(slice_box_iou(tight, tight)) == 1.0
    d = WorldBoxToSliceBoxesd("box", name_key="case")({"image": img, "box": box_mm, "case": "liver_7"})
    assert torch.equal(d["box_mask"], mask)


def test_bad_boxes_are_errors_that_name_the_case_and_the_extent():
    img = MetaTensor(torch.zeros(1, 10, 10, 10))
    with pytest.raises(ValueError, match="liver_3.*outside the image"):
        WorldBoxToSliceBoxes()(img, [2, 2, 2, 30, 5, 5], name="liver_3")
    with pytest.raises(ValueError, match="zero or negative extent"):
        WorldBoxToSliceBoxes()(img, [2, 2, 5, 6, 6, 5])
    with pytest.raises(ValueError, match="6 finite numbers"):
        WorldBoxToSliceBoxes()(img, [2, 2, 2, 6])
    with pytest.raises(ValueError, match="no voxel centre"):
        WorldBoxToSliceBoxes()(img, [2.1, 2.1, 2.1, 2.4, 6, 6])
    with pytest.raises(ValueError, match="channel-first"):
        WorldBoxToSliceBoxes()(torch.zeros(10, 10, 10), [2, 2, 2, 6, 6, 6])


def test_box_files_round_trip_and_bad_files_are_named(tmp_path):
    boxes = {"liver_0": [1.0, 2.0, 3.0, 4.0, 5.0, 6.5], "liver_1": [-10.0, -20.0, -30.0, 0.0, 0.0, 0.0]}
    assert read_box_file(write_box_file(tmp_path / "b.csv", boxes)) == boxes
    (tmp_path / "b.json").write_text(json.dumps([{"case": k, "box": v} for k, v in boxes.items()]))
    assert read_box_file(tmp_path / "b.json") == boxes
    (tmp_path / "dup.json").write_text(json.dumps([{"case": "a", "box": [0, 0, 0, 1, 1, 1]}] * 2))
    with pytest.raises(ValueError, match="listed twice"):
        read_box_file(tmp_path / "dup.json")
    (tmp_path / "cols.csv").write_text("case,x_min,y_min\na,1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        read_box_file(tmp_path / "cols.csv")
    (tmp_path / "flat.csv").write_text("case,x_min,y_min,z_min,x_max,y_max,z_max\na,1,2,3,1,5,6\n")
    with pytest.raises(ValueError, match="'a'.*zero or negative"):
        read_box_file(tmp_path / "flat.csv")
    with pytest.raises(FileNotFoundError, match="box file"):
        read_box_file(tmp_path / "none.csv")


# --- box correction -------------------------------------------------------------------------------------------


class _MeanIntensityNet(torch.nn.Module):
    """A stand-in classifier: foreground when the centre tile (inside `context` px) is mostly bright."""

    def __init__(self, context: int = 0):
        super().__init__()
        self.context = context

    def forward(self, x):
        c = self.context
        tile = x[:, :, c: x.shape[2] - c, c: x.shape[3] - c]
        return (tile.mean(dim=(1, 2, 3)) - 0.5)[:, None] * 20.0


def test_tiles_cover_the_box_with_half_overlap():
    assert tile_starts(2, 12, 4, 20) == [2, 4, 6, 8]
    assert tile_starts(2, 13, 4, 20) == [2, 4, 6, 8, 9]         # a last tile flush with the far edge
    assert tile_starts(18, 20, 4, 20) == [16]                   # narrower than a tile: moved inside
    with pytest.raises(ValueError, match="smaller than a patch"):
        tile_starts(0, 2, 4, 3)


@pytest.mark.parametrize("context", [0, 2])
def test_corrector_tightens_a_loose_box_to_the_object_and_ignores_a_small_false_cluster(context):
    image = np.zeros((1, 32, 32, 3), np.float32)
    image[0, 10:20, 8:24, 1] = 1.0                               # the object on slice 1 (10 x 16 px)
    image[0, 0:4, 28:32, 1] = 1.0                                # a one-tile bright spot in the loose box
    box = np.zeros_like(image, dtype=np.uint8)
    box[0, 0:30, 2:32, 1] = 1                                    # loose box on slice 1
    box[0, 0:30, 2:32, 2] = 1                                    # slice 2: a box but no object
    paper = SliceBoxCorrector(_MeanIntensityNet(context), 4, context=context)
    corrected, dropped = paper(image, box)
    ext = slice_box_extents(corrected)
    assert ext[0] is None and dropped == [2]                     # nothing positive on slice 2: no box there
    assert ext[1] == (0, 20, 8, 32)                              # the paper's rule: the spot widens the box
    safe = SliceBoxCorrector(_MeanIntensityNet(context), 4, cluster_fraction=0.5, context=context)
    ext_safe = slice_box_extents(safe(image, box)[0])
    assert ext_safe[1] == (10, 20, 8, 24)                        # the spot's cluster is dropped: tight
    with pytest.raises(ValueError, match="cluster_fraction"):
        SliceBoxCorrector(_MeanIntensityNet(), 4, cluster_fraction=2.0)


# --- the bundle -----------------------------------------------------------------------------------------------

TINY = {"pixdim": [8.0, 8.0, 10.0], "slice_size": [48, 48], "num_val": 1, "num_test": 1, "num_labelled": 2,
        "channels": [4, 8, 8, 8], "batch_size": 16, "max_epochs": 1, "val_interval": 1, "patch_size": 4,
        "corrector_context": 2, "corrector_epochs": 1, "max_patches": 2000, "device": "$torch.device('cpu')"}


@pytest.fixture(scope="module")
def liver(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("box_seg")
    synthesize_box_dataset(tmp / "data", cases=6, shape=(48, 48, 26), spacing=(8.0, 8.0, 10.0))
    return tmp


def test_datalist_splits_cases_marks_the_labelled_ones_and_checks_the_box_file(liver, tmp_path):
    d = box_seg_datalist(liver / "data", num_val=1, num_test=1, num_labelled=2)
    assert len(d["training"]) == 4 and [c["labelled"] for c in d["training"]] == [True, True, False, False]
    assert all(len(c["box_mm"]) == 6 for c in d["training"]) and d["box_file"].endswith("boxes_3d.csv")
    boxes = read_box_file(d["box_file"])
    write_box_file(tmp_path / "extra.csv", {**boxes, "liver_999": [0, 0, 0, 1, 1, 1]})
    with pytest.raises(ValueError, match="liver_999"):
        box_seg_datalist(liver / "data", box_file=tmp_path / "extra.csv", num_val=1, num_test=1, num_labelled=2)
    first = d["training"][0]["case"]
    write_box_file(tmp_path / "short.csv", {k: v for k, v in boxes.items() if k != first})
    with pytest.raises(ValueError, match=f"no box for training case.*{first}"):
        box_seg_datalist(liver / "data", box_file=tmp_path / "short.csv", num_val=1, num_test=1, num_labelled=2)


def test_bundle_corrects_boxes_trains_evaluates_and_infers_on_the_input_grid(liver):
    root = liver / "bundle"
    common = {"bundle_root": str(root), "dataset_dir": str(liver / "data"), **TINY}
    run_bundle(BUNDLE, ["train.yaml", "train_box_corrector.yaml"], **common)
    assert (root / "models" / "box_corrector.pt").is_file()
    run_bundle(BUNDLE, ["train.yaml"], **common)
    assert (root / "models" / "model.pt").is_file() and any((root / "logs").glob("events.out.tfevents.*"))
    quality = json.loads((root / "eval" / "box_quality.json").read_text())
    assert quality["box_source"] == "corrected" and 0.0 <= quality["mean_iou"] <= 1.0 and len(quality["cases"]) == 2
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **common)
    rows = dict(csv.reader(open(root / "eval" / "metrics.csv")))
    assert 0.0 <= float(rows["test_mean_dice"]) <= 1.0
    image = sorted((liver / "data" / "imagesTr").glob("*.nii.gz"))[0]
    out = liver / "inferred"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(image), output_dir=str(out),
               pixdim=TINY["pixdim"], channels=TINY["channels"], device=TINY["device"])
    seg, src = nib.load(next(out.glob("*_seg.nii.gz"))), nib.load(image)
    assert seg.shape == src.shape and np.allclose(seg.affine, src.affine, atol=1e-4)
    assert set(np.unique(seg.get_fdata())) <= {0.0, 1.0}


def test_bundle_keeps_the_best_validation_model_when_asked(liver, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(liver / "data"), **TINY}
    run_bundle(BUNDLE, ["train.yaml"], box_source="tight", keep_model="best_val", **{**common, "max_epochs": 2})
    assert (tmp_path / "models" / "model.pt").is_file() and (tmp_path / "models" / "model_final.pt").is_file()
    history = (tmp_path / "eval" / "metric_history.csv").read_text().splitlines()
    assert len(history) == 3                                   # header + 2 validation rounds
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml"], box_source="tight", keep_model="best", **common)
    assert "keep_model must be final or best_val" in error_text(e)
    with pytest.raises(ValueError, match="no validation would run"):
        check_box_switches("tight", 1, 4, "best_val", max_epochs=2, val_interval=5)
    check_box_switches("tight", 1, 4, "final", max_epochs=2, val_interval=5)   # the last model is written anyway


def test_bundle_names_a_box_outside_the_image_a_bad_switch_and_missing_corrector_weights(liver, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(liver / "data"), **TINY}
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml"], box_source="ellipse", **common)
    assert "box_source must be one of" in error_text(e)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml"], **common)
    assert "run configs/train_box_corrector.yaml first" in error_text(e)
    boxes = read_box_file(liver / "data" / "boxes_3d.csv")
    case = box_seg_datalist(liver / "data", num_val=1, num_test=1, num_labelled=2)["training"][3]["case"]
    boxes[case] = [b + 1000.0 for b in boxes[case]]
    write_box_file(tmp_path / "moved.csv", boxes)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml"], box_source="box3d", box_file=str(tmp_path / "moved.csv"), **common)
    assert case in error_text(e) and "outside the image" in error_text(e)
    assert not (tmp_path / "models" / "model.pt").exists()
