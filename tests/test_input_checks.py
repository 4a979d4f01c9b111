"""Loading and checking input: every bad input gives an error that names the file and the problem."""

from __future__ import annotations

import gzip
import pickle
import re
import traceback
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import Dataset, MetaTensor
from monai.transforms import Compose, LoadImage, LoadImaged

from monai_ext.bundle_helpers import shared_data_dir
from monai_ext.transforms import (
    CheckLabel,
    CheckLabeld,
    CheckVolume,
    CheckVolumed,
    LoadScan,
    LoadScand,
    ScanInputError,
    unwrap_transform_error,
)


def _shared(rel: str) -> Path:
    path = (shared_data_dir() or Path("/nonexistent")) / rel
    if not path.exists():
        pytest.skip(f"shared sample data not found: {path}")
    return path


def _write_nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _ct(shape=(8, 8, 6), seed=0) -> np.ndarray:
    """A tiny CT-like volume in HU: air around a soft-tissue block."""
    data = np.full(shape, -1000, dtype=np.int16)
    inner = (shape[0] - 4, shape[1] - 4, shape[2] - 2)
    data[2:-2, 2:-2, 1:-1] = np.random.default_rng(seed).integers(-100, 200, size=inner)
    return data


def _msg(path: Path) -> str:
    return re.escape(str(path))


# ------------------------------------------------------------------------------------------- LoadScan


def test_loadscan_is_a_loadimage_and_reads_nifti(tmp_path: Path):
    path = _write_nifti(tmp_path / "ct.nii.gz", _ct())
    assert isinstance(LoadScan(), LoadImage) and isinstance(LoadScand("image"), LoadImaged)
    img = LoadScan(ensure_channel_first=True)(path)
    assert isinstance(img, MetaTensor) and img.shape == (1, 8, 8, 6)
    assert img.meta["filename_or_obj"] == str(path)
    img, meta = LoadScan(image_only=False)(str(path))
    assert img.shape == (8, 8, 6) and meta["filename_or_obj"] == str(path)
    d = LoadScand(["image"], ensure_channel_first=True, image_only=False)({"image": str(path)})
    assert d["image"].shape == (1, 8, 8, 6) and d["image_meta_dict"]["filename_or_obj"] == str(path)


@pytest.mark.parametrize("name", ["missing.nii.gz", "missing_dicom_folder"])
def test_loadscan_missing_path(tmp_path: Path, name: str):
    with pytest.raises(FileNotFoundError, match=_msg(tmp_path / name) + ": no such file or folder"):
        LoadScan()(tmp_path / name)


def test_loadscan_corrupt_nifti_random_bytes(tmp_path: Path):
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ScanInputError, match=_msg(path) + ": cannot read this image file") as err:
        LoadScan()(path)
    assert isinstance(err.value, ValueError) and err.value.filename == str(path)
    assert err.value.__cause__ is not None  # the reader's error is chained


def test_loadscan_truncated_gzip(tmp_path: Path):
    # header intact, voxel data cut: nibabel raises a bare EOFError without file name inside MONAI
    path = _write_nifti(tmp_path / "truncated.nii.gz", np.random.default_rng(0).random((32, 32, 16), dtype=np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=_msg(path) + r": cannot read .*EOFError.*truncated"):
        LoadScan(ensure_channel_first=True)(path)


def test_loadscan_truncated_uncompressed_nifti(tmp_path: Path):
    path = _write_nifti(tmp_path / "short.nii", _ct((16, 16, 8)))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 500])
    with pytest.raises(ValueError, match=_msg(path) + ": cannot read this image file"):
        LoadScan()(path)


def test_loadscan_folder_without_dicom(tmp_path: Path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    with gzip.open(folder / "x.nii.gz", "wb") as f:
        f.write(b"not dicom")
    with pytest.raises(ValueError, match=_msg(folder) + r": no DICOM series found \(expected .*readme.txt"):
        LoadScan()(folder)


def test_loadscan_unreadable_dicom(tmp_path: Path):
    folder = tmp_path / "broken_series"
    folder.mkdir()
    (folder / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)))
    with pytest.raises(ValueError, match=_msg(folder) + ": no readable DICOM series found"):
        LoadScan()(folder)


