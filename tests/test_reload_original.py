import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, Orientationd, Spacingd

from monai_ext.transforms import (
    LoadScand,
    ReloadOriginal,
    ReloadOriginald,
    ScanInputError,
)


def test_reload_undoes_resampling_and_reorientation(tmp_path):
    lab = np.zeros((20, 16, 12), np.uint8)
    lab[5:12, 4:9, 3:8] = 2
    affine = np.diag([-1.5, -1.5, 2.5, 1.0])
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(lab, affine), path)
    pre = Compose([
        LoadScand(keys="label", image_only=True),
        EnsureChannelFirstd(keys="label"),
        Orientationd(keys="label", axcodes="RAS"),
        Spacingd(keys="label", pixdim=(3.0, 3.0, 3.0), mode="nearest"),
    ])
    d = pre({"label": str(path)})
    assert d["label"].shape[1:] != lab.shape  # really transformed
    out = ReloadOriginald(keys="label")(d)["label"]
    assert tuple(out.shape) == (1, *lab.shape)
    np.testing.assert_array_equal(out[0].numpy(), lab)
    np.testing.assert_allclose(out.affine.numpy(), affine, atol=1e-6)


def test_reload_without_a_source_file_is_an_error():
    with pytest.raises(ScanInputError, match="no filename_or_obj"):
        ReloadOriginal()(MetaTensor(torch.zeros(1, 4, 4, 4)), name="label")
