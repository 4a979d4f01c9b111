"""Paper 000's other strategies in covid19_ct_fewshot_seg (issue 32) through the bundle configs: network_name (unet |
vnet), batch_strategy (none | mixup | fgsm), every augmentation, save_cam in inference, and clear errors for bad
values. One tiny training iteration each (6 mm voxels, 32^3 patches, one training volume)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_ext.bundle_helpers import run_bundle
from monai_ext.phantoms import synthesize_dataset

from covid_bundle_settings import BUNDLE, CONFIGS, TINY
from error_chain import error_text

AUGMENTATIONS = ["none", "bigaug", "fbpaug", "perlin", "gamma", "noise", "windowing"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("covid_strategies")
    synthesize_dataset(d, cases=5, seed=5, shape=(48, 48, 32), spacing=(6.0, 6.0, 6.0), progress=False)
    cases = sorted((d / "imagesTr").glob("*.nii.gz"))
    pairs = [{"image": str(p), "label": str(d / "labelsTr" / p.name)} for p in cases]
    return {"dir": d, "datalist": {"training": pairs[:1], "validation": pairs[1:3], "testing": pairs[3:4]}}


def _train_overrides(data, root, **kw) -> dict:
    return {"bundle_root": str(root), "datalist": data["datalist"], "max_epochs": 1, "val_interval": 10,
            "train#trainer#epoch_length": 1, **TINY, **kw}


# network x batch strategy, every augmentation on the way (the rest, chained, in the last one)
COMBOS = [
    ("unet", "none", "fbpaug"),
    ("unet", "mixup", "perlin"),
    ("unet", "fgsm", "gamma"),
    ("vnet", "none", "noise"),
    ("vnet", "mixup", "windowing"),
    ("vnet", "fgsm", "bigaug+fbpaug+perlin+gamma+noise+windowing"),
]


@pytest.mark.parametrize("network_name, batch_strategy, augmentation", COMBOS)
def test_network_strategy_and_augmentation_train_one_iteration(data, tmp_path, network_name, batch_strategy,
                                                               augmentation):
    root = tmp_path / "bundle"
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    parser.update(_train_overrides(data, root, network_name=network_name, batch_strategy=batch_strategy,
                                   augmentation=augmentation))
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    out = trainer.state.output  # decollated: one dict per sample of the last batch
    assert len(out) == (4 if batch_strategy == "fgsm" else 2)  # 2 patches (+ 2 adversarial copies)
    label = out[0]["label"]
    if batch_strategy == "mixup":
        assert label.shape[0] == 4 and torch.allclose(label.sum(0), torch.ones(()), atol=1e-5)
    else:
        assert label.shape[0] == 1
    assert np.isfinite(float(out[0]["loss"]))
    state = torch.load(root / "models" / "model_final.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("in_tr.") for k in state) == (network_name == "vnet"), sorted(state)[:3]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def _train_parser(data, **kw) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    parser.update({"datalist": data["datalist"], **TINY, **kw})
    return parser


def test_strategies_select_prepare_batch_and_matching_loss(data):
    from monai.engines import PrepareBatchDefault
    from monai.losses import DiceCELoss

    from monai_ext.engines import FGSMPrepareBatch, MixupPrepareBatch
    from monai_ext.losses import SoftLabelDiceCELoss

    default = _train_parser(data)
    assert isinstance(default.get_parsed_content("prepare_batch"), PrepareBatchDefault)
    loss = default.get_parsed_content("loss")
    assert type(loss) is DiceCELoss and loss.dice.to_onehot_y  # the default is unchanged
    mixup = _train_parser(data, batch_strategy="mixup")
    assert isinstance(mixup.get_parsed_content("prepare_batch"), MixupPrepareBatch)
    loss = mixup.get_parsed_content("loss")
    assert isinstance(loss, SoftLabelDiceCELoss) and not loss.dice.to_onehot_y and loss.dice.soft_label
    fgsm = _train_parser(data, batch_strategy="fgsm")
    prep = fgsm.get_parsed_content("prepare_batch")
    assert isinstance(prep, FGSMPrepareBatch) and prep.network is fgsm.get_parsed_content("network")
    assert prep.epsilon == pytest.approx(15.0 / 1500.0)


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_every_augmentation_gives_patches_in_the_window(data, augmentation):
    parser = _train_parser(data, augmentation=augmentation, samples_per_volume=2)
    sample = parser.get_parsed_content("train#dataset")[0]
    assert len(sample) == 2
    for s in sample:
        img = s["image"]
        assert tuple(img.shape) == (1, 32, 32, 32) and torch.isfinite(img).all()
        if augmentation in ("fbpaug", "perlin", "windowing", "gamma", "none"):
            assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0, augmentation


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("network_name", "resnet", "unet | vnet"),
        ("batch_strategy", "cutmix", "none | mixup | fgsm"),
        ("augmentation", "bigaug+elastic", "none | bigaug | fbpaug | perlin | gamma | noise | windowing"),
    ],
)
def test_bad_value_names_the_key_and_the_allowed_values(data, tmp_path, key, value, allowed):
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["train.yaml"], **_train_overrides(data, tmp_path / "b", **{key: value}))
    text = error_text(excinfo)
    assert f"{key} must be one of: {allowed}" in text and repr(value) in text, text


def test_mixup_with_a_hard_label_loss_or_one_patch_is_refused(data, tmp_path):
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["train.yaml"], **_train_overrides(data, tmp_path / "b", batch_strategy="mixup",
                                                              loss_name="hausdorff"))
    text = error_text(excinfo)
    assert "loss_name must be one of: weighted_ce | dice | dice_ce" in text and "soft labels" in text, text
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["train.yaml"], **_train_overrides(data, tmp_path / "c", batch_strategy="mixup",
                                                              samples_per_volume=1))
    assert "needs batch_size x samples_per_volume >= 2; got 1 x 1" in error_text(excinfo)


def test_inference_save_cam_writes_a_map_on_the_input_grid(data, tmp_path):
    from monai.networks.nets import UNet

    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    torch.manual_seed(0)
    net = UNet(3, 1, 4, [4, 8, 16, 32], [2, 2, 2], num_res_units=1, norm="batch")
    torch.save(net.state_dict(), root / "models" / "model.pt")
    image = Path(data["datalist"]["testing"][0]["image"])
    out = tmp_path / "out"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(image), output_dir=str(out),
               save_cam=True, **{k: v for k, v in TINY.items() if k != "patch_size"})
    name = image.name[: -len(".nii.gz")]
    cam, src = nib.load(out / f"{name}_cam.nii.gz"), nib.load(image)
    assert (out / f"{name}_seg.nii.gz").is_file()
    assert cam.shape == src.shape and cam.get_data_dtype() == np.float32
    np.testing.assert_allclose(cam.affine, src.affine, atol=1e-4)
    values = np.asarray(cam.dataobj)
    assert np.isfinite(values).all() and values.min() >= -1e-6 and values.max() <= 1.0 + 1e-6 and values.max() > 0


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_multi_gpu_config_trains_with_fgsm(data, tmp_path):
    """multi_gpu_train.yaml (DistributedDataParallel, two CPU processes, 2 iterations) with FGSM, whose input-gradient
    pass runs on the module inside the wrapper."""
    import json
    import os
    import subprocess
    import sys

    overrides = _train_overrides(data, tmp_path / "ddp", batch_strategy="fgsm", augmentation="none", max_epochs=2)
    overrides.pop("device")
    args = []
    for k, v in overrides.items():
        args += [f"--{k}", json.dumps(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "monai.bundle", "run", "--config_file",
           json.dumps([str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml")]),
           "--meta_file", str(CONFIGS / "metadata.json"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(tmp_path / "ddp" / "models" / "model_final.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)


@pytest.mark.parametrize("finetune", ["decoder", "last"])
def test_finetune_modes_train_only_their_part(data, tmp_path, finetune):
    """pretrained_ckpt + finetune: the frozen encoder keeps the source weights after a training step, the trained part
    moves; decoder/last without pretrained_ckpt is refused by name."""
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    parser.update(_train_overrides(data, tmp_path / "src"))
    source = parser.get_parsed_content("network_def")
    src = tmp_path / "source.pt"
    torch.save(source.state_dict(), src)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    parser.update(_train_overrides(data, tmp_path / "ft", pretrained_ckpt=str(src), finetune=finetune,
                                   learning_rate=0.05))
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("train#trainer").run()
    net = parser.get_parsed_content("network")
    before = torch.load(src, weights_only=True)
    after = net.state_dict()
    first_conv = "model.0.conv.unit0.conv.weight"  # encoder: frozen in both modes
    assert torch.equal(before[first_conv], after[first_conv])
    moved = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert moved and all(not k.startswith("model.0.") for k in moved), moved
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "train.yaml", **_train_overrides(data, tmp_path / "bad", finetune=finetune))
    assert f"finetune='{finetune}' needs pretrained weights" in error_text(excinfo)