def test_loadscan_real_dicom_series_and_nifti():
    series = _shared("ct_dicom_series")
    img = LoadScan(ensure_channel_first=True)(series)
    assert img.shape == (1, 512, 512, 20)
    assert img.meta["filename_or_obj"] == str(series)
    CheckVolume(min_size=2, hu_range_check=True)(img)
    nifti = _shared("ct/chest_abdomen_ct_3mm.nii.gz")
    d = Compose([LoadScand("image", ensure_channel_first=True), CheckVolumed("image", hu_range_check=True)])(
        {"image": str(nifti)}
    )
    assert d["image"].shape == (1, 122, 101, 30)


# ------------------------------------------------------------------------------------------- CheckVolume


def test_checkvolume_2d_image_from_file(tmp_path: Path):
    path = _write_nifti(tmp_path / "slice.nii.gz", _ct((8, 8, 6))[..., 0])
    img = LoadScan(ensure_channel_first=True)(path)
    expected = _msg(path) + r": expected a 3D volume.*found shape \(1, 8, 8\).*single slice"
    with pytest.raises(ScanInputError, match=expected):
        CheckVolume()(img)
    with pytest.raises(ValueError, match=_msg(path) + r" \(key 'image'\): expected a 3D volume"):
        CheckVolumed("image")({"image": img})


def test_checkvolume_singleton_axis_with_min_size(tmp_path: Path):
    img = MetaTensor(torch.zeros(1, 8, 8, 1), meta={"filename_or_obj": str(tmp_path / "one_slice.nii.gz")})
    CheckVolume()(img)  # no min_size: a 3D array is accepted
    with pytest.raises(ValueError, match=r"one_slice.nii.gz: spatial shape \(8, 8, 1\) too small: axis 2 has 1"):
        CheckVolume(min_size=2)(img)


def test_checkvolume_channels_and_missing_filename():
    with pytest.raises(ValueError, match=r"x.nii.gz: expected 1 channel\(s\).*found 2 in shape \(2, 4, 4, 4\)"):
        CheckVolume()(MetaTensor(torch.zeros(2, 4, 4, 4), meta={"filename_or_obj": "x.nii.gz"}))
    CheckVolume(num_channels=2)(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="input array .no filename_or_obj"):
        CheckVolume()(np.zeros((4, 4, 4)))
    # plain arrays in a dictionary: the file name comes from the "<key>_meta_dict" entry
    with pytest.raises(ValueError, match=r"y.nii.gz \(key 'img'\)"):
        CheckVolumed("img")({"img": np.zeros((4, 4)), "img_meta_dict": {"filename_or_obj": "y.nii.gz"}})


def test_checkvolume_hu_range(tmp_path: Path):
    path = tmp_path / "scaled.nii.gz"
    scaled = MetaTensor(torch.rand(1, 8, 8, 6), meta={"filename_or_obj": str(path)})
    CheckVolume()(scaled)  # no HU check by default
    with pytest.raises(ValueError, match=_msg(path) + r": intensities in \[.*\] do not look like CT in Hounsfield"):
        CheckVolume(hu_range_check=True)(scaled)
    ct = MetaTensor(torch.as_tensor(_ct()[None].astype(np.float32)), meta={"filename_or_obj": str(path)})
    assert CheckVolume(hu_range_check=True)(ct) is ct


def test_checkvolume_min_size_names_count_and_expectation(tmp_path: Path):
    check = CheckVolume(min_size=8)
    for shape, axis, count in [((64, 64, 5), 2, 5), ((64, 1, 64), 1, 1), ((64, 64, 1), 2, 1)]:
        path = tmp_path / f"scan_{'x'.join(map(str, shape))}.nii.gz"
        img = MetaTensor(torch.zeros(1, *shape), meta={"filename_or_obj": str(path)})
        with pytest.raises(ScanInputError, match=_msg(path) + rf": .*axis {axis} has {count} voxel\(s\), expected at least 8"):
            check(img)
    check(MetaTensor(torch.zeros(1, 8, 8, 8)))


