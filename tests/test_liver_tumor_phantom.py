"""The liver-tumour CT phantom: labels (tumour inside the liver, the whole liver in view), HU per tissue and contrast
phase, tumour sizes in mm, reproducibility, and the data set writer (MSD Task03 and LiTS names, atomic)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from monai_ext.datalists import lits_datalist
from monai_ext.phantoms import (
    LIVER_TUMOR_LABELS,
    generate_liver_tumor_ct,
    synthesize_liver_tumor_dataset,
)

SMALL = {"shape": (48, 48, 32), "spacing": (8.0, 8.0, 8.0)}  # the default 384 x 384 x 256 mm view, coarse


@pytest.fixture(scope="module")
def cases():
    """Three default-grid cases with tumours, noise-free (HU per tissue) and with noise (the same seeds)."""
    return {s: (generate_liver_tumor_ct(s, tumours=4, noise=False), generate_liver_tumor_ct(s, tumours=4))
            for s in (0, 1, 2)}


def test_labels_are_liver_and_tumour_inside_it_and_the_whole_liver_is_in_view(cases):
    for clean, noisy in cases.values():
        lab = clean.label
        assert lab.dtype == np.uint8 and set(np.unique(lab).tolist()) == {0, 1, 2}
        np.testing.assert_array_equal(lab, noisy.label)  # noise does not touch the labels
        comps, n = ndi.label(lab > 0)
        sizes = np.bincount(comps.ravel())[1:]
        assert sizes.max() > 0.9 * sizes.sum()  # one liver (small separate pieces at most)
        # every tumour voxel lies in a component that is mostly liver: tumours sit inside the liver
        for c in np.unique(comps[lab == 2]):
            part = lab[comps == c]
            assert (part == 1).sum() > (part == 2).sum()
        # dome to tip in view: no liver on the first or last slice
        assert not (lab[..., 0] > 0).any() and not (lab[..., -1] > 0).any()
        assert 800.0 < clean.info["liver_volume_ml"] < 2600.0
        assert clean.info["liver_extent_mm"]["top_z"] > clean.info["liver_extent_mm"]["bottom_z"]


def test_hu_per_tissue_in_the_portal_venous_phase(cases):
    for clean, _ in cases.values():
        img, lab, info = clean.image, clean.label, clean.info
        assert info["contrast"] == "portal_venous" and img.dtype == np.float32
        inner = ndi.binary_erosion(lab == 1, iterations=2)
        liver = float(np.median(img[inner]))
        assert 95.0 <= liver <= 145.0 and abs(liver - info["liver_hu"]) < 10.0
        assert 130.0 <= info["vessel_hu"]["portal"] <= 210.0 and 120.0 <= info["vessel_hu"]["hepatic"] <= 200.0
        assert np.percentile(img[lab == 1], 99.9) > liver + 25.0  # enhanced vessels inside the liver
        assert img.min() >= -1024.0 and np.percentile(img, 1) < -900.0  # air around the body
        for t in info["tumours"]:
            assert 5.0 <= t["diameter_mm"] <= 60.0 and t["kind"] in ("hypodense", "rim")
            if t["kind"] == "hypodense":
                assert 20.0 <= info["liver_hu"] - t["hu"] <= 40.0
            else:
                assert 30.0 <= info["liver_hu"] - t["hu"] <= 50.0 and 10.0 <= t["rim_hu"] - info["liver_hu"] <= 40.0
                assert 2.0 <= t["rim_mm"] <= 5.0
        tumour = img[ndi.binary_erosion(lab == 2)] if ndi.binary_erosion(lab == 2).any() else img[lab == 2]
        assert np.median(tumour) < liver - 5.0  # darker than the liver overall (cores are hypodense)


def test_tumour_sizes_in_mm_match_their_voxels(cases):
    vox_mm3 = float(np.prod(cases[0][0].spacing))
    checked = 0
    for clean, _ in cases.values():
        assert len(clean.info["tumours"]) == 4
        for t in clean.info["tumours"]:
            if t["diameter_mm"] < 12.0:
                continue
            d_eq = (6.0 * t["voxels"] * vox_mm3 / np.pi) ** (1.0 / 3.0)
            assert 0.6 * t["diameter_mm"] <= d_eq <= 1.25 * t["diameter_mm"], t  # part may lie outside the liver
            checked += 1
        assert clean.info["tumour_volume_ml"] == pytest.approx((clean.label == 2).sum() * vox_mm3 / 1000.0)
    assert checked >= 3


def test_noise_level_and_contrast_phases():
    clean = generate_liver_tumor_ct(5, tumours=0, noise=False)
    noisy = generate_liver_tumor_ct(5, tumours=0)
    assert 2 not in noisy.label
    diff = (noisy.image - clean.image)[clean.label == 1]
    assert 0.6 * noisy.info["noise_std"] < diff.std() < 1.5 * noisy.info["noise_std"]
    assert 8.0 <= noisy.info["noise_std"] <= 22.0
    plain = generate_liver_tumor_ct(5, tumours=0, contrast="none", noise=False)
    arterial = generate_liver_tumor_ct(5, tumours=0, contrast="arterial", noise=False)
    assert 50.0 <= plain.info["liver_hu"] <= 70.0 and plain.info["vessel_hu"] == {"portal": None, "hepatic": None}
    assert plain.info["liver_hu"] < arterial.info["liver_hu"] < clean.info["liver_hu"]
    np.testing.assert_array_equal(plain.label, clean.label)  # the phase changes HU, not the anatomy


def test_reproducible_per_seed_and_different_between_seeds():
    a = generate_liver_tumor_ct(11, **SMALL)
    b = generate_liver_tumor_ct(11, **SMALL)
    c = generate_liver_tumor_ct(12, **SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.info == b.info
    assert not np.array_equal(a.image, c.image)
    np.testing.assert_allclose(np.abs(np.diag(a.affine))[:3], SMALL["spacing"])


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, "seed"),
    ({"shape": (48, 48)}, "shape"),
    ({"spacing": (8.0, 8.0, 0.0)}, "spacing"),
    ({"tumours": 7}, "tumours"),
    ({"contrast": "delayed"}, "contrast"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_liver_tumor_ct(**{**SMALL, **kwargs})


def test_msd_writer_and_its_dataset_json(tmp_path):
    out = tmp_path / "msd"
    ds = synthesize_liver_tumor_dataset(out, cases=3, seed=1, contrast="mixed", progress=False, **SMALL)
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "imagesTr", "labelsTr"]
    assert json.loads((out / "dataset.json").read_text()) == ds
    assert ds["labels"] == {str(k): v for k, v in LIVER_TUMOR_LABELS.items()} and ds["numTraining"] == 3
    records = ds["phantom"]["records"]
    assert [r["case"] for r in records] == ["liver_000", "liver_001", "liver_002"]
    assert all(r["contrast"] in ("portal_venous", "none", "arterial") for r in records)
    img = nib.load(out / "imagesTr" / "liver_000.nii.gz")
    lab = nib.load(out / "labelsTr" / "liver_000.nii.gz")
    assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
    assert img.shape == SMALL["shape"] and nib.aff2axcodes(img.affine) == ("L", "P", "S")
    case = generate_liver_tumor_ct(records[0]["seed"], contrast=records[0]["contrast"], **SMALL)
    np.testing.assert_array_equal(np.asarray(lab.dataobj), case.label)  # a record replays its case
    assert lits_datalist(out)["layout"] == "msd"


def test_lits_writer_names_and_atomic_refusals(tmp_path):
    out = tmp_path / "lits"
    synthesize_liver_tumor_dataset(out, cases=2, seed=2, layout="lits", progress=False, **SMALL)
    assert sorted(p.name for p in out.iterdir()) == [
        "phantom.json", "segmentation-0.nii.gz", "segmentation-1.nii.gz", "volume-0.nii.gz", "volume-1.nii.gz"]
    listing = lits_datalist(out)
    assert listing["layout"] == "lits" and [c["case"] for c in listing["cases"]] == ["volume-0", "volume-1"]
    with pytest.raises(FileExistsError, match="not an empty folder"):
        synthesize_liver_tumor_dataset(out, cases=1, progress=False, **SMALL)
    bad = tmp_path / "bad"
    with pytest.raises(ValueError, match="layout"):
        synthesize_liver_tumor_dataset(bad, cases=1, layout="kaggle", progress=False, **SMALL)
    with pytest.raises(ValueError, match="contrast"):
        synthesize_liver_tumor_dataset(bad, cases=1, contrast="late", progress=False, **SMALL)
    assert not bad.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["lits"]  # no temporary folder left
