import numpy as np
import pytest
import torch

from monai_ext.transforms import ComponentMajorityLabel, ComponentMajorityLabeld


def _two_lungs():
    lab = np.zeros((1, 30, 20, 6), np.uint8)
    lab[0, 2:12, 4:16] = 2  # right lung
    lab[0, 18:28, 4:16] = 1  # left lung
    lab[0, 20:24, 5:8] = 2  # part of the left lung labelled right (30 of 240 voxels per slice... 12 of 120)
    lab[0, 22, 10, :] = 3  # infection inside the left lung
    return lab


@pytest.mark.parametrize("as_tensor", [False, True])
def test_each_lung_gets_its_majority_side(as_tensor):
    lab = _two_lungs()
    x = torch.as_tensor(lab) if as_tensor else lab
    out = ComponentMajorityLabel(labels=(1, 2))(x)
    assert type(out) is type(x) and out.shape == x.shape
    out = np.asarray(out)[0]
    assert (out[18:28, 4:16][out[18:28, 4:16] != 3] == 1).all()  # the left lung is left throughout
    assert (out[2:12, 4:16] == 2).all() and (out[22, 10] == 3).all()  # right lung and infection unchanged


def test_even_split_is_left_alone_and_one_hot_input():
    lab = np.zeros((1, 20, 10, 4), np.uint8)
    lab[0, 2:18, 2:8] = 1
    lab[0, 10:18, 2:8] = 2  # one component, half and half: not decided
    assert np.array_equal(ComponentMajorityLabel()(lab), lab)
    onehot = (np.arange(4)[:, None, None, None] == _two_lungs()[0][None]).astype(np.float32)
    out = ComponentMajorityLabeld("pred")({"pred": onehot})["pred"]
    assert out.shape == onehot.shape and np.allclose(out.sum(0), 1.0)
    assert np.array_equal(out.argmax(0), ComponentMajorityLabel()(_two_lungs())[0])
    with pytest.raises(ValueError, match="min_fraction"):
        ComponentMajorityLabel(min_fraction=0.4)
