import numpy as np
import pytest
import torch

from monai_ext.transforms import RemoveDarkComponents, RemoveDarkComponentsd


def _scene():
    """HU: soft tissue with a lung (-850 HU, with -950 HU emphysema inside) and a gas pocket (-1000 HU); the model
    labelled both as lung (one-hot, label 1)."""
    hu = np.full((1, 40, 30, 6), 40.0, np.float32)
    hu[0, 2:20, 5:25] = -850.0
    hu[0, 5:9, 8:12] = -950.0  # emphysema inside the lung
    hu[0, 28:34, 10:16] = -1000.0  # bowel gas
    pred = np.zeros((4, 40, 30, 6), np.float32)
    pred[0] = 1.0
    for box in ((slice(2, 20), slice(5, 25)), (slice(28, 34), slice(10, 16))):
        pred[(slice(None),) + box] = np.array([0, 1, 0, 0], np.float32)[:, None, None, None]
    return pred, hu


@pytest.mark.parametrize("as_tensor", [False, True])
def test_gas_labelled_lung_is_removed_and_the_lung_kept(as_tensor):
    pred, hu = _scene()
    if as_tensor:
        pred, hu = torch.as_tensor(pred), torch.as_tensor(hu)
    out = RemoveDarkComponents(threshold=-960.0, labels=(1, 2))(pred, hu)
    assert type(out) is type(pred)
    lab = np.asarray(out).argmax(0)
    assert (lab[2:20, 5:25] == 1).all()  # the lung, emphysema included
    assert (lab[28:34, 10:16] == 0).all()  # the gas pocket
    assert np.allclose(np.asarray(out).sum(0), 1.0)


def test_dictionary_form_and_grid_check():
    pred, hu = _scene()
    d = RemoveDarkComponentsd("pred", image_key="image", threshold=-960.0)({"pred": pred, "image": hu})
    assert (d["pred"].argmax(0)[28:34, 10:16] == 0).all()
    with pytest.raises(ValueError, match="must share the spatial grid"):
        RemoveDarkComponents(-960.0)(pred[:, :20], hu)
