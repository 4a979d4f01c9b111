"""Label-free consistency checks of the COVID-19 lung model (issue 28): the copies and their geometry, and the
check itself on the real CT in ../shared/data."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from monai_ext.apps.covid19_ct_fewshot_seg.consistency import (
    DEFAULT_VARIANTS,
    _on_coarser_grid,
    consistency_check,
    scan_variants,
)
from monai_ext.cli.catalog import resolve_bundle
from monai_ext.phantoms import generate_chest_ct


@pytest.fixture(scope="module")
def phantom():
    case = generate_chest_ct((64, 64, 40), (6.0, 6.0, 6.0), seed=3)  # axis 0 left-right, 1 front-back, 2 up
    return case.image, case.affine


def test_crops_keep_world_positions_and_cut_the_body(phantom):
    hu, aff = phantom
    copies = {v.name: v for v in scan_variants(hu, aff, ["crop_lateral", "crop_anterior_posterior", "crop_cranio_caudal"])}
    for v in copies.values():
        assert np.array_equal(v.image, hu[v.crop])
        start = np.array([b.start or 0 for b in v.crop] + [1.0])
        assert np.allclose(v.affine[:3, 3], (aff @ start)[:3])  # voxel 0 of the copy is that voxel of the original
    lat = copies["crop_lateral"].image
    assert (lat[0] > -500).any() and (lat[-1] > -500).any()  # the body reaches both side borders
    assert copies["crop_cranio_caudal"].image.shape[2] >= 8


def test_resampled_copy_has_the_new_slice_spacing_and_the_same_extent(phantom):
    hu, aff = phantom
    (v,) = scan_variants(hu, aff, ["slices_9mm"])
    assert v.crop is None
    assert math.isclose(np.linalg.norm(v.affine[:3, 2]), 9.0)
    assert abs((v.image.shape[2] - 1) * 9.0 - (hu.shape[2] - 1) * 6.0) < 9.0
    assert np.allclose(v.affine[:3, 3], aff[:3, 3])
    with pytest.raises(ValueError, match="unknown variant"):
        scan_variants(hu, aff, ["rotate"])


def test_noise_and_kernel_copies_change_the_image_not_the_grid(phantom):
    hu, aff = phantom
    noisy, sharp = scan_variants(hu, aff, ["low_dose_noise", "sharp_kernel"])
    body = hu > -500
    assert 30.0 < float((noisy.image - hu)[body].std()) < 50.0
    hf = lambda a: float(np.abs(np.diff(a, axis=0)).mean())  # noqa: E731
    assert hf(sharp.image) > 1.3 * hf(hu)
    assert noisy.image.shape == sharp.image.shape == hu.shape


def test_resampled_predictions_are_compared_on_the_coarser_grid():
    """A copy on a finer grid that holds the same labels agrees exactly once carried back onto the original grid,
    whereas carrying the original onto the finer grid would invent boundaries; a coarser copy is compared on its
    own grid."""
    rng = np.random.default_rng(0)
    ref = (ndimage.gaussian_filter(rng.random((12, 10, 8)), 1.5) > 0.5).astype(np.uint8) * 2
    aff = np.diag([6.0, 6.0, 6.0, 1.0])
    fine_aff = np.diag([6.0, 6.0, 3.0, 1.0])
    fine = np.repeat(ref, 2, axis=2)[..., :15]  # 3 mm slices: slice 2k lies on the original slice k
    a, b, grid = _on_coarser_grid(ref, aff, fine, fine_aff, 4)
    assert a.shape == ref.shape and np.array_equal(grid, aff) and np.array_equal(a, b)
    coarse_aff = np.diag([6.0, 6.0, 12.0, 1.0])
    a, b, grid = _on_coarser_grid(ref, aff, ref[..., ::2], coarse_aff, 4)
    assert a.shape == (12, 10, 4) and np.array_equal(grid, coarse_aff)
    assert np.array_equal(a, ref[..., ::2])


def _lung_columns(pred_path) -> tuple[bool, bool]:
    """Whether the left (label 1) and the right lung (2) reach the image's first or last column along x."""
    import nibabel as nib

    p = np.asarray(nib.load(str(pred_path)).dataobj)
    edges = np.concatenate([p[:1], p[-1:]])
    return bool((edges == 1).any()), bool((edges == 2).any())


def test_committed_model_on_the_real_ct_and_its_copies(shared_data, tmp_path):
    """Issue 28 on the shared real CT (lung bases + upper abdomen, 3 mm), run as the command a user runs: plausible
    lung volumes and no infection on this scan without disease; on the copy cut at both sides, both lungs are
    still labelled up to the image border; the exit status says whether every copy agreed (Dice >= 0.97).

    The 0.97 target is not met by every copy yet (docs/README.md gives the table: the left lung base, about 30 ml,
    changes most); the floors below guard what the 0.2.0 weights reach (worst copy 0.93, mean 0.97), so a change
    that makes the model less consistent on real data fails here."""
    scan = shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"
    proc = subprocess.run([sys.executable, "-m", "monai_ext", "consistency", str(scan), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "consistency.json").read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert set(rows) == set(DEFAULT_VARIANTS)
    assert proc.returncode == (0 if report["passed"] else 1), proc.stderr[-2000:]
    ml = report["original_ml"]
    assert 20.0 < ml["left_lung"] < 400.0 and 20.0 < ml["right_lung"] < 400.0
    assert ml["infection"] < 1.0 and all(r["ml_infection_variant"] < 1.0 for r in rows.values())
    assert (tmp_path / "crop_lateral.png").is_file()
    assert _lung_columns(tmp_path / "predictions" / "crop_lateral_seg.nii.gz") == (True, True)
    dice = [r["dice_lungs"] for r in rows.values()]
    assert min(dice) >= 0.90 and float(np.mean(dice)) >= 0.96, {n: round(r["dice_lungs"], 3) for n, r in rows.items()}


def test_no_lung_appears_on_copies_of_a_scan_without_lungs_in_view(shared_data, tmp_path):
    """The shared DICOM series (upper abdomen with the arms in view, 0.98 mm, 20 slices): no lung and no infection
    on the scan, and none appears when it is cut, resampled to 5 mm slices or sharpened."""
    report = consistency_check(shared_data / "ct_dicom_series", resolve_bundle("covid19_ct_fewshot_seg"),
                               variants=["crop_lateral", "slices_5mm", "sharp_kernel"], progress=False)
    assert report["original_ml"]["lungs"] < 5.0 and report["original_ml"]["infection"] < 1.0
    assert report["passed"], [(r["name"], r["ml_lungs_variant"]) for r in report["variants"]]


@pytest.mark.parametrize("device, expected", [(None, None), ("cpu", "$torch.device('cpu')")])
def test_the_device_is_the_bundles_default_unless_given(phantom, tmp_path, monkeypatch, device, expected):
    import nibabel as nib

    from monai_ext.apps.covid19_ct_fewshot_seg import consistency as module

    seen = {}

    class Stop(Exception):
        pass

    def fake_run_bundle(bundle_dir, config, **overrides):
        seen.update(overrides)
        raise Stop

    monkeypatch.setattr(module, "run_bundle", fake_run_bundle)
    image, affine = phantom
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), scan)
    with pytest.raises(Stop):
        module.consistency_check(scan, resolve_bundle("covid19_ct_fewshot_seg"), variants=("low_dose_noise",), device=device)
    assert seen.get("device") == expected