def _stored(values: np.ndarray, path: Path) -> MetaTensor:
    return MetaTensor(torch.as_tensor(values[None].astype(np.float32)), meta={"filename_or_obj": str(path)})


def test_checkvolume_hu_advice_names_the_rescale_settings(tmp_path: Path):
    ct = _ct((16, 16, 8)).astype(np.float32)
    keys = CheckVolume(hu_range_check=True, hu_rescale_keys=("hu_slope", "hu_intercept"))
    plain = CheckVolume(hu_range_check=True)
    # raw stored values without the -1024 intercept
    raw = tmp_path / "raw.nii.gz"
    with pytest.raises(ScanInputError, match=_msg(raw) + r": .*without the rescale intercept.*--hu_slope 1 --hu_intercept -1024\."):
        keys(_stored(ct + 1024.0, raw))
    with pytest.raises(ScanInputError, match=r"slope 1 and intercept -1024.*"):
        plain(_stored(ct + 1024.0, raw))
    # a 0-255 window-levelled image (lung window W1500 L-600)
    u8 = tmp_path / "u8.nii.gz"
    windowed = np.clip((ct + 1350.0) / 1500.0 * 255.0, 0, 255).round()
    with pytest.raises(ScanInputError, match=_msg(u8) + r": .*\[0, 255\].*Set hu_slope and hu_intercept.*--hu_slope 5.88235 --hu_intercept -1350"):
        keys(_stored(windowed, u8))
    # [0, 1]
    with pytest.raises(ScanInputError, match=r"already scaled.*--hu_slope 1500 --hu_intercept -1350"):
        keys(_stored(windowed / 255.0, u8))
    # not CT-like at all: no suggested values, still the settings
    with pytest.raises(ScanInputError, match=r"may be scaled or not be a CT\. Set hu_slope and hu_intercept .*hu_intercept\)\.$"):
        keys(_stored(np.full((8, 8, 8), 300.0) + np.arange(8), u8))
    # the suggested rescale gives HU that pass
    rescaled = windowed * (1500.0 / 255.0) - 1350.0
    keys(_stored(rescaled, u8))
    with pytest.raises(ValueError, match="two settings"):
        CheckVolume(hu_rescale_keys=("hu_slope",))


def test_checkvolumed_passes_hu_rescale_keys(tmp_path: Path):
    path = tmp_path / "raw.nii.gz"
    check = CheckVolumed("image", hu_range_check=True, hu_rescale_keys=["a", "b"])
    with pytest.raises(ValueError, match=r"raw.nii.gz \(key 'image'\).*--a 1 --b -1024"):
        check({"image": _stored(np.arange(4096, dtype=np.float32).reshape(16, 16, 16), path)})


# -------------------------------------------------------------------------------------------- CheckLabel


def _pair(tmp_path: Path, label: np.ndarray, image_shape=(8, 8, 6)):
    img = _write_nifti(tmp_path / "img.nii.gz", _ct(image_shape))
    lab = _write_nifti(tmp_path / "lab.nii.gz", label)
    return img, lab


def test_checklabel_good_pair(tmp_path: Path):
    label = np.zeros((8, 8, 6), np.uint8)
    label[2:4, 2:4, 2:4] = 3
    img, lab = _pair(tmp_path, label)
    d = LoadScand(["image", "label"], ensure_channel_first=True)({"image": str(img), "label": str(lab)})
    assert CheckLabeld("label", num_classes=4)(d)["label"] is d["label"]
    assert CheckLabel(num_classes=4)(d["label"], d["image"]) is d["label"]


def test_checklabel_shape_mismatch_names_both_files(tmp_path: Path):
    img, lab = _pair(tmp_path, np.zeros((8, 8, 5), np.uint8))
    d = LoadScand(["image", "label"], ensure_channel_first=True)({"image": str(img), "label": str(lab)})
    with pytest.raises(ScanInputError, match=r"label .*lab.nii.gz.* and image .*img.nii.gz.* differ") as err:
        CheckLabeld("label")(d)
    assert "(8, 8, 5)" in str(err.value) and "(8, 8, 6)" in str(err.value)
    with pytest.raises(ValueError, match=_msg(lab) + " and image " + _msg(img)):
        CheckLabel()(d["label"], d["image"])


