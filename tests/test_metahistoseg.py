"""MetaHistoSeg (issue 38): the H&E task-family phantom, the task-folder dataset list, the episode and equalised
task samplers, the multi-head U-Net, the MAML trainer, pooled IoU, and the bundle's training, fine-tuning,
evaluation and inference through the bundle runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from monai_ext.apps.metahistoseg import PrepareTaskBatch, metahistoseg_datalist
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import histo_task_datalist
from monai_ext.engines import EpisodeBatchSampler, EqualizedTaskSampler, MAMLTrainer
from monai_ext.metrics import PooledDiceMetric, PooledIoUMetric
from monai_ext.networks import PADDED_LOGIT, MultiHeadSegNet
from monai_ext.phantoms import HISTO_TASK_FAMILIES, generate_histo_tile, synthesize_histo_tasks
from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "metahistoseg"
TINY = dict(features=[4, 4, 8, 8, 16, 4], patch_size=[32, 32], max_epochs=1, iterations_per_epoch=2,
            episodes_per_batch=2, support=2, query=1, finetune_images=2, finetune_iterations=2, finetune_batch_size=2,
            num_test=2, test_task="glands")
SYNTH = {"nuclei": 6, "glands": 6, "cellularity": 6}


# --- phantom ------------------------------------------------------------------------------------------------------

def test_each_family_has_its_classes_stain_and_is_reproducible():
    means = {}
    for family, spec in HISTO_TASK_FAMILIES.items():
        image, mask, record = generate_histo_tile(family, seed=3, size=64)
        again, mask2, _ = generate_histo_tile(family, seed=3, size=64)
        assert image.shape == (3, 64, 64) and image.dtype == np.uint8 and mask.shape == (64, 64)
        assert np.array_equal(image, again) and np.array_equal(mask, mask2)
        assert mask.max() < len(spec["classes"]) and sum(record["class_pixels"]) == 64 * 64
        means[family] = np.mean([generate_histo_tile(family, s, 64)[0].reshape(3, -1).mean(1) for s in range(4)], 0)
    # the families' stain protocols differ: mean colours at least a few grey levels apart
    names = list(means)
    assert min(np.abs(means[a] - means[b]).max() for a in names for b in names if a < b) > 3.0
    with pytest.raises(ValueError, match="unknown histology task family"):
        generate_histo_tile("kidney", 0)


def test_cellularity_labels_are_fixed_disks_around_centroids():
    areas = []
    for seed in range(6):
        _, mask, _ = generate_histo_tile("cellularity", seed, 96)
        lab, n = ndimage.label(mask > 0)
        areas += [int((lab == i).sum()) for i in range(1, n + 1)]
    # a disk of radius 4 px around a sub-pixel centroid covers 45-53 pixels; touching disks merge
    assert areas and 45 <= np.median(areas) <= 53 and np.mean(np.asarray(areas) <= 53) > 0.6


# --- dataset list ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("histo") / "data"
    synthesize_histo_tasks(root, SYNTH, progress=False)
    return root


def test_task_folders_become_one_list_with_each_tasks_labels(tasks):
    data = histo_task_datalist(tasks, num_test=2)
    assert data["tasks"] == ["cellularity", "glands", "nuclei"] and data["class_counts"] == [4, 2, 2]
    assert len(data["testing"]) == 6 and len(data["training"]) == 12
    assert {it["task_name"] for it in data["training"] if it["task"] == 1} == {"glands"}
    assert not {it["image"] for it in data["testing"]} & {it["image"] for it in data["training"]}


def test_bad_task_folders_name_the_file(tasks, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tasks / "glands", bad / "glands")
    (bad / "glands" / "masks" / "glands_001.png").unlink()
    with pytest.raises(FileNotFoundError, match="glands_001.png"):
        histo_task_datalist(bad, num_test=2)
    Image.fromarray(np.full((96, 96), 5, np.uint8)).save(bad / "glands" / "masks" / "glands_001.png")
    with pytest.raises(ValueError, match=r"glands_001.png has class value 5.*2 classes"):
        histo_task_datalist(bad, num_test=2)
    (bad / "glands" / "task.json").unlink()   # without task.json: classes from the masks
    assert histo_task_datalist(bad, num_test=2)["class_counts"] == [6]
    with pytest.raises(ValueError, match=r"task 'glands' \(.*\) tiles: 6 case\(s\), but num_val=0 \+ num_test=6"):
        histo_task_datalist(bad, num_test=6)


def test_leave_one_out_lists_and_their_errors(tasks):
    data = metahistoseg_datalist(tasks, test_task="glands", finetune_images=2, num_test=2)
    assert data["source_tasks"] == ["cellularity", "nuclei"] and data["test_task_index"] == 1
    assert {it["task_name"] for it in data["source"]} == {"cellularity", "nuclei"}
    assert len(data["finetune"]) == 2 and {it["task_name"] for it in data["finetune"] + data["testing"]} == {"glands"}
    with pytest.raises(ValueError, match="unknown task"):
        metahistoseg_datalist(tasks, test_task="kidney", num_test=2)
    with pytest.raises(ValueError, match="also a source task"):
        metahistoseg_datalist(tasks, test_task="glands", source_tasks=["glands"], num_test=2)
    with pytest.raises(ValueError, match="finetune_images must be in 1..4"):
        metahistoseg_datalist(tasks, test_task="glands", finetune_images=9, num_test=2)


# --- samplers -------------------------------------------------------------------------------------------------------

def test_episodes_are_one_task_each_with_distinct_items():
    tasks = [0] * 10 + [1] * 6 + [2] * 8
    sampler = EpisodeBatchSampler(tasks, support=3, query=2, episodes_per_batch=3, num_batches=20, seed=1)
    first = list(sampler)
    assert len(first) == 20 and first != list(sampler), "each pass draws new episodes"
    for batch in first:
        for e in range(3):
            ep = batch[e * 5 : (e + 1) * 5]
            assert len(set(ep)) == 5 and len({tasks[i] for i in ep}) == 1
    only = EpisodeBatchSampler(tasks, 3, 2, 2, 10, task_weights={2: 1.0})
    assert {tasks[i] for b in only for i in b} == {2}
    with pytest.raises(ValueError, match=r"one episode of 8 \(support 4 \+ query 4\): lesion \(6 items\)"):
        EpisodeBatchSampler(tasks, support=4, query=4, task_names=["nuclei", "lesion", "glands"])


def test_equalised_sampler_truncates_every_task_to_the_smallest_afresh_each_pass():
    tasks = [0] * 10 + [1] * 4 + [2] * 7
    sampler = EqualizedTaskSampler(tasks, seed=0)
    passes = [list(sampler) for _ in range(4)]
    assert len(sampler) == 12
    for p in passes:
        assert sorted(np.bincount([tasks[i] for i in p]).tolist()) == [4, 4, 4] and len(set(p)) == 12
    assert len({tuple(sorted(p)) for p in passes}) > 1


# --- network, MAML, metric ------------------------------------------------------------------------------------------

def test_each_sample_goes_to_its_own_head():
    torch.manual_seed(0)
    net = MultiHeadSegNet(2, 3, [2, 4, 3], features=(4, 4, 8, 8, 16, 4), default_task=1).eval()
    x = torch.randn(3, 3, 32, 32)
    mixed = net(x, torch.tensor([0, 1, 0]))
    assert mixed.shape == (3, 4, 32, 32)
    assert torch.allclose(mixed[1], net(x[1:2], 1)[0], atol=1e-5)
    assert torch.allclose(mixed[0, :2], net(x[:1], 0)[0], atol=1e-5) and torch.all(mixed[0, 2:] == PADDED_LOGIT)
    assert net(x).shape[1] == 4 and net(x, torch.tensor([2, 2, 2])).shape[1] == 3
    with pytest.raises(ValueError, match="task index 5 out of range"):
        net(x, 5)
    scripted = torch.jit.script(net)   # what the Model Zoo export and MONAI Label load
    assert torch.allclose(scripted(x, torch.tensor([0, 1, 0])), mixed, atol=1e-5) and torch.allclose(scripted(x), net(x))
    image, label, args, kwargs = PrepareTaskBatch()({"image": x, "label": x[:, :1], "task": [0, 1, 0]})
    assert args == () and kwargs["task_index"].tolist() == [0, 1, 0]


def _trainer(first_order: bool, lr: float = 0.1):
    torch.manual_seed(0)
    net = MultiHeadSegNet(2, 1, [2, 3], features=(2, 2, 4, 4, 8, 2))
    batch = {"image": torch.randn(4, 1, 32, 32), "label": torch.randint(0, 2, (4, 1, 32, 32)).float(),
             "task": torch.tensor([0, 0, 1, 1])}
    loss = torch.nn.CrossEntropyLoss()
    trainer = MAMLTrainer(device="cpu", max_epochs=1, train_data_loader=[batch], network=net,
                          optimizer=torch.optim.SGD(net.parameters(), lr=lr),
                          loss_function=lambda p, y: loss(p, y[:, 0].long()), episodes_per_batch=2, support=1,
                          inner_lr=0.05, first_order=first_order)
    return trainer, net, batch, loss


def test_first_order_maml_steps_with_the_query_gradient_at_the_adapted_weights():
    trainer, net, batch, loss = _trainer(first_order=True)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    expected = {n: torch.zeros_like(p) for n, p in before.items()}
    for e, task in ((0, 0), (1, 1)):
        clone = MultiHeadSegNet(2, 1, [2, 3], features=(2, 2, 4, 4, 8, 2))
        clone.load_state_dict(net.state_dict())
        x, y = batch["image"][2 * e : 2 * e + 2], batch["label"][2 * e : 2 * e + 2, 0].long()
        clone.zero_grad()
        loss(clone(x[:1], task), y[:1]).backward()
        with torch.no_grad():
            for p in clone.parameters():
                if p.grad is not None:
                    p -= 0.05 * p.grad
        clone.zero_grad()
        (loss(clone(x[1:], task), y[1:]) / 2).backward()
        for n, p in clone.named_parameters():
            if p.grad is not None:
                expected[n] += p.grad
    trainer.run()
    out = trainer.state.output
    assert float(out["loss"]) > 0 and float(out["support_loss"]) > 0
    for n, p in net.named_parameters():
        assert torch.allclose(p.detach(), before[n] - 0.1 * expected[n], atol=1e-5), n


def test_second_order_maml_differs_and_bad_batches_are_refused():
    first, net1, _, _ = _trainer(first_order=True)
    second, net2, _, _ = _trainer(first_order=False)
    first.run()
    second.run()
    diff = max((a - b).abs().max().item() for a, b in zip(net1.parameters(), net2.parameters()))
    assert diff > 1e-7, "the second-order term changes the meta-gradient"
    bad, *_ = _trainer(first_order=True)
    bad.data_loader = [{"image": torch.randn(3, 1, 32, 32), "label": torch.zeros(3, 1, 32, 32),
                        "task": torch.tensor([0, 0, 1])}]
    with pytest.raises(ValueError, match="does not split into 2 episodes"):
        bad.run()


def test_pooled_iou_counts_every_pixel_of_every_image():
    rng = np.random.default_rng(0)
    pred = torch.as_tensor(rng.random((5, 3, 20, 20)) > 0.6).float()
    ref = torch.as_tensor(rng.random((5, 3, 20, 20)) > 0.5).float()
    iou, dice = PooledIoUMetric(reduction="none"), PooledDiceMetric(reduction="none")
    iou(pred[:2], ref[:2])
    iou(pred[2:], ref[2:])
    dice(pred, ref)
    inter = (pred * ref).sum((0, 2, 3))
    union = ((pred + ref) > 0).float().sum((0, 2, 3))
    assert torch.allclose(iou.aggregate().float(), inter / union, atol=1e-6)
    d = dice.aggregate()
    assert torch.allclose(iou.aggregate(), d / (2 - d), atol=1e-9)


# --- the bundle ----------------------------------------------------------------------------------------------------

def test_bundle_meta_trains_finetunes_evaluates_and_segments(tasks, tmp_path):
    common = dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(tasks))
    run_bundle(BUNDLE, "train.yaml", **common)
    assert (tmp_path / "models" / "model.pt").is_file() and any((tmp_path / "logs").iterdir())
    run_bundle(BUNDLE, ["train.yaml", "finetune.yaml"], **common)
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **common)
    rows = dict(line.split(",") for line in (tmp_path / "eval" / "metrics.csv").read_text().splitlines())
    assert 0.0 <= float(rows["test_miou"]) <= 1.0 and 0.0 <= float(rows["test_miou_foreground"]) <= 1.0
    out = tmp_path / "seg"
    run_bundle(BUNDLE, "inference.yaml", bundle_root=str(tmp_path), dataset_dir=str(tasks / "cellularity" / "images"),
               task="cellularity", tasks=["cellularity", "glands", "nuclei"], class_counts=[4, 2, 2],
               features=TINY["features"], output_dir=str(out), ckpt_path=str(tmp_path / "models" / "model_finetuned.pt"))
    segs = sorted(out.glob("*_seg.png"))
    assert len(segs) == 6
    seg = np.asarray(Image.open(segs[0]))
    assert seg.shape == (96, 96) and seg.max() <= 3
    run_bundle(BUNDLE, "train.yaml", **dict(common, method="transfer", bundle_root=str(tmp_path / "tl")))
    assert (tmp_path / "tl" / "models" / "model.pt").is_file()


def test_bad_inputs_name_what_is_wrong(tasks, tmp_path):
    common = dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(tasks))
    with pytest.raises(Exception) as excinfo:   # an episode of 2 + 5 tiles; the source tasks have 4 training tiles
        run_bundle(BUNDLE, "train.yaml", **dict(common, query=5))
    assert "too few items for one episode of 7" in error_text(excinfo) and "cellularity (4 items)" in error_text(excinfo)
    assert not (tmp_path / "models" / "model.pt").exists()
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "train.yaml", **dict(common, method="reptile"))
    assert "method must be one of" in error_text(excinfo)
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["train.yaml", "finetune.yaml"], **common)
    assert "model.pt" in error_text(excinfo) and "source-trained weights" in error_text(excinfo)
    run_bundle(BUNDLE, "train.yaml", **dict(common, method="scratch"))
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    Image.new("RGBA", (64, 64)).save(rgba / "tile.png")
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "inference.yaml", bundle_root=str(tmp_path), dataset_dir=str(rgba), features=TINY["features"],
                   tasks=["cellularity", "glands", "nuclei"], class_counts=[4, 2, 2], output_dir=str(tmp_path / "o"),
                   ckpt_path=str(tmp_path / "models" / "model.pt"))
    assert "tile.png (RGBA)" in error_text(excinfo)
    assert not (tmp_path / "o").exists()


def test_metadata_declares_the_default_task_head():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 3
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 2
