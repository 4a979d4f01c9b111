"""The label-noise study (Vorontsov & Kadoury 2021): slice data set, mask permutation / discarding, pooled Dice, the
dual-decoder U-Net, the Seg / AE / MT iteration with the mean-teacher EMA handler, and the bundle on MONAI's bundle
runner (train -> evaluate -> infer) with bad input named. Tiny settings test the plumbing; the sweep's results are in
the bundle's docs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.losses import DiceLoss
from monai.metrics import DiceMetric
from monai.transforms import Compose

from monai_ext.apps.label_noise_bias_study import (
    DualDecoderUNet,
    SemiSupervisedIteration,
    augmentation_transforms,
    check_study_switches,
    corrupt_training_list,
    corruption_transforms,
    relative_dice_report,
    tumour_slice_datalist,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.handlers import MeanTeacherEMA, ema_teacher
from monai_ext.metrics import PooledDiceMetric
from monai_ext.phantoms import synthesize_brain_tumor_dataset

from error_chain import error_text

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "label_noise_bias_study"
SLICES = {"num_val": 1, "num_test": 1, "synth_cases": 4}
TINY = {**SLICES, "channels": [4, 8], "batch_size": 8, "max_epochs": 1, "device": "$torch.device('cpu')"}


# --- pooled Dice ---------------------------------------------------------------------------------------------


def test_pooled_dice_stacks_all_pixels_and_counts_false_positives_on_empty_references():
    pred = torch.zeros(2, 1, 4, 4)
    ref = torch.zeros(2, 1, 4, 4)
    ref[0, 0, :2, :2] = 1                      # 4 reference pixels on image 0, found exactly
    pred[0, 0, :2, :2] = 1
    pred[1, 0, 0, 0] = 1                       # image 1 is empty: one false positive
    m = PooledDiceMetric()
    m(pred, ref)
    assert m.aggregate().item() == pytest.approx(2 * 4 / (5 + 4))
    per_image = DiceMetric(include_background=True, ignore_empty=True)(pred, ref)
    assert per_image[0].item() == 1.0          # the per-image mean would hide the false positive
    m.reset()
    m(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3))
    assert m.aggregate().item() == 1.0         # nothing to find, nothing found
    with pytest.raises(ValueError, match="same shape"):
        m(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="reduction"):
        PooledDiceMetric(reduction="sum")


# --- permutation / discarding --------------------------------------------------------------------------------


def _items(n=20):
    return [{"image": f"img{i}", "label": f"lab{i}", "case": f"c{i // 4}"} for i in range(n)]


def test_permute_gives_a_fraction_of_images_another_images_mask_reproducibly():
    items = _items()
    out = corrupt_training_list(items, "permute", 0.5, seed=3)
    moved = [o for o in out if o["label"] != o["image"].replace("img", "lab")]
    assert len(moved) == 10 and all(o["label_source"] != o["image"] for o in moved)
    assert sorted(o["label"] for o in out) == sorted(i["label"] for i in items)   # masks permuted, none lost
    assert out == corrupt_training_list(items, "permute", 0.5, seed=3)
    assert out != corrupt_training_list(items, "permute", 0.5, seed=4)
    assert items == _items()                                                     # input untouched
    assert all(o["label_source"] == o["image"] for o in corrupt_training_list(items, "warp", 2.0))


def test_discard_marks_images_unlabelled_or_drops_them():
    out = corrupt_training_list(_items(), "discard", 0.25, seed=0)
    assert sum(not o["labelled"] for o in out) == 5 and len(out) == 20
    assert len(corrupt_training_list(_items(), "discard", 0.25, seed=0, keep_unlabelled=False)) == 15


@pytest.mark.parametrize("noise,level,key", [("blur", 1, "noise"), ("permute", 1.5, "fraction"), ("warp", -1, "level"),
                                             ("shift", 2.5, "whole number")])
def test_bad_switches_are_named(noise, level, key):
    with pytest.raises(ValueError, match=key):
        check_study_switches(noise, level, "seg")
    with pytest.raises(ValueError, match="model"):
        check_study_switches("clean", 0, "genseg")
    with pytest.raises(ValueError, match="augmentation must be one of"):
        augmentation_transforms("elastic", [])
    assert augmentation_transforms("none", ["t"]) == [] and augmentation_transforms("intensity", ["t"]) == ["t"]


def test_corruption_transforms_by_name_touch_only_the_label():
    mask = MetaTensor(torch.zeros(1, 32, 32))
    mask[0, 10:20, 10:20] = 1
    image = torch.randn(4, 32, 32)
    shifted = Compose(corruption_transforms("shift", 3))({"image": image, "label": mask})
    assert torch.equal(shifted["image"], image)
    assert torch.nonzero(shifted["label"][0])[:, 0].float().mean().item() == pytest.approx(17.5)
    assert json.loads(shifted["label_corruption"])["label"]["mask_shift"][0]["shift"] == [3, 0]
    assert "mask_shift" not in shifted["label"].meta                  # moved out: batches of records collate
    assert [type(t).__name__ for t in corruption_transforms("permute", 0.5)] == ["LabelCorruptionRecordd"]


# --- network, iteration, mean teacher ------------------------------------------------------------------------


def test_dual_decoder_unet_shapes_and_errors():
    net = DualDecoderUNet(2, 4, 1, channels=(4, 8, 16), reconstruction=True)
    seg, rec = net(torch.randn(2, 4, 16, 16), return_reconstruction=True)
    assert seg.shape == (2, 1, 16, 16) and rec.shape == (2, 4, 16, 16)
    plain = DualDecoderUNet(2, 4, 1, channels=(4, 8, 16))
    with pytest.raises(ValueError, match="reconstruction=False"):
        plain(torch.randn(1, 4, 16, 16), return_reconstruction=True)
    with pytest.raises(ValueError, match=r"\(B, 4"):
        plain(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        plain(torch.randn(1, 4, 18, 16))
    assert set(plain.state_dict()) < set(net.state_dict())


def _trainer(net, iteration, batches, handlers=()):
    return SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=batches, network=net,
                             optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=iteration.loss_function,
                             iteration_update=iteration, train_handlers=list(handlers))


def _batch(labelled):
    torch.manual_seed(0)
    label = (torch.rand(len(labelled), 1, 16, 16) > 0.5).float()
    return {"image": torch.randn(len(labelled), 4, 16, 16), "label": label, "labelled": torch.tensor(labelled)}


def test_unlabelled_images_do_not_train_the_segmentation():
    net = DualDecoderUNet(2, 4, 1, channels=(4, 8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    it = SemiSupervisedIteration(DiceLoss(sigmoid=True, batch=True))
    trainer = _trainer(net, it, [_batch([False, False])])
    trainer.run()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # Seg: nothing to learn from
    trainer = _trainer(net, it, [_batch([True, False])])
    trainer.run()
    assert not all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert float(trainer.state.output[0]["loss"]) > 0          # decollated like MONAI's own trainer output


def test_ae_and_mean_teacher_terms_train_on_unlabelled_images():
    net = DualDecoderUNet(2, 4, 1, channels=(4, 8), reconstruction=True)
    it = SemiSupervisedIteration(DiceLoss(sigmoid=True, batch=True), reconstruction_weight=1.0)
    trainer = _trainer(net, it, [_batch([False, False])])
    trainer.run()
    assert float(trainer.state.output[0]["loss_reconstruction"]) > 0 and float(trainer.state.output[0]["loss_dice"]) == 0

    student = DualDecoderUNet(2, 4, 1, channels=(4, 8))
    teacher = ema_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    it = SemiSupervisedIteration(DiceLoss(sigmoid=True, batch=True), teacher=teacher, consistency_weight=1.0,
                                 input_noise_std=0.5)
    t0 = [p.clone() for p in teacher.parameters()]
    trainer = _trainer(student, it, [_batch([False, False])] * 3, [MeanTeacherEMA(teacher, decay=0.9)])
    trainer.run()
    assert float(trainer.state.output[0]["loss_consistency"]) > 0
    # the teacher moved towards the student, and is not the student
    moved = [not torch.equal(a, b) for a, b in zip(t0, teacher.parameters())]
    assert any(moved)
    assert not all(torch.equal(a, b) for a, b in zip(teacher.parameters(), student.parameters()))
    with pytest.raises(ValueError, match="decay"):
        MeanTeacherEMA(teacher, decay=1.0)
    wrong = DualDecoderUNet(2, 4, 1, channels=(4, 8, 16))
    with pytest.raises(Exception, match="different parameters"):
        _trainer(student, it, [_batch([True])], [MeanTeacherEMA(wrong)]).run()


# --- slices ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brats(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("label_noise")
    synthesize_brain_tumor_dataset(tmp / "brats", cases=4, seed=2, progress=False)
    return tmp


def test_slices_split_by_patient_with_tumour_and_healthy_slices_at_their_world_position(brats):
    d = tumour_slice_datalist(brats / "brats", brats / "slices", **SLICES)
    cases = {s: {i["case"] for i in d[s]} for s in ("training", "validation", "testing")}
    assert len(cases["training"]) == 2 and not (cases["training"] & cases["testing"])
    for split in ("training", "testing"):
        diseased = sum(i["diseased"] for i in d[split])
        assert diseased > 0 and len(d[split]) - diseased > 0
    item = next(i for i in d["training"] if i["diseased"])
    img, lab = nib.load(item["image"]), nib.load(item["label"])
    assert img.shape == (64, 64, 1, 4) and lab.shape == (64, 64, 1)
    assert set(np.unique(lab.get_fdata())) == {0.0, 1.0} and lab.get_fdata().sum() >= 10
    # the slice's centre voxel maps into the source volume's field of view, at the slice's z
    src = nib.load(next((brats / "brats" / item["case"]).glob("*_seg.nii.gz")))
    z_world = (img.affine @ [0, 0, 0, 1])[2]
    z_src = (np.linalg.inv(src.affine) @ [0, 0, z_world, 1])[2]
    assert 0 <= z_src <= src.shape[2] - 1 and abs(z_src - item["slice"] * 1.0) < src.shape[2]
    # reused with the same settings, refused with others
    assert tumour_slice_datalist(brats / "brats", brats / "slices", **SLICES)["training"] == d["training"]
    with pytest.raises(ValueError, match="other settings"):
        tumour_slice_datalist(brats / "brats", brats / "slices", **{**SLICES, "min_tumour_pixels": 20})
    (brats / "busy").mkdir()
    (brats / "busy" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        tumour_slice_datalist(brats / "brats", brats / "busy", **SLICES)


# --- the bundle -----------------------------------------------------------------------------------------------


def test_bundle_trains_evaluates_and_infers_on_the_input_grid(brats):
    root = brats / "bundle_mt"
    common = {"bundle_root": str(root), "dataset_dir": str(brats / "brats"), "slice_dir": str(brats / "slices"), **TINY}
    run_bundle(BUNDLE, ["train.yaml"], model="mt", noise="crop_left", augmentation="intensity", **common)
    assert (root / "models" / "model.pt").is_file() and any((root / "logs").glob("events.out.tfevents.*"))
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], model="mt", noise="crop_left", **common)
    rows = dict(csv.reader(open(root / "eval" / "metrics.csv")))
    assert 0.0 <= float(rows["test_pooled_dice"]) <= 1.0
    case = brats / "brats" / "SynthBraTS_000"
    out = brats / "inferred"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(case), output_dir=str(out),
               channels=TINY["channels"], device=TINY["device"])
    seg = nib.load(next(out.glob("*_seg.nii.gz")))
    flair = nib.load(next(case.glob("*_flair.nii.gz")))
    assert seg.shape == flair.shape and np.allclose(seg.affine, flair.affine, atol=1e-4)
    assert set(np.unique(seg.get_fdata())) <= {0.0, 1.0}


def test_bundle_names_a_bad_switch_and_a_label_out_of_range(brats, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(brats / "brats"), "slice_dir": str(tmp_path / "s"), **TINY}
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml"], noise="flip", **common)
    assert "noise must be one of" in error_text(e)
    assert not (tmp_path / "models" / "model.pt").exists()
    bad = tmp_path / "bad"
    import shutil
    shutil.copytree(brats / "brats", bad)
    seg_file = next((bad / "SynthBraTS_001").glob("*_seg.nii.gz"))
    img = nib.load(seg_file)
    arr = np.asarray(img.dataobj).copy()
    arr[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(arr, img.affine), seg_file)
    with pytest.raises(Exception) as e:
        tumour_slice_datalist(bad, tmp_path / "s2", **SLICES)
    assert "7" in error_text(e) and "SynthBraTS_001" in error_text(e)
    assert not (tmp_path / "s2").exists() or not any((tmp_path / "s2").iterdir())


def test_relative_dice_report_divides_by_the_same_seeds_clean_dice(tmp_path):
    for arm, vals in {"seg_clean": [0.8, 0.6], "seg_shift3": [0.4, 0.3], "ae_clean": [0.5, 0.5]}.items():
        for s, v in enumerate(vals):
            run = tmp_path / f"{arm}_seed{s}"
            run.mkdir()
            (run / "metrics.csv").write_text(f"test_pooled_dice,{v}\n")
    rep = relative_dice_report(str(tmp_path), {"seg_clean": ["seg", "clean", 0], "seg_shift3": ["seg", "shift", 3],
                                               "ae_clean": ["ae", "clean", 0], "ae_shift3": ["ae", "shift", 3]},
                               [0, 1], str(tmp_path / "rel.png"))
    assert rep["arms"]["seg_shift3"]["relative"] == pytest.approx([0.5, 0.5])
    assert "ae_shift3" not in rep["arms"] and (tmp_path / "rel.png").is_file()
    assert json.loads((tmp_path / "rel.json").read_text())["arms"]["ae_clean"]["relative_mean"] == 1.0
