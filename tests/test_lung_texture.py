import math

import numpy as np
import pytest
import torch

from monai_ext.metrics import lung_texture

HU = (-1000.0, 500.0)


def _to_window(hu: torch.Tensor, hu_range=HU) -> torch.Tensor:
    lo, hi = hu_range
    return ((hu - lo) / (hi - lo) * 2 - 1)[None, None]


def _chest(lung_hu: torch.Tensor, hu_range=HU) -> torch.Tensor:
    """(1, 1, 32, 32, 6) in ``hu_range``: air outside, soft tissue (40 HU) wall, a 16 x 16 lung in the middle."""
    v = torch.full((32, 32, 6), -1000.0)
    v[4:28, 4:28] = 40.0
    v[8:24, 8:24] = lung_hu
    return _to_window(v, hu_range)


def test_flat_lung_has_no_texture():
    m = lung_texture(_chest(torch.full((16, 16, 6), -850.0)))
    assert m["lung_hu_p90"] == pytest.approx(-850.0, abs=0.5)
    assert m["lung_texture_rms_hu"] == pytest.approx(0.0, abs=1e-3)
    assert m["lung_patches"] == 9 * 6  # 3 x 3 whole-lung 8 x 8 windows (stride 4) per slice
    assert m["lung_fraction"] == pytest.approx(16 * 16 / (32 * 32))


def test_texture_is_the_band_passed_rms():
    x = torch.arange(16, dtype=torch.float32)
    wave = 100.0 * torch.cos(2 * math.pi * x / 4)  # 0.25 cycles per voxel: inside the default band
    lung = (-850.0 + wave)[:, None, None].expand(16, 16, 6)
    m = lung_texture(_chest(lung))
    assert m["lung_texture_rms_hu"] == pytest.approx(100.0 / math.sqrt(2), rel=1e-3)
    fine = (-850.0 + 100.0 * torch.cos(math.pi * x))[:, None, None].expand(16, 16, 6)  # 0.5 cycles: above the band
    assert lung_texture(_chest(fine))["lung_texture_rms_hu"] == pytest.approx(0.0, abs=1e-2)
    assert lung_texture(_chest(fine), band=(0.3, 0.75))["lung_texture_rms_hu"] == pytest.approx(100.0, rel=1e-3)


def test_blobs_raise_density_and_texture():
    g = torch.Generator().manual_seed(0)
    clean = -860.0 + 20.0 * torch.randn(16, 16, 6, generator=g)
    blobby = clean.clone()
    blobby[2:6, 2:6] = -500.0  # two 4 x 4 blobs: 12 % of the lung
    blobby[10:14, 9:13] = -520.0
    a, b = lung_texture(_chest(clean)), lung_texture(_chest(blobby))
    assert b["lung_hu_p90"] > a["lung_hu_p90"] + 50 and b["lung_texture_rms_hu"] > 1.5 * a["lung_texture_rms_hu"]


def test_same_hu_in_another_window_gives_the_same_numbers():
    g = torch.Generator().manual_seed(1)
    lung = -850.0 + 40.0 * torch.randn(16, 16, 6, generator=g)
    wide = (-1000.0, 1500.0)
    a, b = lung_texture(_chest(lung), HU), lung_texture(_chest(lung, wide), wide)
    for k in ("lung_hu_p90", "lung_texture_rms_hu", "lung_fraction"):
        assert a[k] == pytest.approx(b[k], rel=1e-3, abs=0.1)


def test_no_lung_gives_nan_and_bad_arguments_raise():
    m = lung_texture(torch.full((1, 1, 16, 16, 4), -1.0))  # air only
    assert m["lung_patches"] == 0 and np.isnan(m["lung_hu_p90"]) and np.isnan(m["lung_texture_rms_hu"])
    v = _chest(torch.full((16, 16, 6), -850.0))
    with pytest.raises(ValueError, match="shape"):
        lung_texture(v[0])
    with pytest.raises(ValueError, match="patch"):
        lung_texture(v, patch=2)
    with pytest.raises(ValueError, match="band"):
        lung_texture(v, band=(0.3, 0.2))
    with pytest.raises(ValueError, match="lung_hu"):
        lung_texture(v, lung_hu=(-400.0, -980.0))
    with pytest.raises(ValueError, match="quantile"):
        lung_texture(v, quantile=1.0)
