"""Ecosystem conformance of the bundles: Model Zoo zip, MLflow tracking, multi-GPU (DDP) config.

The DDP config is checked with two CPU processes (gloo backend) under torchrun: the same code path as
on GPUs except for the device and the backend.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from monai.bundle import download, load, load_bundle_config
from monai.networks.nets import UNet

from monai_ext.bundle_helpers import run_bundle
from monai_ext.cli.packaging import BundlePackageError, package_bundle
from monai_ext.phantoms import synthesize_dataset

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "covid19_ct_fewshot_seg"
TINY = {
    "pixdim": [6.0, 6.0, 6.0],
    "patch_size": [32, 32, 32],
    "roi_size": [32, 32, 32],
    "network_def#channels": [4, 8, 16, 32],
    "network_def#num_res_units": 1,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("conformance_data")
    synthesize_dataset(d, cases=7, seed=3, shape=(64, 64, 48), spacing=(5.0, 5.0, 5.0), progress=False)
    return d


def _bundle_copy(tmp_path: Path) -> Path:
    dst = tmp_path / BUNDLE.name
    shutil.copytree(BUNDLE, dst, ignore=shutil.ignore_patterns("data", "eval", "logs", "__pycache__"))
    return dst


def test_package_zip_downloads_and_loads_with_monai(tmp_path):
    bundle = _bundle_copy(tmp_path)
    if not (bundle / "models" / "model.pt").is_file():
        pytest.skip("bundle has no committed weights")
    (bundle / "models" / "model_final.pt").write_bytes(b"last epoch of a local run")
    (bundle / "eval").mkdir()
    (bundle / "eval" / "metrics.csv").write_text("x")

    zip_path = package_bundle(bundle, out_dir=tmp_path / "dist", verify=False)
    assert zip_path.name == "covid19_ct_fewshot_seg.zip"
    names = set(zipfile.ZipFile(zip_path).namelist())
    prefix = "covid19_ct_fewshot_seg/"
    for required in ("configs/metadata.json", "configs/inference.yaml", "configs/train.yaml", "models/model.pt",
                     "models/model.ts", "docs/README.md", "LICENSE"):
        assert prefix + required in names, required
    assert prefix + "models/model_final.pt" not in names
    assert not any(n.startswith(prefix + "eval/") for n in names)

    parser = load_bundle_config(str(zip_path), "inference.yaml")
    assert parser["network_def"]["_target_"] == "UNet"

    dl = tmp_path / "downloaded"
    download(name="covid19_ct_fewshot_seg", url=zip_path.as_uri(), bundle_dir=str(dl), progress=False)
    ts, meta, _ = load("covid19_ct_fewshot_seg", bundle_dir=str(dl), load_ts_module=True, device="cpu", progress=False)
    assert meta["version"] == json.loads((bundle / "configs" / "metadata.json").read_text())["version"]
    net = UNet(3, 1, 4, [16, 32, 64, 128], [2, 2, 2], num_res_units=2, norm="batch")
    net = load("covid19_ct_fewshot_seg", bundle_dir=str(dl), model=net, device="cpu", progress=False).eval()
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), ts(x), atol=1e-4)


def test_package_refuses_a_bundle_that_fails_a_check(tmp_path):
    bundle = _bundle_copy(tmp_path)
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    del meta["intended_use"]
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundlePackageError, match=r"covid19_ct_fewshot_seg.*\n- check metadata:.*intended_use"):
        package_bundle(bundle, out_dir=tmp_path / "dist")
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_cli_package_writes_the_zip(tmp_path):
    bundle = _bundle_copy(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "monai_ext", "package", str(bundle), "--out", str(tmp_path / "dist"), "--noverify"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "dist" / "covid19_ct_fewshot_seg.zip")


def test_mlflow_tracking_records_train_loss_and_validation(tmp_path, data):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    root = tmp_path / "root"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(data), max_epochs=2, val_interval=1,
               tracking="mlflow", device="$torch.device('cpu')", **TINY)
    db = root / "eval" / "mlruns.db"
    assert db.is_file()
    with sqlite3.connect(db) as con:
        keys = {k for (k,) in con.execute("select distinct key from metrics")}
        status = [s for (s,) in con.execute("select status from runs")]
    assert {"train_loss", "val_mean_dice", "val_mean_nsd"} <= keys, keys
    assert status == ["FINISHED"]
    assert not any(p.name.startswith("config_") for p in (root / "models").iterdir())  # records stay out of models/


def test_multi_gpu_config_trains_with_two_processes(tmp_path, data):
    root = tmp_path / "ddp"
    configs = [str(BUNDLE / "configs" / "train.yaml"), str(BUNDLE / "configs" / "multi_gpu_train.yaml")]
    overrides = []
    for k, v in {**TINY, "max_epochs": 2, "val_interval": 1}.items():
        overrides += [f"--{k}", json.dumps(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "monai.bundle", "run", "--config_file", json.dumps(configs),
           "--meta_file", str(BUNDLE / "configs" / "metadata.json"),
           "--bundle_root", str(root), "--dataset_dir", str(data), *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    log = out.stdout + out.stderr
    assert log.count("Epoch[2] Metrics") == 1, "validation metrics must be logged once (rank 0), for 2 epochs"
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "checkpoint must hold the unwrapped network"
    UNet(3, 1, 4, [4, 8, 16, 32], [2, 2, 2], num_res_units=1, norm="batch").load_state_dict(state)


def test_ctsgan_mlflow_switch_records_gan_losses(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from test_ctsgan import TINY_TRAIN

    bundle = BUNDLE.parent / "ctsgan_chest_ct_synthesis"
    tiny = dict(TINY_TRAIN, synth_cases=5)
    root = tmp_path / "root"
    run_bundle(bundle, ["train.yaml"], bundle_root=str(root), dataset_dir=str(tmp_path / "data"), max_epochs=1,
               mlflow=True, **tiny)
    with sqlite3.connect(root / "eval" / "mlruns.db") as con:
        keys = {k for (k,) in con.execute("select distinct key from metrics")}
    assert {"d_loss", "g_loss", "gp", "wasserstein"} <= keys, keys


def test_vae_classifier_tracking_mlflow(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from test_rhvae import _tiny_dataset

    bundle = BUNDLE.parent / "vae_manifold_augmentation"
    data = _tiny_dataset(tmp_path)
    run_bundle(bundle, ["train.yaml"], bundle_root=str(tmp_path), dataset_dir=str(data), max_epochs=2, iters_per_epoch=2,
               batch_size=4, train_mode="real", tracking="mlflow")
    with sqlite3.connect(tmp_path / "eval" / "mlruns.db") as con:
        keys = {k for (k,) in con.execute("select distinct key from metrics")}
        status = [s for (s,) in con.execute("select status from runs")]
    assert {"train_loss", "val_balanced_accuracy"} <= keys, keys
    assert "FINISHED" in status
