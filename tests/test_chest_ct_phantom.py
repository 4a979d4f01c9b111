"""Tests of the chest-CT phantom, its DICOM writer and the synthetic data set writer."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from monai_ext.phantoms import (
    ACQUISITION_OPTIONS,
    ChestCTCase,
    fewshot_folds,
    generate_chest_ct,
    phantom_affine,
    sample_acquisition,
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

    monkeypatch.setattr(nib, "save", broken_save)  # the writer the phantom data sets share
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


# ------------------------------------------------------------------------------------------------
# acquisition and patient variety (issue 28)

VSHAPE, VSPACING = (48, 48, 36), (8.0, 8.0, 8.0)
VSEEDS = range(16)
#: forced options that leave the volume uncropped, for the tests that compare two generations
FULL_FOV = {"lateral_keep": 1.0, "ap_keep": 1.0, "craniocaudal": "none"}


@pytest.fixture(scope="module")
def variety_cases() -> dict:
    return {s: generate_chest_ct(VSHAPE, VSPACING, seed=s, variety=True) for s in VSEEDS}


def test_variety_off_is_bit_identical_to_before() -> None:
    # statistics recorded from the code before issue 28 (same seeds, same arguments)
    c = generate_chest_ct(SHAPE, SPACING, seed=1)
    off = generate_chest_ct(SHAPE, SPACING, seed=1, variety=False)
    np.testing.assert_array_equal(c.image, off.image)
    np.testing.assert_array_equal(c.label, off.label)
    assert int(c.label.astype(np.int64).sum()) == 47715
    assert int(c.tissue.astype(np.int64).sum()) == 1409540
    np.testing.assert_allclose(c.image[32, 32, 20:23], [-82.335388, -52.694080, -95.681824], atol=2e-3)
    np.testing.assert_allclose(c.affine, phantom_affine(SHAPE, SPACING))
    assert "acquisition" not in c.info and c.findings is None
    n = generate_chest_ct((64, 64, 48), (6.0, 6.0, 6.0), seed=4, nodules=True)
    assert int(n.label.astype(np.int64).sum()) == 35007
    assert int(n.tissue.astype(np.int64).sum()) == 1078942
    np.testing.assert_allclose(n.image[32, 32, 20:23], [124.917427, 130.022964, 105.137222], atol=2e-3)
    with pytest.raises(ValueError, match="variety"):
        generate_chest_ct(VSHAPE, VSPACING, seed=1, acquisition={"kernel": "sharp"})


def test_sample_acquisition_streams_and_overrides() -> None:
    a = sample_acquisition(7, VSPACING)
    assert a == sample_acquisition(7, VSPACING)
    json.dumps(a)
    b = sample_acquisition(7, VSPACING, {"contrast": "arterial", "kernel": "sharp"})
    assert b["contrast"]["phase"] == "arterial" and b["kernel"]["name"] == "sharp"
    assert 250 <= b["contrast"]["set_hu"]["blood"] <= 450 and 150 <= b["contrast"]["set_hu"]["lung_vessels"] <= 350
    assert 0.6 <= b["kernel"]["sharp_k"] <= 1.5
    for key in ("truncation", "arms", "dose", "noise_std_3mm", "slice_thickness_mm", "patient_scale", "lung_hu"):
        assert a[key] == b[key], key  # forcing one option leaves the others' draws alone
    with pytest.raises(ValueError, match="unknown"):
        sample_acquisition(7, VSPACING, {"colour": "red"})
    with pytest.raises(ValueError, match="contrast"):
        sample_acquisition(7, VSPACING, {"contrast": "venous"})
    with pytest.raises(ValueError, match="patient_scale"):
        sample_acquisition(7, VSPACING, {"patient_scale": 2.0})
    assert set(ACQUISITION_OPTIONS) >= {"arms", "contrast", "kernel", "dose", "effusion", "emphysema"}


def test_variety_cases_are_consistent_and_every_option_happens(variety_cases: dict) -> None:
    seen: dict[str, set] = {k: set() for k in ("arms", "contrast", "kernel", "dose", "z", "cc", "findings")}
    truncated = lateral_touch = 0
    for c in variety_cases.values():
        a = c.info["acquisition"]
        json.dumps(c.info)  # JSON-serialisable
        shp = c.image.shape
        assert c.label.shape == c.tissue.shape == shp and list(shp) == c.info["shape"]
        assert all(m.shape == shp and m.dtype == bool for m in c.findings.values())
        assert nib.aff2axcodes(c.affine) == ("L", "P", "S")
        np.testing.assert_allclose(np.abs(np.diag(c.affine)[:3]), c.spacing)
        assert c.spacing[2] == a["z_spacing_mm"] and c.info["spacing"] == list(c.spacing)
        crop, gen = a["crop"], a["generated_shape"]
        assert [b - s0 for s0, b in zip(crop["start"], crop["stop"])] == list(shp)
        assert shp[2] >= min(gen[2], max(8, 0.35 * gen[2]))
        # the crop moved the origin: the first kept voxel sits where it was in the generated grid
        full = phantom_affine(gen, c.spacing)
        np.testing.assert_allclose(c.affine @ [0, 0, 0, 1], full @ (crop["start"] + [1]), atol=1e-9)
        is_trunc = crop["start"] != [0, 0, 0] or crop["stop"] != gen
        truncated += is_trunc
        if a["truncation"]["lateral_keep"] < 0.9:
            lateral_touch += bool((c.label[0] > 0).any() or (c.label[-1] > 0).any())
        assert -1024 <= c.image.min() and c.image.max() <= 3071
        assert 0.8 <= a["patient_scale"] <= 1.2 and -900 <= a["lung_hu"] <= -700
        assert 0.6 <= a["slice_thickness_mm"] <= 5.0
        seen["arms"].add(a["arms"]["position"])
        seen["contrast"].add(a["contrast"]["phase"])
        seen["kernel"].add(a["kernel"]["name"])
        seen["dose"].add(a["dose"])
        seen["z"].add(a["z_resampled"])
        seen["cc"].add(a["truncation"]["craniocaudal"])
        seen["findings"] |= {k for k, n in a["voxels"].items() if n > 0}
        if any(n > 0 for n in a["voxels"].values()):
            assert set(np.unique(c.label)) <= {0, 1, 2, 3}
    assert seen["arms"] == {"up", "down"} and seen["contrast"] == {"none", "arterial", "portal_venous"}
    assert seen["kernel"] == {"smooth", "standard", "sharp"} and seen["dose"] == {"standard", "low"}
    assert seen["z"] == {True, False} and len(seen["cc"]) >= 3
    assert seen["findings"] == {"effusion", "atelectasis", "emphysema"}
    assert 0.25 <= truncated / len(variety_cases) <= 0.75
    assert lateral_touch >= 2, "laterally truncated cases should have lungs at the image border"
    assert len({c.image.shape for c in variety_cases.values()}) > 3


def test_variety_crop_keeps_world_coordinates() -> None:
    kw = {"seed": 21, "variety": True, "nodules": True}
    forced = {"effusion": "none", "atelectasis": "none", "emphysema": False, "patient_scale": 1.15, "z_spacing_mm": 6.0}
    full = generate_chest_ct(VSHAPE, VSPACING, acquisition={**forced, **FULL_FOV}, **kw)
    cut = generate_chest_ct(VSHAPE, VSPACING, acquisition={**forced, "lateral_keep": 0.65, "ap_keep": 0.8,
                                                           "craniocaudal": "both"}, **kw)
    crop = cut.info["acquisition"]["crop"]
    sl = tuple(slice(a, b) for a, b in zip(crop["start"], crop["stop"]))
    assert cut.image.shape != full.image.shape and cut.image.shape[2] == (crop["stop"][2] - crop["start"][2])
    assert full.image.shape[2] == round(36 * 8 / 6)  # generated at 6 mm: the z field of view is kept
    # the crop is a sub-volume of the same phantom, at the same world positions
    np.testing.assert_array_equal(cut.image, full.image[sl])
    np.testing.assert_array_equal(cut.label, full.label[sl])
    rng = np.random.default_rng(0)
    ijk = np.stack([rng.integers(0, n, 50) for n in cut.image.shape], axis=1)
    np.testing.assert_allclose(nib.affines.apply_affine(cut.affine, ijk),
                               nib.affines.apply_affine(full.affine, ijk + np.array(crop["start"])), atol=1e-9)
    assert (cut.label[0] > 0).any() or (cut.label[-1] > 0).any()  # lungs reach the lateral border
    # landmarks and nodules in world mm map to the same anatomy in both volumes
    assert cut.info["landmarks_mm"] == full.info["landmarks_mm"]
    inv = np.linalg.inv(cut.affine)
    in_view = 0
    for nod_c, nod_f in zip(cut.info["nodules"], full.info["nodules"]):
        assert nod_c["centre_mm"] == nod_f["centre_mm"]
        np.testing.assert_allclose(np.array(nod_c["centre_voxel"]) + crop["start"], nod_f["centre_voxel"])
        ijk = np.rint(nib.affines.apply_affine(inv, nod_c["centre_mm"])).astype(int)
        np.testing.assert_allclose(ijk, np.rint(nod_c["centre_voxel"]))
        if all(0 <= v < n for v, n in zip(ijk, cut.label.shape)):
            in_view += 1
            assert cut.label[tuple(ijk)] in (1, 2, 3)
    assert in_view >= 1
    # the carina: the trachea (airway tissue) lies in the slices just above its world z, not far below
    k_car = nib.affines.apply_affine(np.linalg.inv(full.affine), [0, 0, full.info["landmarks_mm"]["carina_z"]])[2]
    k_car = int(round(k_car))
    assert (full.tissue[:, :, k_car + 2] == ph.AIRWAY).any()


def test_variety_patient_size_scales_the_anatomy() -> None:
    vols, widths, measured = {}, {}, {}
    for scale in (0.85, 1.15):
        c = generate_chest_ct(VSHAPE, VSPACING, seed=5, variety=True, noise_std=0.0,
                              acquisition={**FULL_FOV, "patient_scale": scale, "z_spacing_mm": 8.0,
                                           "effusion": "none", "atelectasis": "none", "arms": "up"})
        assert c.info["acquisition"]["patient_scale"] == scale and c.spacing == VSPACING
        vols[scale] = c.info["lung_volume_ml"]["total"]
        widths[scale] = c.info["body_mm"]["width"]
        # body width measured on the image (mm) at the level of the heart centre
        k = int(round(nib.affines.apply_affine(np.linalg.inv(c.affine), c.info["landmarks_mm"]["heart_centre"])[2]))
        cols = np.flatnonzero((c.image[:, :, k] > -500).any(axis=1))
        measured[scale] = (cols.max() - cols.min() + 1) * VSPACING[0]
    assert widths[1.15] / widths[0.85] == pytest.approx(1.15 / 0.85)
    assert measured[0.85] == pytest.approx(widths[0.85], abs=2.5 * VSPACING[0])
    # lung volume ~ scale^3, except the part the fixed field of view loses with a big patient
    assert 1.6 < vols[1.15] / vols[0.85] < (1.15 / 0.85) ** 3 * 1.1


def test_variety_findings_are_labelled_as_they_should_be() -> None:
    c = generate_chest_ct(VSHAPE, VSPACING, seed=9, variety=True, noise_std=0.0,
                          acquisition={**FULL_FOV, "effusion": "both", "atelectasis": "both", "emphysema": True,
                                       "z_spacing_mm": 8.0})
    f, img, lab = c.findings, c.image, c.label
    eff, at, em = f["effusion"], f["atelectasis"], f["emphysema"]
    assert eff.sum() > 30 and at.sum() > 30 and em.sum() > 30
    assert (lab[eff] == 0).all() and (c.tissue[eff] == ph.FLUID).all()  # effusion is not lung
    core = eff & ndi.binary_erosion(eff)
    assert -20 <= np.median(img[core if core.any() else eff]) <= 35
    assert not (eff & (at | em)).any()
    assert np.isin(lab[at], (1, 2, 3)).all() and np.isin(lab[at], (1, 2)).mean() > 0.7  # lung, not infection
    assert np.median(img[at & np.isin(lab, (1, 2))]) > -300
    assert np.isin(lab[em], (1, 2)).all() and np.median(img[em]) < -900
    # effusion and atelectasis are dependent (posterior), emphysema is in the upper lungs
    lung_ijk = np.argwhere(np.isin(lab, (1, 2)))
    assert np.argwhere(eff)[:, 1].mean() > lung_ijk[:, 1].mean() + 3
    assert np.argwhere(at)[:, 1].mean() > lung_ijk[:, 1].mean() + 3
    assert np.argwhere(em)[:, 2].mean() > lung_ijk[:, 2].mean()
    assert np.argwhere(eff)[:, 2].mean() < lung_ijk[:, 2].mean()
    # effusion on both sides
    mid = np.argwhere(eff)[:, 0]
    assert mid.min() < VSHAPE[0] / 2 < mid.max()


def test_variety_contrast_phases() -> None:
    out = {}
    for phase in ("none", "arterial", "portal_venous"):
        c = generate_chest_ct(VSHAPE, VSPACING, seed=3, variety=True, noise_std=0.0,
                              acquisition={**FULL_FOV, "contrast": phase, "z_spacing_mm": 8.0})
        t = c.tissue
        blood = ndi.binary_erosion(t == ph.BLOOD)
        lung = ndi.binary_erosion(np.isin(c.label, (1, 2)), iterations=2)
        out[phase] = (np.median(c.image[blood]), np.median(c.image[ndi.binary_erosion(t == ph.LIVER)]),
                      np.percentile(c.image[lung], 99.5))
        assert c.info["acquisition"]["contrast"]["phase"] == phase
    assert out["none"][0] < 80 and out["arterial"][0] > 220 and 110 < out["portal_venous"][0] < 220
    assert out["portal_venous"][1] > out["none"][1] + 30  # liver enhances in the portal phase
    assert out["arterial"][2] > out["none"][2] + 20  # brighter lung vessels


def _hf_energy(a: np.ndarray) -> float:
    return float(np.mean(np.square(np.diff(a, axis=0))) + np.mean(np.square(np.diff(a, axis=1))))


def test_variety_kernel_noise_and_thickness() -> None:
    base = {**FULL_FOV, "z_spacing_mm": 8.0, "slice_thickness_mm": 3.0, "dose": "standard"}
    clean = {k: generate_chest_ct(VSHAPE, VSPACING, seed=2, variety=True, noise_std=0.0,
                                  acquisition={**base, "kernel": k}).image for k in ("smooth", "standard", "sharp")}
    assert _hf_energy(clean["sharp"]) > 1.2 * _hf_energy(clean["standard"]) > 1.2 * _hf_energy(clean["smooth"])
    # the noise: level from the dose, scaled by 1/sqrt(thickness / 3 mm), shaped by the kernel
    std = {}
    for name, ov in {"std3": {}, "low3": {"dose": "low"}, "std1": {"slice_thickness_mm": 0.75},
                     "sharp": {"kernel": "sharp"}, "smooth": {"kernel": "smooth"}}.items():
        acq = {**base, "kernel": "standard", **ov}
        noisy = generate_chest_ct(VSHAPE, VSPACING, seed=2, variety=True, acquisition=acq)
        quiet = generate_chest_ct(VSHAPE, VSPACING, seed=2, variety=True, noise_std=0.0, acquisition=acq)
        body = (quiet.image > -900) & (quiet.image < 1000)
        n = (noisy.image - quiet.image)[body]
        a = noisy.info["acquisition"]
        assert np.std(n) == pytest.approx(a["noise_std"], rel=0.1)
        std[name] = (a["noise_std"], a["noise_std_3mm"], (noisy.image - quiet.image))
    assert 10 <= std["std3"][0] <= 25 and 40 <= std["low3"][0] <= 90
    assert std["std1"][0] == pytest.approx(std["std1"][1] * 2.0, rel=1e-6)  # (0.75 / 3) ** -0.5
    # a sharp kernel's noise is less correlated in-plane than the standard one, a smooth one more
    def corr(n: np.ndarray) -> float:
        return float(np.corrcoef(n[:-1].ravel(), n[1:].ravel())[0, 1])

    assert corr(std["sharp"][2]) < corr(std["std3"][2]) < corr(std["smooth"][2])
    assert std["sharp"][0] > std["std3"][1] > std["smooth"][0] * 1.1
    # thick slices blur along z
    thin = generate_chest_ct(VSHAPE, (8.0, 8.0, 2.0), seed=2, variety=True, noise_std=0.0,
                             acquisition={**base, "z_spacing_mm": 2.0, "slice_thickness_mm": 0.6})
    thick = generate_chest_ct(VSHAPE, (8.0, 8.0, 2.0), seed=2, variety=True, noise_std=0.0,
                              acquisition={**base, "z_spacing_mm": 2.0, "slice_thickness_mm": 5.0})
    assert np.mean(np.square(np.diff(thick.image, axis=2))) < 0.6 * np.mean(np.square(np.diff(thin.image, axis=2)))


def test_variety_arms_down() -> None:
    kw = {"seed": 4, "variety": True, "noise_std": 0.0}
    ov = {**FULL_FOV, "patient_scale": 0.8, "z_spacing_mm": 8.0}
    up = generate_chest_ct(VSHAPE, VSPACING, acquisition={**ov, "arms": "up"}, **kw)
    down = generate_chest_ct(VSHAPE, VSPACING, acquisition={**ov, "arms": "down"}, **kw)
    assert down.info["acquisition"]["arm_voxels"] > 0
    new = (down.tissue != up.tissue)
    assert new.any() and (up.tissue[new] == ph.AIR).all()  # the arms are painted on air only
    assert set(np.unique(down.tissue[new])) <= {ph.SKIN, ph.FAT, ph.MUSCLE, ph.BONE, ph.MARROW}
    assert (down.tissue[new] == ph.BONE).any() and (down.label[new] == 0).all()
    # lateral to the body: beyond the lungs on both sides
    ii = np.argwhere(new)[:, 0]
    lung_i = np.argwhere(down.label > 0)[:, 0]
    assert ii.min() < lung_i.min() and ii.max() > lung_i.max()


def test_synthesize_dataset_variety(tmp_path: Path) -> None:
    out = tmp_path / "var"
    ds = synthesize_dataset(out, cases=6, seed=2, shape=(40, 40, 30), spacing=(9.0, 9.0, 9.0), progress=False,
                            variety=True)
    assert ds["phantom"]["variety"] is True
    meta = json.loads((out / "dataset.json").read_text())
    assert meta == ds
    shapes = []
    for entry, rec in zip(meta["training"], meta["phantom"]["records"]):
        img, lab = nib.load(str(out / entry["image"])), nib.load(str(out / entry["label"]))
        assert img.shape == lab.shape == tuple(rec["shape"])
        np.testing.assert_allclose(img.affine, lab.affine)
        np.testing.assert_allclose(img.header.get_zooms(), rec["spacing"], rtol=1e-6)
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        assert "truncation" in rec["acquisition"] and set(np.unique(np.asanyarray(lab.dataobj))) <= {0, 1, 2, 3}
        shapes.append(img.shape)
    assert len(set(shapes)) > 1
    direct = generate_chest_ct((40, 40, 30), (9.0, 9.0, 9.0), seed=sd.case_seed(2, 1), variety=True)
    first = nib.load(str(out / "imagesTr/case_001.nii.gz"))
    np.testing.assert_allclose(first.affine, direct.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(first.dataobj),
                                  np.clip(np.rint(direct.image), -1024, 3071).astype(np.int16))
    folds = json.loads((out / "datalist_fewshot_5fold.json").read_text())
    for f in range(5):
        assert all((out / e["image"]).exists() and (out / e["label"]).exists()
                   for e in folds[f"fold_{f}"]["training"] + folds[f"fold_{f}"]["testing"])
    res = synth(str(tmp_path / "cli"), cases=5, seed=4, shape="32,32,24", spacing="10,10,10", variety=True)
    assert json.loads(Path(res["dataset_json"]).read_text())["phantom"]["variety"] is True
    # without variety the record keeps its keys of before (plus the flag)
    plain = synthesize_dataset(tmp_path / "plain", cases=5, seed=2, shape=(32, 32, 24), spacing=(10.0, 10.0, 10.0),
                               progress=False)
    assert plain["phantom"]["variety"] is False and "acquisition" not in plain["phantom"]["records"][0]