def test_checklabel_values_out_of_range(tmp_path: Path):
    label = np.zeros((8, 8, 6), np.int16)
    label[0, 0, 0], label[1, 1, 1], label[2, 2, 2] = 5, -1, 3
    _, lab = _pair(tmp_path, label)
    t = LoadScan(ensure_channel_first=True)(lab)
    with pytest.raises(ValueError, match=_msg(lab) + r": label values must be in \{0, \.\.\., 3\}.*\[-1, 5\]"):
        CheckLabel(num_classes=4)(t)
    CheckLabel(num_classes=6, check_integer=True)(MetaTensor(t.clamp(min=0), meta=t.meta))


def test_checklabel_hint_follows_the_range_error(tmp_path: Path):
    lab = MetaTensor(torch.full((1, 4, 4, 4), 12.0), meta={"filename_or_obj": str(tmp_path / "ts.nii.gz")})
    with pytest.raises(ValueError, match=r"ts.nii.gz \(key 'label'\): label values must be in .*\[12\].* Use --label_mapping\.$"):
        CheckLabeld("label", image_key=None, num_classes=4, hint="Use --label_mapping.")({"label": lab})


def test_checklabel_non_integer_and_multichannel(tmp_path: Path):
    lab = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": str(tmp_path / "soft.nii.gz")})
    lab[0, 1, 1, 1] = 0.5
    with pytest.raises(ValueError, match=r"soft.nii.gz: label values must be integer.*0.5.*mode='nearest'"):
        CheckLabel(num_classes=4)(lab)
    onehot = MetaTensor(torch.zeros(4, 4, 4, 4), meta={"filename_or_obj": str(tmp_path / "onehot.nii.gz")})
    with pytest.raises(ValueError, match=r"onehot.nii.gz: expected a single-channel label.*\(4, 4, 4, 4\)"):
        CheckLabel()(onehot)


def test_checklabeld_missing_image_key():
    with pytest.raises(KeyError, match="image key 'image' not in the data"):
        CheckLabeld("label")({"label": torch.zeros(1, 2, 2, 2)})
    CheckLabeld("label", image_key=None)({"label": torch.zeros(1, 2, 2, 2)})


# ------------------------------------------------------------------------------------- inside Compose


def test_errors_inside_compose_name_the_file(tmp_path: Path):
    label = np.zeros((8, 8, 6), np.uint8)
    label[0, 0, 0] = 7
    img, lab = _pair(tmp_path, label)
    pipeline = Compose(
        [
            LoadScand(["image", "label"], ensure_channel_first=True),
            CheckVolumed("image", min_size=2, hu_range_check=True),
            CheckLabeld("label", num_classes=4),
        ]
    )
    ds = Dataset([{"image": str(img), "label": str(lab)}], transform=pipeline)
    with pytest.raises(RuntimeError, match="applying transform CheckLabeld") as err:
        ds[0]
    original = unwrap_transform_error(err.value)
    assert isinstance(original, ScanInputError) and str(lab) in str(original) and "[7]" in str(original)
    printed = "".join(traceback.format_exception(type(err.value), err.value, err.value.__traceback__))
    assert f"ScanInputError: {lab}" in printed

    with pytest.raises(RuntimeError) as err:
        pipeline({"image": str(tmp_path / "gone.nii.gz"), "label": str(lab)})
    assert isinstance(unwrap_transform_error(err.value), FileNotFoundError)
    assert str(tmp_path / "gone.nii.gz") in str(unwrap_transform_error(err.value))


def test_scaninputerror_pickles_with_filename():
    err = pickle.loads(pickle.dumps(ScanInputError("a.nii.gz: bad", filename="a.nii.gz")))
    assert isinstance(err, ValueError) and str(err) == "a.nii.gz: bad" and err.filename == "a.nii.gz"
    assert unwrap_transform_error(err) is err
