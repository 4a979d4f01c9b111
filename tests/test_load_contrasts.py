"""LoadContrasts(d): one file per contrast or one multi-channel file -> (C, H, W, D), with grid checks; MapLabels
strict mode."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.transforms import LoadContrasts, LoadContrastsd, MapLabels, ScanInputError


def _save(path: Path, data: np.ndarray, spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0)) -> str:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return str(path)


@pytest.fixture()
def case(tmp_path):
    rng = np.random.default_rng(0)
    vols = {c: rng.random((10, 12, 8)) for c in ("flair", "t1", "t1c", "t2")}
    folder = tmp_path / "Case_007"
    folder.mkdir()
    paths = {c: _save(folder / f"Case_007_{c}.nii.gz", v) for c, v in vols.items()}
    return vols, paths, folder


def test_files_are_stacked_in_the_given_order_and_named_after_the_case(case):
    vols, paths, folder = case
    out = LoadContrastsd("image", contrasts=["flair", "t1c"])({"image": [paths["flair"], paths["t1c"]]})["image"]
    assert tuple(out.shape) == (2, 10, 12, 8) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), vols["flair"], atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), vols["t1c"], atol=1e-6)
    assert out.meta["filename_or_obj"] == str(folder / "Case_007")
    assert out.meta["contrast_files"] == [paths["flair"], paths["t1c"]]
    np.testing.assert_allclose(out.affine.numpy()[:3, :3], np.diag([2.0, 2.0, 2.0]))


def test_a_multichannel_file_gives_the_selected_contrasts(tmp_path, case):
    vols, _, _ = case
    stack = np.stack([vols[c] for c in ("flair", "t1", "t1c", "t2")], axis=-1)  # NIfTI: channels last
    path = _save(tmp_path / "msd_case.nii.gz", stack)
    loader = LoadContrasts(contrasts=["t1c", "t2"], stacked_contrasts=["flair", "t1", "t1c", "t2"])
    out = loader(path)
    assert tuple(out.shape) == (2, 10, 12, 8)
    np.testing.assert_allclose(out[0].numpy(), vols["t1c"], atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), vols["t2"], atol=1e-6)
    with pytest.raises(ScanInputError, match=r"msd_case.nii.gz: holds 4 channel\(s\).*expected 3"):
        LoadContrasts(contrasts=["flair", "t1", "t2"])(path)


def test_contrasts_of_different_shapes_or_grids_are_refused_naming_both_files(tmp_path, case):
    _, paths, _ = case
    small = _save(tmp_path / "t2_small.nii.gz", np.zeros((10, 12, 7)))
    with pytest.raises(ScanInputError, match=r"t2_small.nii.gz \(t1c\) has shape \(10, 12, 7\).*Case_007_flair"):
        LoadContrasts(["flair", "t1c"])([paths["flair"], small])
    coarse = _save(tmp_path / "t2_coarse.nii.gz", np.zeros((10, 12, 8)), spacing=(2.0, 2.0, 5.0))
    with pytest.raises(ScanInputError, match=r"t2_coarse.nii.gz \(t2\).*different voxel grids: spacing \[2.0, 2.0, 5.0\]"):
        LoadContrasts(["flair", "t2"])([paths["flair"], coarse])
    shifted = _save(tmp_path / "t2_shifted.nii.gz", np.zeros((10, 12, 8)), origin=(0.0, 3.0, 0.0))
    with pytest.raises(ScanInputError, match="origin"):
        LoadContrasts(["flair", "t2"])([paths["flair"], shifted])


def test_wrong_number_of_files_or_a_multichannel_file_among_them_is_refused(tmp_path, case):
    _, paths, _ = case
    with pytest.raises(ScanInputError, match="3 files for the contrasts"):
        LoadContrasts(["flair", "t1"])([paths["flair"], paths["t1"], paths["t2"]])
    four_d = _save(tmp_path / "stack.nii.gz", np.zeros((10, 12, 8, 2)))
    with pytest.raises(ScanInputError, match=r"stack.nii.gz \(t1\): holds 2 channels"):
        LoadContrasts(["flair", "t1"])([paths["flair"], four_d])
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        LoadContrasts(["flair", "t1"])([paths["flair"], str(tmp_path / "missing.nii.gz")])


def test_map_labels_strict_names_the_unknown_values_and_the_file(tmp_path):
    path = _save(tmp_path / "seg.nii.gz", np.array([0, 1, 2, 4, 7] * 4, dtype=np.float32).reshape(5, 2, 2))
    from monai_ext.transforms import LoadScan

    label = LoadScan(ensure_channel_first=True)(path)
    mapping = {0: 0, 1: 1, 2: 2, 4: 3}
    with pytest.raises(ScanInputError, match=r"seg.nii.gz: label values \[7\] are not among the known values"):
        MapLabels(mapping, strict=True)(label)
    lenient = MapLabels(mapping)(label)  # default: unknown values become background
    assert sorted(torch.unique(torch.as_tensor(lenient)).tolist()) == [0, 1, 2, 3]
