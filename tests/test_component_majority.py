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


def _joined_lungs(right_cols: int = 11):
    """Two lungs side by side along axis 0, joined by a bridge; the right one the larger (about 61 % at 11 rows)."""
    lab = np.zeros((1, 30, 20, 6), np.uint8)
    lab[0, 1 : 1 + right_cols, 4:16] = 2  # right lung
    lab[0, 19:26, 4:16] = 1  # left lung
    lab[0, 1 + right_cols : 19, 9:11, 2:4] = 2  # a thin bridge (the anterior junction), labelled right
    return lab


def test_two_whole_lungs_joined_keep_their_sides_with_a_side_axis():
    lab = _joined_lungs()
    share = (lab == 2).sum() / np.isin(lab, (1, 2)).sum()
    assert 0.6 < share < 0.7  # over min_fraction: the plain vote makes both lungs right
    assert (ComponentMajorityLabel()(lab) != 1).all()
    kept = ComponentMajorityLabel(side_axis=0)(lab)
    assert np.array_equal(kept, lab)
    # along another axis the two lungs overlap fully: the vote applies as before
    assert (ComponentMajorityLabel(side_axis=1)(lab) != 1).all()
    with pytest.raises(ValueError, match="side_axis 5"):
        ComponentMajorityLabel(side_axis=5)(lab)
    with pytest.raises(ValueError, match="side_axis must be"):
        ComponentMajorityLabel(side_axis="ap")


def test_part_of_one_lung_with_the_other_side_is_still_relabelled_with_a_side_axis():
    lab = np.zeros((1, 20, 20, 10), np.uint8)
    lab[0, 4:16, 4:16, :] = 1
    lab[0, 4:16, 4:16, :3] = 2  # the lowest slices of the same lung labelled as the other side: same L-R extent
    out = ComponentMajorityLabel(side_axis=0)(lab)
    assert (out[0][lab[0] > 0] == 1).all()


def test_lr_axis_is_read_from_the_affine():
    from monai.data import MetaTensor

    lab = _joined_lungs()
    perm = np.transpose(lab, (0, 2, 1, 3))  # the lungs now side by side along array axis 1
    affine = np.array([[0, 2.0, 0, 0], [-2.0, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])  # axis 1 is world x
    out = ComponentMajorityLabeld("pred", side_axis="lr")({"pred": MetaTensor(torch.as_tensor(perm), affine=affine)})
    assert np.array_equal(np.asarray(out["pred"]), perm)
    plain = MetaTensor(torch.as_tensor(perm), affine=np.diag([2.0, -2.0, 3.0, 1.0]))  # axis 0 is world x
    assert (np.asarray(ComponentMajorityLabel(side_axis="lr")(plain)) != 1).all()
    with pytest.raises(ValueError, match="affine"):
        ComponentMajorityLabel(side_axis="lr")(perm)
