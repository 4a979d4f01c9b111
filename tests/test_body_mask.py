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
