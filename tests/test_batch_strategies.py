"""Mixup and FGSM batches (monai_ext.engines) and the soft-label Dice + CE loss they go with (monai_ext.losses)."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss
from monai.networks.utils import one_hot
from monai.utils import set_determinism
from torch import nn

from monai_ext.engines import FGSMPrepareBatch, MixupPrepareBatch, mixup_partners
from monai_ext.losses import SoftLabelDiceCELoss


def _batch(n=3, classes=4, shape=(6, 5, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 1, *shape, generator=g),
            "label": torch.randint(0, classes, (n, 1, *shape), generator=g).to(torch.uint8)}


# ----------------------------------------------------------------------------- mixup


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_mixup_partners_never_pair_a_sample_with_itself(n):
    for seed in range(20):
        partner = mixup_partners(n, torch.Generator().manual_seed(seed))
        assert sorted(partner.tolist()) == list(range(n))  # a permutation
        assert all(partner[i] != i for i in range(n))


def test_mixup_is_a_convex_combination_with_labels_summing_to_one():
    batch = _batch()
    prep = MixupPrepareBatch(num_classes=4, alpha=0.4)
    images, labels = prep(batch)
    lam, partner = prep.last_lambda, prep.last_partner
    assert lam.shape == (3,) and bool(((lam >= 0) & (lam <= 1)).all())
    hard = one_hot(batch["label"].long(), 4, dim=1)
    view = lam.view(3, 1, 1, 1, 1)
    torch.testing.assert_close(images, view * batch["image"] + (1 - view) * batch["image"][partner])
    torch.testing.assert_close(labels, view * hard + (1 - view) * hard[partner])
    assert labels.shape == (3, 4, 6, 5, 4) and labels.dtype == torch.float32
    torch.testing.assert_close(labels.sum(1), torch.ones(3, 6, 5, 4))
    assert float(labels.min()) >= 0.0 and float(labels.max()) <= 1.0
    # every mixed image lies between the two it came from
    lo = torch.minimum(batch["image"], batch["image"][partner])
    hi = torch.maximum(batch["image"], batch["image"][partner])
    assert bool(((images >= lo - 1e-6) & (images <= hi + 1e-6)).all())


def test_mixup_is_reproducible_under_set_determinism():
    batch = _batch()
    out = []
    for _ in range(2):
        set_determinism(seed=7)
        out.append(MixupPrepareBatch(4)(batch))
    set_determinism(seed=None)
    torch.testing.assert_close(out[0][0], out[1][0])
    torch.testing.assert_close(out[0][1], out[1][1])


def test_mixup_draws_follow_beta_alpha_alpha():
    torch.manual_seed(0)
    prep = MixupPrepareBatch(4, alpha=0.4)
    lams = torch.cat([(prep(_batch(n=8, shape=(2, 2, 2))), prep.last_lambda)[1] for _ in range(250)])
    assert abs(float(lams.mean()) - 0.5) < 0.05
    assert abs(float(lams.var()) - 0.25 / 1.8) < 0.02  # Beta(a, a): variance 1 / (4 (2a + 1))


def test_mixup_needs_two_samples_and_valid_labels():
    with pytest.raises(ValueError, match="needs at least 2"):
        MixupPrepareBatch(4)(_batch(n=1))
    bad = _batch()
    bad["label"][0, 0, 0, 0, 0] = 4
    with pytest.raises(ValueError, match="outside 0..3"):
        MixupPrepareBatch(4)(bad)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        MixupPrepareBatch(4, alpha=0.0)


def test_mixup_with_prob_zero_returns_one_hot_labels_unmixed():
    batch = _batch()
    prep = MixupPrepareBatch(4, prob=0.0)
    images, labels = prep(batch)
    assert prep.last_lambda is None
    torch.testing.assert_close(images, batch["image"])
    torch.testing.assert_close(labels, one_hot(batch["label"].long(), 4, dim=1).float())


# ----------------------------------------------------------------------------- FGSM


def _net(seed=0, norm=False):
    torch.manual_seed(seed)
    layers = [nn.Conv3d(1, 6, 3, padding=1)] + ([nn.BatchNorm3d(6)] if norm else []) + [nn.Tanh(),
                                                                                         nn.Conv3d(6, 4, 3, padding=1)]
    return nn.Sequential(*layers)


def test_fgsm_moves_every_voxel_by_epsilon_towards_a_higher_loss():
    net, loss = _net().eval(), DiceCELoss(to_onehot_y=True, softmax=True)
    batch = _batch(n=2, shape=(8, 8, 8))
    batch["image"] = 0.1 + 0.8 * batch["image"]  # away from the clip range
    prep = FGSMPrepareBatch(net, loss, epsilon_hu=15.0, hu_per_unit=1500.0)
    images, labels = prep(batch)
    assert images.shape[0] == 4 and prep.last_applied
    torch.testing.assert_close(images[:2], batch["image"])
    torch.testing.assert_close(labels, torch.cat([batch["label"], batch["label"]]))
    adv = images[2:]
    step = adv - batch["image"]
    torch.testing.assert_close(step.abs(), torch.full_like(step, 0.01), rtol=0, atol=1e-6)
    grad = prep.input_gradient(batch["image"], batch["label"])
    assert bool((torch.sign(step) == torch.sign(grad)).all())
    with torch.no_grad():
        assert float(loss(net(adv), batch["label"])) > float(loss(net(batch["image"]), batch["label"]))


def test_fgsm_clips_to_the_window():
    net, loss = _net(), DiceCELoss(to_onehot_y=True, softmax=True)
    batch = _batch(n=2, shape=(6, 6, 6))
    batch["image"][0] = 0.0
    batch["image"][1] = 1.0
    adv = FGSMPrepareBatch(net, loss, epsilon_hu=30.0)(batch)[0][2:]
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert torch.isin(adv[0].unique(), torch.tensor([0.0, 0.02])).all()


def test_fgsm_leaves_parameter_grads_mode_and_batch_norm_statistics_alone():
    net, loss = _net(norm=True), DiceCELoss(to_onehot_y=True, softmax=True)
    batch = _batch(n=2, shape=(6, 6, 6))
    net.eval()
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.5)
    buffers = [b.clone() for b in net.buffers()]
    with torch.no_grad():  # also when called where gradients are off
        FGSMPrepareBatch(net, loss, train_mode=True)(batch)
    assert not net.training
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers()))
    net.train()
    for p in net.parameters():
        p.grad = None
    FGSMPrepareBatch(net, loss)(batch)
    assert net.training and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers()))


def test_fgsm_with_amp_takes_the_same_step():
    net, loss = _net().eval(), DiceCELoss(to_onehot_y=True, softmax=True)
    batch = _batch(n=2, shape=(8, 8, 8))
    batch["image"] = 0.1 + 0.8 * batch["image"]
    plain = FGSMPrepareBatch(net, loss)(batch)[0][2:]
    amp = FGSMPrepareBatch(net, loss, amp=True)(batch)[0][2:]  # bfloat16 autocast on the CPU
    step = (amp - batch["image"]).abs()
    moved = torch.isclose(step, torch.full_like(step, 0.01), rtol=0, atol=1e-6)
    # sign(0) = 0: where the bfloat16 gradient underflows to exactly 0 the value stays (seen for 1 of 1024 values in
    # a CI run; the thread count changes the summation order); every other value moves by epsilon
    assert bool((moved | (step < 1e-6)).all()) and float(moved.float().mean()) > 0.99
    assert float((torch.sign(amp - batch["image"]) == torch.sign(plain - batch["image"])).float().mean()) > 0.8


def test_fgsm_prob_zero_or_epsilon_zero_returns_the_clean_batch_and_bad_arguments_are_refused():
    net, loss = _net(), DiceCELoss(to_onehot_y=True, softmax=True)
    batch = _batch(n=2)
    for prep in (FGSMPrepareBatch(net, loss, prob=0.0), FGSMPrepareBatch(net, loss, epsilon_hu=0.0)):
        images, labels = prep(batch)
        assert images.shape[0] == 2 and not prep.last_applied
    with pytest.raises(ValueError, match="hu_per_unit"):
        FGSMPrepareBatch(net, loss, hu_per_unit=0.0)
    with pytest.raises(ValueError, match="epsilon_hu"):
        FGSMPrepareBatch(net, loss, epsilon_hu=-1.0)


# ----------------------------------------------------------------------------- soft-label loss


def test_soft_label_dice_ce_equals_dice_ce_on_hard_labels():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, 6)
    labels = torch.randint(0, 4, (2, 1, 6, 6, 6))
    ref = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)(logits, labels)
    soft = SoftLabelDiceCELoss(softmax=True, batch=True)(logits, one_hot(labels, 4, dim=1))
    torch.testing.assert_close(soft, ref)


def test_soft_label_dice_is_minimal_at_the_soft_target_where_monai_dice_ce_is_not():
    torch.manual_seed(0)
    target = torch.softmax(torch.randn(2, 4, 6, 6, 6), dim=1)  # soft labels, sum 1 per voxel
    logits = torch.log(target)  # softmax(logits) == target
    kw = dict(softmax=True, lambda_ce=0.0)
    assert float(SoftLabelDiceCELoss(**kw)(logits, target)) < 1e-4
    assert float(DiceCELoss(**kw)(logits, target)) > 0.05  # the hard-label Dice formula, not minimal at p = t


# ----------------------------------------------------------------------------- the shared batch start


def test_both_strategies_need_a_label_and_get_plain_tensors():
    from monai.data import MetaTensor

    from monai_ext.engines import labelled_batch_tensors

    batch = _batch(n=2)
    meta = {"image": MetaTensor(batch["image"]), "label": MetaTensor(batch["label"])}
    images, labels = labelled_batch_tensors(meta, "cpu", False, "X", "x needs it")
    assert type(images) is torch.Tensor and type(labels) is torch.Tensor
    assert torch.equal(images, batch["image"]) and torch.equal(labels, batch["label"])
    net = nn.Conv3d(1, 4, 1)
    for prep, message in [(MixupPrepareBatch(num_classes=4), "MixupPrepareBatch: the batch has no 'label'; mixup"),
                          (FGSMPrepareBatch(net, DiceCELoss(to_onehot_y=True, softmax=True)),
                           "FGSMPrepareBatch: the batch has no 'label'; the adversarial step")]:
        with pytest.raises(ValueError, match=message):
            prep({"image": batch["image"]})
