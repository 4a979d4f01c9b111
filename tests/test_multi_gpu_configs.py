"""Each bundle's `multi_gpu_train.yaml` trains under torchrun with two CPU processes (gloo backend): the same
code path as on GPUs with nccl, minus the device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_ctsgan import TINY_TRAIN as CTSGAN_TINY

ROOT = Path(__file__).resolve().parents[1] / "bundles"


def torchrun_bundle(bundle: Path, configs: list[str], overrides: dict, timeout: int = 300) -> str:
    """Run ``configs`` of ``bundle`` with ``torchrun --nproc_per_node=2`` on the CPU; returns the log, in which
    every line of a rank's output starts with ``[default<rank>]:``."""
    args = []
    for k, v in overrides.items():
        args += [f"--{k}", json.dumps(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "--tee", "3",
           "-m", "monai.bundle", "run", "--config_file", json.dumps([str(bundle / "configs" / c) for c in configs]),
           "--meta_file", str(bundle / "configs" / "metadata.json"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM: torchrun stops its workers (each in its own session) before it exits; SIGKILL would orphan them
        proc.send_signal(signal.SIGTERM)
        try:
            log, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s; its whole log:\n{log}") from None
    assert proc.returncode == 0, f"torchrun exited with {proc.returncode}; its whole log:\n{log}"
    return log


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_ctsgan_multi_gpu_train(tmp_path):
    bundle = ROOT / "ctsgan_chest_ct_synthesis"
    root = tmp_path / "ddp"
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(CTSGAN_TINY, bundle_root=str(root), dataset_dir=str(tmp_path / "data"), synth_cases=6,
                               max_epochs=2))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)


def test_ctsgan_multi_gpu_resume_keeps_collective_handlers_on_every_rank(tmp_path):
    """With --resume_from every rank loads the state and keeps the time limit, whose broadcast needs all ranks
    (train handlers are picked by key: by position, rank 1 got the checkpoint loader instead of the time limit)."""
    from monai.bundle import ConfigParser

    bundle = ROOT / "ctsgan_chest_ct_synthesis"
    root = tmp_path / "ddp"
    tiny = dict(CTSGAN_TINY, bundle_root=str(root), dataset_dir=str(tmp_path / "data"), synth_cases=6, device="cpu")
    parser = ConfigParser()  # a resumable state of the tiny networks, as train.yaml's state_saver writes it
    parser.read_config(str(bundle / "configs" / "train.yaml"))
    parser.update(tiny)
    resume = tmp_path / "ctsgan_state.pt"
    torch.save({k: parser.get_parsed_content(k).state_dict()
                for k in ("generator", "critics", "g_optimizer", "d_optimizer")}, resume)
    tiny.pop("device")
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(tiny, resume_from=str(resume), max_epochs=3, time_limit_sec=1e-3), timeout=90)
    for rank in (0, 1):
        lines = [ln for ln in log.splitlines() if ln.startswith(f"[default{rank}]:")]
        assert any(f"Restored all variables from {resume}" in ln for ln in lines), f"rank {rank} did not resume:\n{log}"
        assert any("time limit of" in ln and "(epoch 1," in ln for ln in lines), f"rank {rank}: no time limit:\n{log}"
    assert "Epoch: 1/3" in log and "Epoch: 2/3" not in log, f"all ranks must stop after epoch 1:\n{log}"
    assert (root / "models" / "model.pt").is_file()


def _ctsgan_rank(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from monai_ext.apps.ctsgan_chest_ct_synthesis import (
        CTSGANCritics,
        CTSGANGenerator,
        CTSGANSlabCritic,
        CTSGANSliceCritic,
        CTSGANTrainer,
    )

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different initial weights per rank: the trainer must broadcast rank 0's
    g = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8, base_channels=8)
    d = CTSGANCritics(CTSGANSliceCritic(image_size=16, base_channels=8), CTSGANSlabCritic(image_size=16, slab_size=4,
                                                                                         base_channels=8))
    volumes = [{"image": torch.rand(1, 16, 16, 10) * 2 - 1 + rank} for _ in range(4)]  # different data per rank
    data = torch.utils.data.DataLoader(volumes, batch_size=2)
    trainer = CTSGANTrainer(device="cpu", max_epochs=1, train_data_loader=data, g_network=g,
                            g_optimizer=torch.optim.Adam(g.parameters(), 1e-3), d_network=d,
                            d_optimizer=torch.optim.Adam(d.parameters(), 1e-3), slab_size=4, slices_per_slab=2, seed=0)
    before = torch.cat([p.detach().flatten() for p in g.parameters()]).clone()
    trainer.run()
    after = torch.cat([p.detach().flatten() for p in list(g.parameters()) + list(d.parameters())])
    torch.save({"after": after, "moved": float((torch.cat([p.detach().flatten() for p in g.parameters()])
                                                - before).abs().max())}, f"{out_file}.{rank}")
    dist.destroy_process_group()


