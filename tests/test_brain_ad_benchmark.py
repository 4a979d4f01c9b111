"""The embedded AD-vs-CN brain benchmark (MNI152-based synthetic subjects) and the OASIS-1 dataset list."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.datalists import oasis1_datalist, write_oasis1_slice_dataset
from monai_ext.phantoms import (
    brain_subject_affine,
    generate_brain_subject,
    mni152_t1,
    mni152_tissue_maps,
    render_brain_subject,
    sample_brain_subject_params,
    synthesize_brain_ad_dataset,
)

torch.set_num_threads(1)


def _central_csf_fraction(image: np.ndarray) -> float:
    """Fraction of dark (CSF-like) pixels in the central third of a 2D subject: mostly the ventricles."""
    x = image[0]
    h, w = x.shape
    c = x[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
    brain = c > 0.02
    return float(((c < 0.45) & brain).sum() / max(brain.sum(), 1))


def test_template_offline():
    vol, aff = mni152_t1(2.0)
    assert vol.shape == (99, 117, 95) and vol.dtype == np.float32
    assert 0.0 <= vol.min() and vol.max() <= 1.0 and vol.max() > 0.8
    np.testing.assert_allclose(np.diag(aff)[:3], 2.0)
    maps = mni152_tissue_maps(2.0)
    ml = {k: float(v.sum()) * 8e-3 for k, v in maps.items() if k != "affine"}
    assert 10 < ml["ventricles"] < 60 and 4 < ml["hippocampus"] < 15, ml
    assert ml["gm"] > ml["wm"] > ml["ventricles"]
    with pytest.raises(ValueError, match="resolution_mm"):
        mni152_t1(0.0)


def test_shapes_ranges_determinism_and_replay():
    img, meta = generate_brain_subject(0, 7)
    assert img.shape == (1, 64, 64) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0 and img.max() > 0.9
    assert img[0, 0, 0] == 0.0 and img[0, -1, -1] == 0.0  # masked: background is 0
    assert 0.25 < (img > 0.02).mean() < 0.75  # the brain fills a plausible part of the field of view
    assert meta["label"] == 0 and meta["severity"] == 0.0 and meta["cdr"] == 0.0 and 18 <= meta["age"] <= 94
    again, meta2 = generate_brain_subject(0, 7)
    np.testing.assert_array_equal(img, again)
    assert meta == meta2
    json.dumps(meta)  # JSON-able record
    np.testing.assert_array_equal(render_brain_subject(meta, 2, (64, 64)), img)  # replay from the meta data
    other, _ = generate_brain_subject(0, 8)
    assert np.abs(other - img).mean() > 0.01
    vol, m3 = generate_brain_subject(1, 7, dim=3, shape=(24, 28, 24))
    assert vol.shape == (1, 24, 28, 24) and 0.0 <= vol.min() and vol.max() <= 1.0
    assert m3["label"] == 1 and m3["cdr"] in (0.5, 1.0, 2.0) and 0 < m3["severity"] <= 1
    aff = brain_subject_affine(3, (24, 28, 24))
    np.testing.assert_allclose(np.diag(aff)[:3], [7.0, 7.0, 7.0])


def test_ad_has_larger_ventricles_and_severity_is_graded():
    cn = [_central_csf_fraction(generate_brain_subject(0, s)[0]) for s in range(10)]
    ad = [_central_csf_fraction(generate_brain_subject(1, s)[0]) for s in range(10)]
    assert np.mean(ad) > np.mean(cn) + 0.02, (np.mean(cn), np.mean(ad))
    # overlap: the task must not be trivially separable by ventricle size
    assert max(cn) > min(ad)
    fractions = [_central_csf_fraction(generate_brain_subject(1, 3, severity=s)[0]) for s in (0.0, 0.5, 1.0)]
    assert fractions[0] < fractions[1] < fractions[2], fractions
    p0, p1 = sample_brain_subject_params(1, 3, 0.0), sample_brain_subject_params(1, 3, 1.0)
    assert p0["age"] == p1["age"] and p0["rotation_deg"] == p1["rotation_deg"]  # only the disease changes
    assert p1["ventricle_load"] > p0["ventricle_load"] and p1["cortical_load"] > p0["cortical_load"]


def test_bad_subject_arguments():
    with pytest.raises(ValueError, match="label"):
        generate_brain_subject(2, 0)
    with pytest.raises(ValueError, match="severity"):
        generate_brain_subject(0, 0, severity=0.5)
    with pytest.raises(ValueError, match="severity"):
        generate_brain_subject(1, 0, severity=1.5)
    with pytest.raises(ValueError, match="dim"):
        generate_brain_subject(1, 0, dim=4)
    with pytest.raises(ValueError, match="shape"):
        generate_brain_subject(1, 0, dim=2, shape=(32, 32, 32))
    with pytest.raises(ValueError, match="seed"):
        generate_brain_subject(1, -1)
    with pytest.raises(KeyError, match="params lacks"):
        render_brain_subject({"label": 1}, 2)


def test_synthesize_dataset_splits(tmp_path):
    out = tmp_path / "brain_ad"
    lists = synthesize_brain_ad_dataset(
        out, train_per_class=3, val_per_class=1, test_per_class=2, seed=5, progress=False
    )
    assert {k: len(v) for k, v in lists.items()} == {"training": 6, "validation": 2, "test": 4}
    for split in lists.values():
        assert sorted(e["label"] for e in split) == sorted([0, 1] * (len(split) // 2))
    paths = [e["image"] for v in lists.values() for e in v]
    assert len(set(paths)) == len(paths) and all(Path(p).is_file() for p in paths)
    desc = json.loads((out / "dataset.json").read_text())
    seeds = [(s["label"], s["seed"]) for s in desc["subjects"]]
    assert len(set(seeds)) == len(seeds)  # no subject appears in two splits
    assert {k: len(desc[k]) for k in ("training", "validation", "test")} == {"training": 6, "validation": 2, "test": 4}
    img = nib.load(paths[0])
    assert img.shape == (64, 64)
    np.testing.assert_allclose(np.linalg.norm(img.affine[:3, :2], axis=0), [3.25, 3.25])
    data = np.asarray(img.dataobj)
    assert data.dtype == np.float32 and 0 <= data.min() and data.max() <= 1
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    # same seed, larger training set: the first subjects are the same
    img0, _ = generate_brain_subject(0, desc["subjects"][0]["seed"])
    np.testing.assert_allclose(np.asarray(nib.load(str(out / desc["training"][0]["image"])).dataobj), img0[0])
    from monai_ext.apps.vae_manifold_augmentation import brain_ad_split_lists

    assert len(brain_ad_split_lists(out)["test"]) == 4
    with pytest.raises(NotADirectoryError):
        synthesize_brain_ad_dataset(out / "dataset.json", 1, 0, 0, progress=False)
    with pytest.raises(ValueError, match="train_per_class"):
        synthesize_brain_ad_dataset(tmp_path / "x", 0, 1, 1, progress=False)


# ------------------------------------------------------------------------------------------- OASIS-1

_CSV_ROWS = [
    # ID, M/F, Hand, Age, Educ, SES, MMSE, CDR, eTIV, nWBV, ASF, Delay
    ("OAS1_0001_MR1", "F", "R", "74", "2", "3", "29", "0", "1344", "0.743", "1.306", "N/A"),
    ("OAS1_0002_MR1", "F", "R", "55", "4", "1", "29", "1", "1147", "0.81", "1.531", "N/A"),
    ("OAS1_0003_MR1", "F", "R", "23", "", "", "", "", "1454", "0.708", "1.207", "N/A"),
    ("OAS1_0004_MR1", "M", "R", "80", "3", "2", "26", "0.5", "1500", "0.7", "1.17", "N/A"),
    ("OAS1_0004_MR2", "M", "R", "80", "3", "2", "26", "0.5", "1500", "0.7", "1.17", "20"),
]


def _fake_oasis(root: Path, with_csv: bool = True) -> Path:
    layout = {
        "disc1": ["OAS1_0001_MR1", "OAS1_0002_MR1", "OAS1_0003_MR1"],
        "disc2": ["OAS1_0004_MR1", "OAS1_0004_MR2", "OAS1_0005_MR1"],
    }
    rng = np.random.default_rng(0)
    for disc, sessions in layout.items():
        for sid in sessions:
            d = root / disc / sid / "PROCESSED" / "MPRAGE" / "T88_111"
            d.mkdir(parents=True)
            vol = rng.random((8, 10, 8, 1)).astype(np.float32)
            nib.save(nib.AnalyzeImage(vol, np.eye(4)), str(d / f"{sid}_mpr_n4_anon_111_t88_masked_gfc.img"))
    if with_csv:
        with (root / "oasis_cross-sectional.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ID", "M/F", "Hand", "Age", "Educ", "SES", "MMSE", "CDR", "eTIV", "nWBV", "ASF", "Delay"])
            w.writerows(_CSV_ROWS)
    return root


def test_oasis1_datalist(tmp_path):
    root = _fake_oasis(tmp_path / "oasis")
    items = oasis1_datalist(root)
    expected = [("OAS1_0001_MR1", 0), ("OAS1_0002_MR1", 1), ("OAS1_0004_MR1", 1)]
    assert [(e["subject"], e["label"]) for e in items] == expected
    assert all(e["image"].endswith("_t88_masked_gfc.img") and Path(e["image"]).is_file() for e in items)
    assert items[0]["age"] == 74 and items[0]["sex"] == "F" and items[2]["cdr"] == 0.5
    strict = oasis1_datalist(root, cdr_ad_threshold=1.0)
    assert [e["subject"] for e in strict] == ["OAS1_0001_MR1", "OAS1_0002_MR1"]
    paper = oasis1_datalist(root, missing_cdr="cn")
    assert ("OAS1_0003_MR1", 0) in [(e["subject"], e["label"]) for e in paper]
    both = oasis1_datalist(root, sessions=("MR1", "MR2"))
    assert "OAS1_0004_MR2" in [e["subject"] for e in both]
    slices = oasis1_datalist(root, dim=2, slice_index=4)
    assert all(e["slice_index"] == 4 for e in slices)
    lists = write_oasis1_slice_dataset(slices, tmp_path / "out", shape=(8, 8), fractions=(0.34, 0.33, 0.33))
    written = [e for v in lists.values() for e in v]
    assert len(written) == 3 and all(nib.load(e["image"]).shape == (8, 8) for e in written)
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["labels"] == {"0": "CN", "1": "AD"}


def test_oasis1_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        oasis1_datalist(tmp_path / "missing")
    root = _fake_oasis(tmp_path / "nocsv", with_csv=False)
    with pytest.raises(FileNotFoundError, match="oasis_cross-sectional.csv"):
        oasis1_datalist(root)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("Subject,Age\nOAS1_0001_MR1,74\n")
    with pytest.raises(ValueError, match="columns"):
        oasis1_datalist(root, clinical_csv=bad_csv)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="masked T88"):
        oasis1_datalist(empty, clinical_csv=_fake_oasis(tmp_path / "ok") / "oasis_cross-sectional.csv")
    other_csv = tmp_path / "other.csv"
    other_csv.write_text("ID,CDR\nOAS1_9999_MR1,0\n")
    with pytest.raises(ValueError, match="none of"):
        oasis1_datalist(root, clinical_csv=other_csv)
    with pytest.raises(ValueError, match="dim"):
        oasis1_datalist(tmp_path / "ok", dim=4)
    with pytest.raises(ValueError, match="cdr_ad_threshold"):
        oasis1_datalist(tmp_path / "ok", cdr_ad_threshold=0)


def test_disease_scale_sets_the_atrophy_and_keeps_the_default():
    base = sample_brain_subject_params(1, 5, 0.8)
    assert sample_brain_subject_params(1, 5, 0.8, disease_scale=1.0) == base and "disease_scale" not in base
    half, none = sample_brain_subject_params(1, 5, 0.8, disease_scale=0.5), sample_brain_subject_params(1, 5, 0.8, disease_scale=0.0)
    assert half["disease_scale"] == 0.5 and half["age"] == base["age"]
    assert none["ventricle_load"] < half["ventricle_load"] < base["ventricle_load"]
    cn = sample_brain_subject_params(0, 5)
    assert {k: v for k, v in sample_brain_subject_params(0, 5, disease_scale=0.5).items() if k != "disease_scale"} == cn
    with pytest.raises(ValueError, match="disease_scale"):
        sample_brain_subject_params(1, 5, disease_scale=-1)


def test_benchmark_in_the_oasis_split_shape(tmp_path):
    from monai_ext.apps.vae_manifold_augmentation import prepare_brain_ad_benchmark

    small = prepare_brain_ad_benchmark(str(tmp_path / "small"), str(tmp_path / "tr_small"), str(tmp_path / "ev"),
                                       [3, 1], [2, 1], [2, 2], disease_scale=0.5)
    large = prepare_brain_ad_benchmark(str(tmp_path / "large"), str(tmp_path / "tr_large"), str(tmp_path / "ev"),
                                       [5, 2], [2, 1], [2, 2], disease_scale=0.5)
    a, b = json.loads(small.read_text()), json.loads(large.read_text())
    assert [e["label"] for e in a["training"]] == [0, 0, 0, 1] and len(b["training"]) == 7
    assert a["validation"] == b["validation"] and a["test"] == b["test"] and [e["label"] for e in a["test"]] == [0, 0, 1, 1]
    assert a["generator"]["disease_scale"] == 0.5
    # the larger training set holds the smaller one's subjects, image for image
    for name in ("training_cn_000", "training_ad_000"):
        x = nib.load(str(tmp_path / "tr_small" / "images" / f"{name}.nii.gz")).get_fdata()
        np.testing.assert_array_equal(x, nib.load(str(tmp_path / "tr_large" / "images" / f"{name}.nii.gz")).get_fdata())
    with pytest.raises(ValueError, match="disease scale"):
        prepare_brain_ad_benchmark(str(tmp_path / "other"), str(tmp_path / "tr_small"), str(tmp_path / "ev"), [3, 1], disease_scale=1.0)
    with pytest.raises(ValueError, match=r"\[CN, AD\]"):
        synthesize_brain_ad_dataset(tmp_path / "bad", train_per_class=[1, 2, 3])
