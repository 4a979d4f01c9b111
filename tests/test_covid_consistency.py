"""Label-free consistency checks of the COVID-19 lung model (issue 28): the copies and their geometry, and the
check itself on the real CT in ../shared/data."""

import math

import numpy as np
import pytest

from monai_ext.apps.covid19_ct_fewshot_seg.consistency import DEFAULT_VARIANTS, consistency_check, scan_variants
from monai_ext.bundle_helpers import shared_data_dir
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