def test_ctsgan_trainer_keeps_ranks_in_sync(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "w")
    mp.spawn(_ctsgan_rank, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    r0, r1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert r0["moved"] > 0 and r1["moved"] > 0
    assert torch.allclose(r0["after"], r1["after"], atol=1e-6), "generator and critics must stay identical on all ranks"


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_us_style_transfer_multi_gpu_train(tmp_path):
    from monai_ext.apps.us_variational_style_transfer import load_us_style_transfer
    from monai_ext.bundle_helpers import run_bundle
    from monai_ext.phantoms import synthesize_us_dataset

    bundle = ROOT / "us_variational_style_transfer"
    data = tmp_path / "data"
    synthesize_us_dataset(data, subjects=5, styles=["gel_phantom", "linear_high_freq"], shape=(64, 64), progress=False)
    common = dict(bundle_root=str(tmp_path), dataset_dir=str(data), image_size=32, channels=[4, 8, 8])
    run_bundle(bundle, ["train_autoencoder.yaml"], ae_epochs=1, ae_batch_size=4, device="cpu", **common)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(common, max_epochs=2, batch_size=2, latent_dims=2, content_weights=[0, 1, 1],
                               style_weights=[1e6] * 10 + [1]))
    assert "Epoch[2]" in log or "Epoch: 2/2" in log
    model = load_us_style_transfer(tmp_path / "models" / "model.pt")
    assert model.latent_dims == [2, 2, 2]


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_us_inpainting_hpi_multi_gpu_train(tmp_path):
    """Both ranks train HPI with gradients averaged by its iteration; rank 0 alone keeps the best epoch and writes."""
    from test_us_inpainting_hpi import TINY

    from monai_ext.apps.us_inpainting_hpi import load_hpi_network

    bundle = ROOT / "us_inpainting_hpi"
    tiny = {k: v for k, v in TINY.items() if k != "device"}
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(tiny, bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), batch_size=2))
    assert log.count("Epoch[2] Metrics -- val_psnr") == 1, "validation is logged by rank 0 only"
    net = load_hpi_network(tmp_path / "models" / "model.pt")
    assert net.latent_channels == 2 and not any(k.startswith("module.") for k in net.state_dict())


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_vae_manifold_classifier_multi_gpu_train(tmp_path):
    from test_rhvae import _tiny_dataset

    from monai_ext.bundle_helpers import run_bundle

    bundle = ROOT / "vae_manifold_augmentation"
    data = _tiny_dataset(tmp_path)
    common = dict(bundle_root=str(tmp_path), dataset_dir=str(data))
    for c in (0, 1):
        run_bundle(bundle, ["train_vae.yaml"], vae_class=c, vae_epochs=1, vae_batch_size=4, **common)
    torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                    dict(common, max_epochs=2, iters_per_epoch=2, batch_size=4, num_generated_per_class=4, vae_seeds=[0],
                         sampler_kwargs={"n_steps": 2}))
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    for rank in (0, 1):  # each rank generated its own (identical) samples
        assert len(list((tmp_path / "eval" / "generated" / f"rank{rank}").glob("class1_hmc_*/gen_*.nii.gz"))) == 4


def test_label_noise_mean_teacher_multi_gpu_train(tmp_path):
    from monai_ext.apps.label_noise_bias_study import DualDecoderUNet
    from monai_ext.phantoms import synthesize_brain_tumor_dataset

    bundle = ROOT / "label_noise_bias_study"
    data = tmp_path / "data"
    synthesize_brain_tumor_dataset(data, cases=4, seed=2, progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(data), slice_dir=str(tmp_path / "slices"),
                               num_val=1, num_test=1, synth_cases=4, channels=[4, 8], batch_size=8, max_epochs=2,
                               model="mt", noise="shift", level=2))
    assert "Epoch[2]" in log or "Epoch: 2/2" in log
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    DualDecoderUNet(2, 4, 1, channels=(4, 8)).load_state_dict(state)       # no "module." prefix, the plain network


