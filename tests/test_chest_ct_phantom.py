"""Tests of the chest-CT phantom, its DICOM writer and the synthetic data set writer."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from monai_ext.phantoms import (
    ChestCTCase,
    fewshot_folds,
    generate_chest_ct,
    phantom_affine,
    synth,
    synthesize_dataset,
    write_dicom_series,
)
from monai_ext.phantoms import chest_ct as ph
from monai_ext.phantoms import chest_ct_dataset as sd

SHAPE, SPACING = (64, 64, 48), (5.0, 5.0, 5.0)


@pytest.fixture(scope="module")
def case() -> ChestCTCase:
    return generate_chest_ct(SHAPE, SPACING, seed=1)


@pytest.fixture(scope="module")
def cases() -> list:
    return [generate_chest_ct(SHAPE, SPACING, seed=s) for s in range(2, 6)]


def _body_mask(image: np.ndarray) -> np.ndarray:
    """Body outline from the image: per axial slice, the filled largest component above -500 HU."""
    out = np.zeros(image.shape, dtype=bool)
    for k in range(image.shape[2]):
        m = ndi.binary_opening(image[:, :, k] > -500, iterations=1)
        lab, n = ndi.label(m)
        if n == 0:
            continue
        big = lab == (np.argmax(ndi.sum(m, lab, range(1, n + 1))) + 1)
        out[:, :, k] = ndi.binary_fill_holes(big)
    return out


def test_types_shapes_affine(case: ChestCTCase) -> None:
    assert case.image.shape == SHAPE and case.image.dtype == np.float32
    assert case.label.shape == SHAPE and case.label.dtype == np.uint8
    assert case.affine.shape == (4, 4) and case.affine.dtype == np.float64
    assert tuple(case.spacing) == SPACING
    assert nib.aff2axcodes(case.affine) == ("L", "P", "S")
    np.testing.assert_allclose(np.abs(np.diag(case.affine)[:3]), SPACING)
    # the world origin is at the volume centre
    centre = case.affine @ np.array([(n - 1) / 2 for n in SHAPE] + [1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    assert set(np.unique(case.label)) <= {0, 1, 2, 3}
    assert {1, 2, 3} <= set(np.unique(case.label))
    assert case.image.min() >= -1024 and case.image.max() <= 3071
    assert case.info["seed"] == 1 and case.info["lesions"]


def test_deterministic_per_seed_and_variable_between_seeds(case: ChestCTCase, cases: list) -> None:
    again = generate_chest_ct(SHAPE, SPACING, seed=1)
    np.testing.assert_array_equal(again.image, case.image)
    np.testing.assert_array_equal(again.label, case.label)
    lung_ml = [c.info["lung_volume_ml"]["total"] for c in [case, *cases]]
    assert len({round(v) for v in lung_ml}) == len(lung_ml)
    assert max(lung_ml) / min(lung_ml) > 1.05
    assert not np.array_equal(cases[0].label, cases[1].label)
    domes = [c.info["landmarks_mm"]["right_dome_z"] for c in cases]
    assert np.ptp(domes) > 3.0


def test_hu_ranges(case: ChestCTCase, cases: list) -> None:
    for c in [case, *cases]:
        img, lab, t = c.image, c.label, c.tissue
        lung = ndi.binary_erosion((lab == 1) | (lab == 2))  # parenchyma away from the pleura
        assert -900 <= np.median(img[lung]) <= -780
        inf = img[lab == 3]
        assert inf.size > 0 and -750 <= np.median(inf) <= 100
        assert 40 <= np.median(img[t == ph.LIVER]) <= 80
        assert np.median(img[t == ph.AIR]) < -950
        assert 0 <= np.median(img[t == ph.MUSCLE]) <= 90
        assert np.median(img[t == ph.FAT]) < -50
        assert np.percentile(img[t == ph.BONE], 90) > 300


def test_left_lung_is_on_patients_left(case: ChestCTCase, cases: list) -> None:
    # RAS world: +x points to the patient's Right, so the left lung has the smaller world x
    for c in [case, *cases]:
        xs = {}
        for v in (1, 2):
            ijk = np.argwhere(c.label == v).mean(axis=0)
            xs[v] = nib.affines.apply_affine(c.affine, ijk)[0]
        assert xs[1] < 0 < xs[2]
        # the left lung sits at high i (LPS array layout)
        assert np.argwhere(c.label == 1)[:, 0].mean() > np.argwhere(c.label == 2)[:, 0].mean()
        assert c.info["lung_volume_ml"]["labelled_right"] > 0.9 * c.info["lung_volume_ml"]["labelled_left"]


def test_air_outside_lungs_inside_body(case: ChestCTCase, cases: list) -> None:
    for c in [case, *cases]:
        body = ndi.binary_erosion(_body_mask(c.image), iterations=2)
        gas = (c.image < -900) & (c.label == 0) & body
        assert gas.sum() >= 20, "no stomach/bowel/airway gas inside the body"
        # abdomen-only slices below the lung bases still contain gas and liver
        k_lung = np.nonzero((c.label > 0).any(axis=(0, 1)))[0].min()
        assert k_lung >= 3
        assert (c.label[:, :, :k_lung] == 0).all()
        assert (c.tissue[:, :, :k_lung] == ph.LIVER).any()
        assert ((c.tissue[:, :, : k_lung + 6] == ph.GAS) & body[:, :, : k_lung + 6]).sum() > 0


def test_infection_inside_lungs_and_fraction(case: ChestCTCase, cases: list) -> None:
    fractions = []
    for c in [case, *cases]:
        inf = c.label == 3
        assert (c.tissue[inf] == ph.LUNG).all()
        fractions.append(c.info["infection_fraction"])
        n_lung = np.isin(c.label, (1, 2, 3)).sum()
        assert c.info["infection_fraction"] == pytest.approx(inf.sum() / n_lung)
        for les in c.info["lesions"]:
            assert les["kind"] in ("ggo", "consolidation", "mixed")
            assert 5.0 <= les["radius_mm"] <= 30.0
    assert min(fractions) > 0.005 and max(fractions) < 0.3
    assert np.mean(fractions) > 0.02


def test_lesions_and_nodules_flags() -> None:
    clean = generate_chest_ct(SHAPE, SPACING, seed=7, lesions=False, nodules=True)
    assert not (clean.label == 3).any() and clean.info["lesions"] == []
    assert 1 <= len(clean.info["nodules"]) <= 4
    inv = np.linalg.inv(clean.affine)
    for nod in clean.info["nodules"]:
        assert 2.0 <= nod["radius_mm"] <= 10.0
        ijk = np.rint(nib.affines.apply_affine(inv, nod["centre_mm"])).astype(int)
        assert clean.label[tuple(ijk)] in (1, 2)  # nodules keep the lung label
    noiseless = generate_chest_ct(SHAPE, SPACING, seed=7, noise_std=0.0, blur_mm=0.0)
    lung = np.isin(noiseless.label, (1, 2))
    assert np.std(noiseless.image[noiseless.tissue == ph.AIR]) < 1e-3
    assert np.median(noiseless.image[lung]) < -780


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_chest_ct((64, 64), SPACING)
    with pytest.raises(ValueError):
        generate_chest_ct(SHAPE, (5.0, 0.0, 5.0))
    with pytest.raises(ValueError, match="at least 5"):
        fewshot_folds(4)


def test_fewshot_folds() -> None:
    folds = fewshot_folds(20)
    trains = [set(t) for t, _ in folds]
    assert all(len(t) == 4 for t in trains)
    assert set().union(*trains) == set(range(20))  # disjoint, covering all cases
    for train, test in folds:
        assert not set(train) & set(test) and len(test) == 16
    folds7 = fewshot_folds(7)
    assert folds7[1][0] == [0, 4, 5, 6]  # cases 4..7 mod 7
    for train, test in folds7:
        assert len(train) == 4 and sorted(train + test) == list(range(7))


def test_synthesize_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    ds = synthesize_dataset(out, cases=5, seed=3, shape=(48, 48, 32), spacing=(7.0, 7.0, 7.0), progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta == ds
    assert meta["modality"] == {"0": "CT"} and meta["tensorImageSize"] == "3D"
    assert meta["labels"] == {"0": "background", "1": "left lung", "2": "right lung", "3": "infection"}
    assert meta["numTraining"] == 5 and len(meta["training"]) == 5
    assert meta["training"][0] == {"image": "./imagesTr/case_000.nii.gz", "label": "./labelsTr/case_000.nii.gz"}
    assert meta["phantom"]["case_seeds"] == [sd.case_seed(3, i) for i in range(5)]
    expect = phantom_affine((48, 48, 32), (7.0, 7.0, 7.0))
    for entry in meta["training"]:
        img = nib.load(str(out / entry["image"]))
        lab = nib.load(str(out / entry["label"]))
        assert img.shape == lab.shape == (48, 48, 32)
        assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
        np.testing.assert_allclose(img.affine, expect, atol=1e-5)
        np.testing.assert_allclose(lab.affine, expect, atol=1e-5)
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
        np.testing.assert_allclose(img.header.get_zooms(), (7.0, 7.0, 7.0))
        assert set(np.unique(np.asanyarray(lab.dataobj))) <= {0, 1, 2, 3}
    # the first case equals a direct call with the derived seed
    direct = generate_chest_ct((48, 48, 32), (7.0, 7.0, 7.0), seed=sd.case_seed(3, 0))
    first = np.asanyarray(nib.load(str(out / "imagesTr/case_000.nii.gz")).dataobj)
    np.testing.assert_array_equal(first, np.clip(np.rint(direct.image), -1024, 3071).astype(np.int16))
    folds = json.loads((out / "datalist_fewshot_5fold.json").read_text())
    assert sorted(folds) == [f"fold_{f}" for f in range(5)]
    for f in range(5):
        tr = [e["image"] for e in folds[f"fold_{f}"]["training"]]
        te = [e["image"] for e in folds[f"fold_{f}"]["testing"]]
        assert len(tr) == 4 and not set(tr) & set(te) and len(tr) + len(te) == 5
        assert all((out / p).exists() for p in tr + te)
    assert not list(out.rglob(".*tmp*")), "temporary files left behind"


def test_dataset_errors_and_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "not_a_dir"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="not_a_dir"):
        synthesize_dataset(a_file, cases=5, progress=False)
    with pytest.raises(ValueError, match="at least 5"):
        synthesize_dataset(tmp_path / "few", cases=3, progress=False)

    def broken_save(img, filename):  # writes half a file, then dies
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(sd.nib, "save", broken_save)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        synthesize_dataset(out, cases=5, shape=(32, 32, 24), spacing=(10.0, 10.0, 10.0), progress=False)
    assert not (out / "imagesTr" / "case_000.nii.gz").exists()
    assert list((out / "imagesTr").iterdir()) == []


def test_synth_cli_parsing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    res = synth(str(tmp_path / "cli"), cases=5, seed=1, shape="32,32,24", spacing="10,10,10")
    assert res["cases"] == 5
    assert nib.load(str(tmp_path / "cli/imagesTr/case_004.nii.gz")).shape == (32, 32, 24)
    assert "case 5/5" in capsys.readouterr().out
    with pytest.raises(ValueError):
        synth(str(tmp_path / "bad"), cases=5, shape="32,32")


def test_dicom_round_trip(tmp_path: Path) -> None:
    from monai.transforms import LoadImage

    c = generate_chest_ct((40, 36, 16), (6.0, 6.0, 8.0), seed=11)
    hu = np.clip(np.rint(c.image), -1024, 3071).astype(np.int16)
    paths = write_dicom_series(hu, c.affine, tmp_path / "lps", seed_uid="case-11")
    assert len(paths) == 16 and all(p.exists() for p in paths)
    import pydicom

    d0, d5 = pydicom.dcmread(paths[0]), pydicom.dcmread(paths[5])
    assert d0.Modality == "CT" and d0.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert d0.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert d0.SeriesInstanceUID == d5.SeriesInstanceUID and d0.SOPInstanceUID != d5.SOPInstanceUID
    assert d0.FrameOfReferenceUID == d5.FrameOfReferenceUID and d5.InstanceNumber == 6
    assert [float(v) for v in d0.PixelSpacing] == [6.0, 6.0] and float(d0.SliceThickness) == 8.0
    again = write_dicom_series(hu, c.affine, tmp_path / "again", seed_uid="case-11")
    assert pydicom.dcmread(again[0]).SeriesInstanceUID == d0.SeriesInstanceUID

    loader = LoadImage(reader="ITKReader", image_only=True)
    img = loader(str(tmp_path / "lps"))
    assert tuple(img.shape) == hu.shape
    np.testing.assert_allclose(np.asarray(img.affine), c.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img), hu)

    # a RAS-ordered copy of the same volume: compare through world coordinates, not raw arrays
    ras = hu[::-1, ::-1, :]
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [hu.shape[0] - 1, hu.shape[1] - 1]
    aff_ras = c.affine @ flip
    assert nib.aff2axcodes(aff_ras) == ("R", "A", "S")
    write_dicom_series(ras, aff_ras, tmp_path / "ras")
    img2 = loader(str(tmp_path / "ras"))
    arr2, aff2 = np.asarray(img2), np.asarray(img2.affine, dtype=np.float64)
    rng = np.random.default_rng(0)
    ijk = np.stack([rng.integers(0, n, 200) for n in hu.shape], axis=1)
    world = nib.affines.apply_affine(c.affine, ijk)
    back = np.rint(nib.affines.apply_affine(np.linalg.inv(aff2), world)).astype(int)
    np.testing.assert_array_equal(arr2[tuple(back.T)], hu[tuple(ijk.T)])
    # the eight corner voxels span the same world box
    corners = np.array([[i, j, k] for i in (0, hu.shape[0] - 1) for j in (0, hu.shape[1] - 1)
                        for k in (0, hu.shape[2] - 1)])
    w0 = nib.affines.apply_affine(c.affine, corners)
    w2 = nib.affines.apply_affine(aff2, corners)
    np.testing.assert_allclose(np.sort(w0, axis=0), np.sort(w2, axis=0), atol=1e-4)
