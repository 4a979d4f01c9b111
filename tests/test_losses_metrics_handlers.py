import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from monai.losses import DiceLoss, HausdorffDTLoss
from monai.networks import one_hot

from monai_ext.handlers import TimeLimitHandler
from monai_ext.losses import DiceHausdorffDTLoss
from monai_ext.metrics import SpacingAwareSurfaceDiceMetric, spacing_from_affine


def _cube(shape=(24, 24, 24), lo=6, hi=18, shift=0):
    y = torch.zeros(1, 1, *shape)
    y[..., lo + shift : hi + shift, lo:hi, lo:hi] = 1
    return y


def test_dice_hausdorff_is_weighted_sum_of_monai_losses():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 16, 16, 16)
    target = torch.randint(0, 3, (2, 1, 16, 16, 16)).float()
    loss = DiceHausdorffDTLoss(lambda_dice=0.7, lambda_hd=0.2)(logits, target)
    kw = dict(to_onehot_y=True, softmax=True, include_background=False)
    expected = 0.7 * DiceLoss(**kw)(logits, target) + 0.2 * HausdorffDTLoss(**kw)(logits, target)
    assert torch.allclose(loss, expected, atol=1e-5)


def test_dice_hausdorff_prefers_the_right_answer_and_backprops():
    target = _cube()
    good = torch.cat([-5 * target + 2.5, 5 * target - 2.5], 1)
    bad = torch.cat([-5 * _cube(shift=5) + 2.5, 5 * _cube(shift=5) - 2.5], 1).requires_grad_(True)
    f = DiceHausdorffDTLoss()
    assert f(good, target) < f(bad, target)
    f(bad, target).backward()
    assert bad.grad is not None and bad.grad.abs().sum() > 0


def test_dice_hausdorff_rejects_negative_weights():
    with pytest.raises(ValueError, match="lambda"):
        DiceHausdorffDTLoss(lambda_hd=-1)


def test_spacing_from_affine_handles_rotation_and_batches():
    rot = np.array([[0, -2.0, 0, 5], [1.5, 0, 0, 3], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    assert np.allclose(spacing_from_affine(rot), [1.5, 2.0, 3.0])
    assert np.allclose(spacing_from_affine(np.stack([rot, np.eye(4)])), [[1.5, 2.0, 3.0], [1, 1, 1]])


def test_surface_dice_uses_the_label_spacing_in_mm():
    y, p = _cube(), _cube(shift=1)  # boundary off by one voxel along the first axis
    pred = one_hot(p, 2)[0]
    results = {}
    for mm in (1.0, 2.0):
        ref = MetaTensor(one_hot(y, 2)[0], affine=torch.diag(torch.tensor([mm, mm, mm, 1.0])))
        metric = SpacingAwareSurfaceDiceMetric(class_thresholds=[1.5])
        results[mm] = float(metric([pred], [ref]))
    assert results[1.0] == pytest.approx(1.0)  # 1 mm error within 1.5 mm tolerance
    assert results[2.0] < 0.8  # 2 mm error outside it


def test_surface_dice_default_spacing_for_plain_tensors():
    y, p = _cube(), _cube(shift=1)
    metric = SpacingAwareSurfaceDiceMetric(class_thresholds=[1.5], default_spacing=2.0)
    assert float(metric(one_hot(p, 2), one_hot(y, 2))) < 0.8


def test_time_limit_handler_stops_engine():
    import time

    def step(engine, batch):
        time.sleep(0.01)

    engine = Engine(step)
    TimeLimitHandler(limit_sec=0.05).attach(engine)
    engine.run(range(3), max_epochs=1000)
    assert 1 <= engine.state.epoch < 20


def test_time_limit_disabled_with_zero():
    engine = Engine(lambda e, b: None)
    TimeLimitHandler(limit_sec=0).attach(engine)
    engine.run(range(2), max_epochs=7)
    assert engine.state.epoch == 7


def test_short_target_resolves_when_monai_ext_is_imported_by_the_config_only():
    """The bundle runner builds its component table lazily; `$import monai_ext` in `imports` must come first."""
    code = textwrap.dedent(
        """
        import sys
        from monai.bundle import ConfigParser
        assert 'monai_ext' not in sys.modules
        p = ConfigParser({'imports': ['$import monai_ext'], 'loss': {'_target_': 'DiceHausdorffDTLoss'}})
        print(type(p.get_parsed_content('loss')).__name__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("DiceHausdorffDTLoss")


def test_mask_dice_of_two_masks_and_of_two_empty_ones():
    from monai_ext.metrics import mask_dice

    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert mask_dice(a, b) == pytest.approx(0.5)
    assert np.isnan(mask_dice(a & False, b & False)) and mask_dice(a & False, b & False, empty=1.0) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        mask_dice(a, b[:2])