def test_no_config_selects_handlers_by_list_position():
    """Handlers are chosen by id or key: a position (``@handlers[:1]``) silently picks another handler when the
    list changes, which under torchrun leaves a collective (the time limit's broadcast) on one rank only."""
    import re

    offenders = []
    for cfg in sorted(Path(__file__).resolve().parents[1].glob("bundles/*/configs/*.yaml")):
        for n, line in enumerate(cfg.read_text().splitlines(), 1):
            if re.search(r"handlers\]?\s*\[\s*-?\d*\s*:?\s*-?\d*\s*\]", line) or re.search(r"handlers#\d", line):
                offenders.append(f"{cfg.name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_box_supervised_multi_gpu_train(tmp_path):
    from monai.networks.nets import UNet

    from monai_ext.apps.box_supervised_seg import synthesize_box_dataset

    bundle = ROOT / "box_supervised_seg"
    data = tmp_path / "data"
    synthesize_box_dataset(data, cases=5, shape=(48, 48, 26), spacing=(8.0, 8.0, 10.0))
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(data), box_source="box3d", num_val=2,
                               num_test=1, num_labelled=1, pixdim=[8.0, 8.0, 10.0], slice_size=[48, 48],
                               channels=[4, 8, 8, 8], batch_size=8, max_epochs=2, val_interval=1))
    assert "Epoch[2]" in log or "Epoch: 2/2" in log
    assert "barrier temperature t = 6.050" in log                  # 5 x 1.1 x 1.1 on the ranks
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    UNet(2, 3, 1, channels=(4, 8, 8, 8), strides=(2, 2, 2), num_res_units=2, norm="batch").load_state_dict(state)
    assert json.loads((tmp_path / "eval" / "box_quality.json").read_text())["box_source"] == "box3d"


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_multiplanar_unet_sparse_multi_gpu_train(tmp_path):
    from monai_ext.phantoms import synthesize_em_mitochondria_dataset

    bundle = ROOT / "multiplanar_unet_sparse"
    data = tmp_path / "data"
    synthesize_em_mitochondria_dataset(data, cases=5, shape=(24, 24, 24), progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(data), num_val=2, num_test=1,
                               num_annotated=3, num_training_planes=8, mp_features=[4, 4, 8, 8, 8, 4],
                               max_epochs=2, iterations_per_epoch=3, val_interval=1))
    assert log.count("Epoch: 2/2, Iter: 1/3") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    assert json.loads((tmp_path / "eval" / "annotation.json").read_text())["num_training_planes"] == 8


def test_cacl_multi_gpu_train(tmp_path):
    from monai_ext.apps.cacl_weak_segmentation import CaCLNet
    from monai_ext.phantoms import synthesize_ihc_dataset

    bundle = ROOT / "cacl_weak_segmentation"
    data = tmp_path / "data"
    synthesize_ihc_dataset(data, slides=8, patches_per_slide=6, size=32, progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(data), val_fraction=0.25, test_fraction=0.25,
                               channels=[8, 16], num_res_channels=[8, 16], num_res_layers=1, batch_size=4,
                               max_epochs=2, val_interval=1, classifier_interval=1))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    CaCLNet(channels=(8, 16), num_res_channels=(8, 16), num_res_layers=1).load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_ao_cone_label_transfer_multi_gpu_train(tmp_path):
    from monai_ext.apps.ao_cone_label_transfer import ConeMapUNet
    from monai_ext.phantoms import synthesize_cone_dataset

    bundle = ROOT / "ao_cone_label_transfer"
    data = tmp_path / "data"
    synthesize_cone_dataset(data, labelled=8, pairs=1, test=1, size=64, progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(data), num_val=2, features=[4, 4, 8, 8, 8, 4],
                               patch_size=[32, 32], batch_size=2, max_epochs=2, val_interval=1))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    ConeMapUNet(features=(4, 4, 8, 8, 8, 4)).load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_brainnetgan_multi_gpu_train_gan_and_classifier(tmp_path):
    """The GAN (explicit gradient averaging of three networks) and the classifier (DDP) on two CPU ranks."""
    from monai_ext.networks import DenseGraphConvClassifier
    from monai_ext.phantoms import synthesize_connectome_dataset

    bundle = ROOT / "brainnetgan_connectome"
    data = tmp_path / "data"
    synthesize_connectome_dataset(data, per_class=10, progress=False)
    common = dict(bundle_root=str(tmp_path), dataset_dir=str(data), batch_size=4, latent_dim=8, g_hidden=[16, 32])
    log = torchrun_bundle(bundle, ["train_gan.yaml", "multi_gpu_train_gan.yaml"],
                          dict(common, max_epochs=2, d_e2e=[4], d_e2n=8, d_n2g=8, d_fc=[8], d_train_steps=2))
    assert log.count("Train completed, saved final checkpoint") == 2, "rank 0 alone saves the generator and the state"
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"], dict(common, max_epochs=2))
    assert log.count("Epoch[2] Metrics -- val_accuracy") == 1, "validation is logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    DenseGraphConvClassifier(90, 2).load_state_dict(state)


