"""The adaptive-optics cone-mosaic phantom (pairs of visits under a known affine, one of them noisy): the
embedded data of the AO label-transfer bundle (issue 36)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from monai_ext.phantoms import (
    generate_cone_pair,
    random_visit_affine,
    render_cone_visit,
    sample_cone_mosaic,
    synthesize_cone_dataset,
)


def test_cones_sit_on_a_hexagonal_lattice_with_separate_labels():
    rng = np.random.default_rng(0)
    mosaic = sample_cone_mosaic(rng, 96, spacing=12.0)
    image, labels, rec = render_cone_visit(mosaic, 96, rng=rng)
    assert image.shape == labels.shape == (96, 96) and image.dtype == np.float32 and rec["dimmed"] == []
    ids = np.unique(labels)[1:]
    expected = 96 * 96 / (12.0**2 * np.sqrt(3) / 2)           # cones per image area of a hexagonal lattice
    assert 0.8 * expected < len(ids) < 1.2 * expected
    centres = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, ids))
    d, _ = cKDTree(centres).query(centres, k=2)
    assert 9.0 < np.median(d[:, 1]) < 15.0                    # nearest neighbour about one spacing away
    assert image[labels > 0].mean() > image[labels == 0].mean() + 0.2   # bright cones on a dark background


def test_the_second_visit_is_the_first_under_its_affine_and_labels_correspond():
    pair = generate_cone_pair(3, size=128)
    again = generate_cone_pair(3, size=128)
    assert np.array_equal(pair["images"], again["images"]) and np.array_equal(pair["labels"], again["labels"])
    lab = pair["labels"]
    common = sorted(set(np.unique(lab[0])) & set(np.unique(lab[1])) - {0})
    assert len(common) > 80
    c1 = np.array(ndimage.center_of_mass(np.ones_like(lab[0]), lab[0], common))
    c2 = np.array(ndimage.center_of_mass(np.ones_like(lab[1]), lab[1], common))
    m = pair["affine"]
    err = np.linalg.norm(c1 @ m[:2, :2].T + m[:2, 2] - c2, axis=1)
    assert np.median(err) < 0.5                               # same cone, same label, moved by the affine
    noisy, clean = pair["images"][pair["noisy_visit"]], pair["images"][1 - pair["noisy_visit"]]
    hp = lambda x: np.abs(x - ndimage.gaussian_filter(x, 2.0)).mean()  # noqa: E731
    assert hp(noisy) > hp(clean) and len(pair["dimmed"]) > 0 and 0.25 < pair["noisy_fraction"] < 0.55
    assert set(pair["dimmed"]) <= set(np.unique(lab[pair["noisy_visit"]]))   # dimmed cones stay labelled


def test_visit_affines_stay_within_their_bounds():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m = random_visit_affine(rng, 128)
        angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        assert abs(angle) <= 3.5 and abs(np.linalg.det(m[:2, :2]) - 1.0) < 0.08
        centre = np.array([63.5, 63.5, 1.0])
        assert np.all(np.abs((m @ centre)[:2] - centre[:2]) <= 8.0 + 1e-9)


def test_dataset_layout_and_refusals(tmp_path):
    out = tmp_path / "ao"
    desc = synthesize_cone_dataset(out, labelled=2, pairs=2, test=3, size=64, spacing=10.0, progress=False)
    assert len(list((out / "labelled" / "images").glob("*.nii.gz"))) == 2
    assert sorted(p.name for p in (out / "pairs").iterdir()) == [
        "pair_000_v1.nii.gz", "pair_000_v2.nii.gz", "pair_001_v1.nii.gz", "pair_001_v2.nii.gz"]
    img = nib.load(out / "test" / "images" / "test_000.nii.gz")
    lab = nib.load(out / "test" / "labels" / "test_000.nii.gz")
    assert img.shape == lab.shape == (64, 64) and lab.get_data_dtype() == np.int32
    stored = json.loads((out / "dataset.json").read_text())
    assert stored["test_noisy"] == desc["test_noisy"] == 2 and len(stored["pair_records"]) == 2
    with pytest.raises(FileExistsError):
        synthesize_cone_dataset(out, labelled=1, pairs=1, test=1, size=64, spacing=10.0, progress=False)
    with pytest.raises(ValueError, match="spacing"):
        synthesize_cone_dataset(tmp_path / "x", size=64, spacing=30.0)
    with pytest.raises(ValueError, match="pairs"):
        synthesize_cone_dataset(tmp_path / "y", pairs=0)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
