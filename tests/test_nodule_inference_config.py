"""The CT-SGAN bundle's `inference_nodules.yaml`: insert, random insert and erase on a NIfTI chest CT."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import EnsureChannelFirst, LoadImage

from monai_ext.bundle_helpers import run_bundle
from monai_ext.phantoms import generate_chest_ct
from monai_ext.transforms import NoduleInsert

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "ctsgan_chest_ct_synthesis"
CONFIG = "inference_nodules.yaml"


@pytest.fixture(scope="module")
def chest_ct(tmp_path_factory) -> tuple[Path, np.ndarray]:
    case = generate_chest_ct(shape=(72, 64, 48), spacing=(4.0, 4.0, 4.0), seed=3, lesions=False)
    path = tmp_path_factory.mktemp("ct") / "chest.nii.gz"
    nib.save(nib.Nifti1Image(np.round(case.image).astype(np.int16), case.affine), str(path))
    return path, case.label


def _outputs(out: Path, stem: str) -> tuple[np.ndarray, np.ndarray, list]:
    image = np.asarray(nib.load(str(out / f"{stem}_nodules.nii.gz")).dataobj)
    mask = np.asarray(nib.load(str(out / f"{stem}_nodule_mask.nii.gz")).dataobj)
    records = json.loads((out / f"{stem}_nodules.json").read_text())
    return image, mask, records


def test_random_insert_then_replay_then_erase(chest_ct, tmp_path):
    path, lung_label = chest_ct
    original = np.asarray(nib.load(str(path)).dataobj)

    out1 = tmp_path / "random"
    run_bundle(BUNDLE, CONFIG, image=str(path), output_dir=str(out1), mode="random_insert",
               diameter_range=[12.0, 14.0], seed=1)
    image1, mask1, records = _outputs(out1, "chest")
    assert len(records) == 1 and 12.0 <= records[0]["diameter_mm"] <= 14.0
    assert mask1.sum() == records[0]["voxels"] > 0
    assert np.all(lung_label[mask1 > 0] > 0), "the nodule must lie inside the lungs"
    assert np.array_equal(image1 != original, (image1 != original) & _dilated(mask1 > 0, 1))

    # the JSON record replays the same nodule through NoduleInsert
    r = records[0]
    img = EnsureChannelFirst()(LoadImage(image_only=True)(str(path)))
    replayed = np.asarray(NoduleInsert.from_record(r)(img))[0]
    assert np.abs(np.rint(replayed) - image1).max() <= 1

    # insert at a given centre: a solid 10 mm nodule
    out2 = tmp_path / "insert"
    run_bundle(BUNDLE, CONFIG, image=str(path), output_dir=str(out2), mode="insert", centre_mm=r["centre_mm"],
               diameter_mm=10.0, nodule_type="solid", seed=0)
    image2, mask2, records2 = _outputs(out2, "chest")
    assert records2[0]["nodule_type"] == "solid" and records2[0]["diameter_mm"] == 10.0
    assert np.allclose(records2[0]["centre_mm"], r["centre_mm"])
    assert -50.0 <= float(np.median(image2[mask2 > 0])) <= 100.0
    r = records2[0]
    mask1 = mask2

    # erase it again, using the mask written above
    out3 = tmp_path / "erase"
    run_bundle(BUNDLE, CONFIG, image=str(out2 / "chest_nodules.nii.gz"), mask=str(out2 / "chest_nodule_mask.nii.gz"),
               output_dir=str(out3), mode="erase", centre_mm=r["centre_mm"], diameter_mm=r["diameter_mm"])
    image3, _, erased = _outputs(out3, "chest_nodules")
    assert len(erased) == 1 and erased[0]["source"] == "nodule_mask"
    region = mask1 > 0
    assert abs(float(image3[region].mean()) - float(original[region].mean())) < 150.0
    assert float(image2[region].mean()) - float(image3[region].mean()) > 200.0


def _dilated(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=iterations)


def test_bad_mode_and_missing_image(chest_ct, tmp_path):
    path, _ = chest_ct
    with pytest.raises(Exception, match="expected insert, random_insert or erase"):
        run_bundle(BUNDLE, CONFIG, image=str(path), output_dir=str(tmp_path), mode="paint")
    with pytest.raises(Exception, match="no input"):
        run_bundle(BUNDLE, CONFIG, output_dir=str(tmp_path / "none"))


def test_nodule_mask_like_checks_the_grid():
    import torch
    from monai.data import MetaTensor

    from monai_ext.transforms import nodule_mask_like

    image = MetaTensor(torch.zeros(1, 8, 8, 4), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    empty = nodule_mask_like(image)
    assert empty.dtype == torch.uint8 and empty.sum() == 0 and torch.equal(empty.affine, image.affine)
    given = torch.zeros(1, 8, 8, 4)
    given[0, 2, 2, 2] = 5.0
    assert int(nodule_mask_like(image, given).sum()) == 1
    with pytest.raises(ValueError, match="nodule mask on the image's voxel grid"):
        nodule_mask_like(image, torch.zeros(1, 8, 8, 5), "m.nii.gz")