def test_every_multi_gpu_config_ends_with_end_distributed_releasing_its_ddp_network():
    """A DDP wrapper alive at interpreter exit let a rank abort now and then at teardown (bundle_helpers.end_distributed)."""
    import yaml

    for cfg in sorted(ROOT.glob("*/configs/multi_gpu_train*.yaml")):
        spec = yaml.safe_load(cfg.read_text())
        network = spec.get("network")
        wraps_ddp = (isinstance(network, dict) and network.get("_target_", "").endswith("DistributedDataParallel")
                     or isinstance(network, str) and "DistributedDataParallel(" in network)   # e.g. for one method only
        expected = "$monai_ext.bundle_helpers.end_distributed(@network)" if wraps_ddp else \
            "$monai_ext.bundle_helpers.end_distributed()"
        assert spec.get("finalize") == [expected], cfg


def test_end_distributed_destroys_the_group_and_releases_ddp(tmp_path):
    import torch.distributed as dist

    from monai_ext.bundle_helpers import end_distributed

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    net = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))
    net(torch.randn(4, 3)).sum().backward()
    end_distributed(net, torch.nn.Linear(2, 2))
    assert not dist.is_initialized()
    assert not {"reducer", "logger", "process_group"} & set(net.__dict__)
    end_distributed()                                                   # nothing initialised: no error


def test_deepmcat_multi_gpu_train_broadcasts_rank0_clusters(tmp_path):
    from monai_ext.apps.deepmcat_series_clustering import DeepMCATNet
    from monai_ext.phantoms import synthesize_cmr_dataset

    bundle = ROOT / "deepmcat_series_clustering"
    data = tmp_path / "data"
    synthesize_cmr_dataset(data, series_per_category=3, size=32, progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(data), image_size=32, num_categories=2,
                               channels=[4, 4, 8, 8, 8], feature_dim=16, batch_size=4, max_epochs=2,
                               kmeans_max_iter=10))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    assert log.count("nmi_previous_epoch") == 1, "the clustering metrics of epoch 2 are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    net = DeepMCATNet(num_clusters=16, channels=(4, 4, 8, 8, 8), feature_dim=16)
    net.load_state_dict(state)
    assert (net.cluster_category >= 0).any()
    assert (tmp_path / "eval" / "clustering_history.csv").read_text().count("\n") == 3


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config (issue: suite budget)
def test_fsnet_multi_gpu_train_with_a_branch_unused_in_some_batches(tmp_path):
    """Joint batches of 1 sample per rank leave one FS branch without gradient on a rank in most steps: DDP must
    still average (find_unused_parameters) and the data set weights hold on every rank."""
    from monai_ext.apps.fsnet_joint_training import FSNet

    bundle = ROOT / "fsnet_joint_training"
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), synth_cases=[6, 4],
                               num_val=2, num_test=2, channels=[4, 8, 16, 32], num_res_units=1, batch_size=1,
                               iterations_per_epoch=3, max_epochs=2, val_interval=1))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    net = FSNet(in_channels=2, class_counts=[2, 3], channels=(4, 8, 16, 32), branch_channels=4, num_res_units=1)
    net.load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config (issue: suite budget)
def test_active_learning_cxr_multi_gpu_train(tmp_path):
    from monai.networks.nets import Classifier

    bundle = ROOT / "active_learning_cxr"
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), synth_total=60, max_epochs=2, channels=[4, 8, 8, 8]))
    assert log.count("Epoch[2] Complete") == 2, "both ranks train"
    assert log.count("train_loss") == 2, "the loss of each epoch is logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    Classifier((1, 64, 64), 3, (4, 8, 8, 8), (2, 2, 2, 2), num_res_units=1).load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config (issue: suite budget)
