import numpy as np
import pytest
import torch

from monai_ext.transforms import MaskOutsideBody, MaskOutsideBodyd, body_outline


def _scene():
    """HU volume: air, an elliptical body (soft tissue) holding a lung (air hole), a table below it."""
    x, y, z = np.mgrid[:40, :40, :8]
    hu = np.full((40, 40, 8), -1000.0, np.float32)
    body = ((x - 20) / 15) ** 2 + ((y - 18) / 12) ** 2 < 1
    lung = ((x - 20) / 7) ** 2 + ((y - 18) / 5) ** 2 < 1
    hu[body] = 40.0
    hu[lung] = -850.0
    hu[:, 34:36, :] = 200.0  # table, separate from the body
    return hu[None], body, lung


@pytest.mark.parametrize("as_tensor", [False, True])
def test_prediction_outside_the_body_becomes_background(as_tensor):
    hu, body, lung = _scene()
    assert body_outline(hu, -500.0)[lung].all()  # the lung hole counts as body
    pred = np.zeros((4, 40, 40, 8), np.float32)
    pred[0] = 1
    pred[:, lung] = [[0], [1], [0], [0]]  # lung correctly labelled 1
    pred[:, 20:30, 37:40, :] = np.array([0, 0, 1, 0], np.float32)[:, None, None, None]  # false lung below the table
    if as_tensor:
        pred, hu = torch.as_tensor(pred), torch.as_tensor(hu)
    out = MaskOutsideBody(threshold=-500.0)(pred, hu)
    out = np.asarray(out)
    assert (out.argmax(0)[lung] == 1).all()
    assert (out.argmax(0)[20:30, 37:40, :] == 0).all()
    assert np.allclose(out.sum(0), 1.0)


def test_dictionary_form_and_grid_check():
    hu, _, _ = _scene()
    pred = np.zeros((4, 40, 40, 8), np.float32)
    d = MaskOutsideBodyd(keys="pred", image_key="image", threshold=-500.0)({"pred": pred, "image": hu})
    assert d["pred"].shape == pred.shape
    with pytest.raises(ValueError, match="must share the spatial grid"):
        MaskOutsideBody(-500.0)(pred[:, :20], hu)


def test_lung_cut_by_the_field_of_view_stays_inside_the_body():
    """A field of view that cuts the body at both sides leaves the lungs open to the image border; they are
    still inside the outline, while the air in front of the body and the table stay outside."""
    x, y, z = np.mgrid[:40, :40, :8]
    hu = np.full((40, 40, 8), -1000.0, np.float32)
    body = ((x - 20) / 26) ** 2 + ((y - 18) / 12) ** 2 < 1  # wider than the image: cut at x = 0 and 39
    hu[body] = 40.0
    lungs = (((np.abs(x - 20) - 14) / 9) ** 2 + ((y - 18) / 6) ** 2 < 1) & body
    hu[lungs] = -850.0
    hu[:, 34:36, :] = 200.0  # table
    assert lungs[0].any() and lungs[-1].any()  # both lungs reach the border
    outline = body_outline(hu[None], -500.0)
    assert outline[lungs].all()
    assert not outline[:, :3].any()  # air in front of the body
    assert not outline[:, 34:40].any()  # table and below
    pred = np.zeros((4, 40, 40, 8), np.float32)
    pred[0] = 1
    pred[:, lungs] = np.array([0, 1, 0, 0], np.float32)[:, None]
    out = MaskOutsideBody(threshold=-500.0)(pred, hu[None])
    assert (out.argmax(0)[lungs] == 1).all()