@pytest.mark.parametrize("method", ["maml", "transfer"])
def test_metahistoseg_multi_gpu_train(tmp_path, method):
    """MAML: each rank meta-trains on its own episodes and the meta-gradients are averaged (no DDP wrapper);
    transfer: DDP over mixed-task batches, the held-out task's head unused."""
    from monai_ext.networks import MultiHeadSegNet

    bundle = ROOT / "metahistoseg"
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), method=method,
                               synth_images={"nuclei": 6, "glands": 6, "cellularity": 6}, num_test=2,
                               features=[4, 4, 8, 8, 16, 4], patch_size=[32, 32], episodes_per_batch=2, support=2,
                               query=1, iterations_per_epoch=2, max_epochs=2, finetune_images=2))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    MultiHeadSegNet(2, 3, [4, 2, 2], features=(4, 4, 8, 8, 16, 4)).load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard DDP config (issue: suite budget)
def test_oneshot_cochlea_multi_gpu_train(tmp_path):
    """DDP over the reference's slices: each rank draws its own, both validate on the same slices and stop together."""
    from monai_ext.apps.oneshot_cochlea_landmarks import ShallowSliceUNet
    from monai_ext.phantoms import synthesize_temporal_bone_dataset

    bundle = ROOT / "oneshot_cochlea_landmarks"
    synthesize_temporal_bone_dataset(tmp_path / "data", test=1, shape=(48, 48, 48), spacing=(0.6, 0.6, 0.6),
                                     progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), spacing=[0.6] * 3,
                               slice_size=24, features=4, max_epochs=2, iterations_per_epoch=4, batch_size=4,
                               max_shift=4.0))
    assert log.count("Epoch[2] Complete") >= 2, "both ranks train"
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    ShallowSliceUNet(features=4).load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard DDP config (issue: suite budget)
def test_adaptor_suture_multi_gpu_train(tmp_path):
    """DDP over the frames: each rank draws half the batches of an epoch; rank 0 alone writes."""
    from monai.networks.nets import FlexibleUNet

    from monai_ext.phantoms import synthesize_valve_dataset

    bundle = ROOT / "adaptor_suture_landmarks"
    synthesize_valve_dataset(tmp_path / "data", sim_surgeries=2, intraop_surgeries=3, frames_per_surgery=3, width=128,
                             height=72, progress=False)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"),
                               validation_surgeries=["op02"], test_surgeries=["op03"], decoder_channels=[8] * 5,
                               max_epochs=2, iterations_per_epoch=4, batch_size=2, crop_size=[64, 64]))
    assert log.count("Epoch[2] Complete") >= 2, "both ranks train"
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    FlexibleUNet(3, 1, "resnet10_w16", spatial_dims=2, decoder_channels=[8] * 5).load_state_dict(state)


@pytest.mark.slow  # two 2-process torchrun runs (issue: suite budget)
def test_fewshot_dag_multi_gpu_train_both_stages(tmp_path):
    """DDP in stage 1 (DAG) and stage 2 (Few-shot DAG: DDP's forward with return_stages, the EMA teacher of the
    unwrapped student); rank 0 alone writes."""
    from monai_ext.networks import DeepAdaptiveGraph
    from monai_ext.phantoms import synthesize_xray_landmark_dataset

    bundle = ROOT / "fewshot_dag_xray_landmarks"
    synthesize_xray_landmark_dataset(tmp_path / "data", "pelvis", labelled=6, unlabelled=4, size=64, progress=False)
    small = dict(bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), labelled=2, validation=1, test=2,
                 image_size=[64, 64], feature_channels=4, channels=[4, 8, 8, 8], graph_channels=8, local_steps=1,
                 max_epochs=2, iterations_per_epoch=4, batch_size=2)
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"], small)
    assert log.count("Epoch[2] Complete") >= 2, "both ranks train"
    log = torchrun_bundle(bundle, ["train.yaml", "train_fewshot.yaml", "multi_gpu_train.yaml"],
                          dict(small, unlabelled_ratio=1))
    assert log.count("Epoch: 2/2, Iter: 1/") == 1, "losses are logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    DeepAdaptiveGraph(14, feature_channels=4, channels=[4, 8, 8, 8], graph_channels=8, local_steps=1).load_state_dict(state)


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config (issue: suite budget)
def test_aneurysm_tof_mra_multi_gpu_train(tmp_path):
    """Both ranks draw their own patches (SyncBatchNorm on CUDA only); rank 0 alone writes the checkpoints."""
    import torch
    from test_aneurysm_tof_mra_detection import TINY

    bundle = ROOT / "aneurysm_tof_mra_detection"
    log = torchrun_bundle(bundle, ["train.yaml", "multi_gpu_train.yaml"],
                          dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), max_epochs=2))
    assert log.count("Epoch[2] Metrics -- val_dice") == 1, "validation is logged by rank 0 only"
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
