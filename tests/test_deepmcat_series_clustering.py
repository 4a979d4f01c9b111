"""DeepMCAT (issue 38): the cardiac MR series phantom, the clustering metrics, the VGG-BN network, the series loader,
DeepCluster training through the bundle runner, evaluation against raw-pixel k-means, and sorting a folder of series."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from monai_ext.apps.deepmcat_series_clustering import (
    DeepClusterTrainer,
    DeepMCATNet,
    cluster_features,
    clustering_scores,
    cmr_series_datalist,
    list_series,
    series_frame_items,
    series_frames,
    sort_series,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.metrics import cluster_nmi, cluster_purity, majority_label_map
from monai_ext.networks import VGGBNFeatureNet
from monai_ext.phantoms import (
    CMR_CATEGORIES,
    cmr_category_counts,
    generate_cmr_series,
    sample_cmr_subject,
    synthesize_cmr_dataset,
    write_dicom_series,
)

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "deepmcat_series_clustering"
TINY = dict(synth_series=3, image_size=32, num_categories=2, channels=[4, 4, 8, 8, 8], feature_dim=16, batch_size=8,
            max_epochs=2, kmeans_max_iter=20)
TINY_NET = dict(num_clusters=16, channels=(4, 4, 8, 8, 8), feature_dim=16)


def _save(path: Path, data: np.ndarray, spacing=(2.0, 2.0, 8.0)) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([*spacing, 1.0])), str(path))
    return path


# --- phantom -------------------------------------------------------------------------------------------------------

def test_category_counts_balanced_and_long_tailed():
    assert set(cmr_category_counts(10).values()) == {10}
    tail = cmr_category_counts(40, long_tail=20)
    values = [tail[c] for c in CMR_CATEGORIES]
    assert values[0] == 40 and values[-1] == 2 and values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="long_tail"):
        cmr_category_counts(10, long_tail=0.5)
    with pytest.raises(ValueError, match="series_per_category"):
        cmr_category_counts(1)


def test_series_are_seeded_and_the_categories_differ_in_contrast():
    subj = sample_cmr_subject(np.random.default_rng(0))
    a = generate_cmr_series("sa_cine", subj, 3)
    assert a.dtype == np.float32 and a.shape[:2] == (64, 64) and 4 <= a.shape[2] <= 7 and a.min() >= 0
    np.testing.assert_array_equal(a, generate_cmr_series("sa_cine", subj, 3))
    assert not np.array_equal(a, generate_cmr_series("sa_cine", subj, 4))
    t1 = generate_cmr_series("t1_map", subj, 5)
    assert (t1 == 0).mean() > 0.1, "a T1 map is masked: air exactly 0"
    phase = generate_cmr_series("flow_phase", subj, 6)[..., 0]
    corner = phase[:6, :6] / phase.max()
    assert corner.std() > 0.15, "phase images: noise of uniform phase in air"
    assert generate_cmr_series("la_4ch_cine", subj, 7).shape[2] == 1
    with pytest.raises(ValueError, match="category"):
        generate_cmr_series("perfusion", subj, 0)


def test_dataset_lists_every_series_with_its_category(tmp_path):
    desc = synthesize_cmr_dataset(tmp_path / "d", series_per_category=4, long_tail=2.0, size=32, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "d" / "series.csv")))
    assert len(rows) == desc["num_series"] == sum(cmr_category_counts(4, 2.0).values())
    first = nib.load(str(tmp_path / "d" / rows[0]["image"]))
    assert first.shape[:2] == (32, 32) and np.allclose(first.header.get_zooms()[:2], 11.0)
    assert {r["category"] for r in rows} == set(CMR_CATEGORIES)
    assert all(CMR_CATEGORIES[int(r["label"])] == r["category"] for r in rows)
    with pytest.raises(FileExistsError):
        synthesize_cmr_dataset(tmp_path / "d", series_per_category=2, progress=False)


# --- metrics -------------------------------------------------------------------------------------------------------

def test_nmi_and_purity_on_known_tables():
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert cluster_nmi(labels, [5, 5, 5, 2, 2, 2]) == pytest.approx(1.0)
    assert cluster_nmi(labels, [0, 1, 0, 1, 0, 1]) == pytest.approx(0.0817, abs=1e-3)
    assert cluster_nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    assert cluster_purity([0, 0, 0, 1, 1, 1], labels) == 1.0
    assert cluster_purity([0, 0, 1, 1, 1, 1], labels) == pytest.approx(5 / 6)
    assert cluster_purity(np.arange(6), labels) == 1.0, "one image per cluster is pure: compare at a fixed k"
    np.testing.assert_array_equal(majority_label_map([0, 0, 2, 2, 2], [1, 1, 0, 0, 1], 4), [1, -1, 0, -1])
    with pytest.raises(ValueError, match="one id per image"):
        cluster_nmi([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="0..1"):
        majority_label_map([0, 2], [0, 0], 2)


# --- network -------------------------------------------------------------------------------------------------------

def test_vgg_bn_features_logits_and_top_layer_reset():
    net = VGGBNFeatureNet(2, 1, num_classes=7, channels=(4, 8), convs_per_block=(2, 3), pooled_size=2, feature_dim=12)
    x = torch.randn(3, 1, 40, 36)
    assert net.features(x).shape == (3, 12) and net(x).shape == (3, 7)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 5
    before = net.top_layer.weight.clone()
    net.reset_top_layer(torch.Generator().manual_seed(1))
    after = net.top_layer.weight.clone()
    net.reset_top_layer(torch.Generator().manual_seed(1))
    assert not torch.equal(before, after) and torch.equal(after, net.top_layer.weight)
    assert float(net.top_layer.weight.std()) == pytest.approx(0.01, rel=0.5) and not net.top_layer.bias.any()
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="same length"):
        VGGBNFeatureNet(channels=(4, 8), convs_per_block=(2,))
    scripted = torch.jit.script(net.eval())
    torch.testing.assert_close(scripted(x), net(x))
    net3d = VGGBNFeatureNet(3, 2, num_classes=3, channels=(4,), convs_per_block=(1,), pooled_size=1, feature_dim=8)
    assert net3d(torch.randn(2, 2, 8, 8, 8)).shape == (2, 3)


def test_network_names_categories_through_its_cluster_map():
    net = DeepMCATNet(**TINY_NET).eval()
    mapping = torch.arange(16) % 3
    mapping[5] = -1
    net.set_cluster_categories(mapping)
    x = torch.randn(4, 1, 32, 32)
    np.testing.assert_array_equal(net.categories(x), mapping[net(x).argmax(1)])
    centroids = torch.nn.functional.normalize(torch.randn(16, 16), dim=1)
    net.set_centroids(centroids)
    f = torch.nn.functional.normalize(net.features(x), dim=1)
    nearest = ((f[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(net.assign(x), nearest)
    np.testing.assert_array_equal(net.categories(x), mapping[nearest])
    state = net.state_dict()
    assert torch.equal(state["cluster_category"], mapping) and torch.equal(state["centroids"], centroids)
    with pytest.raises(ValueError, match="centroids of shape"):
        net.set_centroids(torch.zeros(3, 16))
    with pytest.raises(ValueError, match="one category per cluster"):
        net.set_cluster_categories([0, 1])


# --- series and frames ---------------------------------------------------------------------------------------------

def test_frames_of_nifti_2d_3d_4d_and_dicom_series(tmp_path):
    rng = np.random.default_rng(0)
    f3 = series_frames(_save(tmp_path / "a.nii.gz", rng.random((48, 40, 3)) * 500), size=32)
    assert f3.shape == (3, 1, 32, 32) and f3.dtype == np.float32
    np.testing.assert_allclose(f3.reshape(3, -1).mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(f3.reshape(3, -1).std(1), 1, atol=1e-2)
    assert series_frames(_save(tmp_path / "b.nii.gz", rng.random((40, 40))), size=32).shape == (1, 1, 32, 32)
    four = rng.random((32, 32, 2, 5))
    f4 = series_frames(_save(tmp_path / "c.nii.gz", four), size=32)
    np.testing.assert_allclose(f4, series_frames(_save(tmp_path / "c0.nii.gz", four[..., 0]), size=32), atol=1e-5)
    write_dicom_series(rng.random((36, 36, 4)).astype(np.float32) * 300, np.diag([2.0, 2.0, 8.0, 1.0]),
                       tmp_path / "dcm" / "series1", series_description="cine")
    assert series_frames(tmp_path / "dcm" / "series1", size=32).shape == (4, 1, 32, 32)
    with pytest.raises(ValueError, match="2D frames"):
        series_frames(_save(tmp_path / "line.nii.gz", rng.random((40, 4, 3))), size=32)


def test_series_listing_with_and_without_a_csv(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "archive"
    folder.mkdir()
    _save(folder / "x1.nii.gz", rng.random((32, 32, 2)))
    write_dicom_series(rng.random((32, 32, 3)).astype(np.float32), np.eye(4), folder / "exam" / "s7")
    items = list_series(folder)
    assert [i["series"] for i in items] == ["x1", "exam/s7"] and all(i["label"] == -1 for i in items)
    (folder / "series.csv").write_text("image,category\nx1.nii.gz,lge\n")
    (listed,) = list_series(folder)
    assert listed["label"] == CMR_CATEGORIES.index("lge") and listed["series"] == "x1"
    (folder / "series.csv").write_text("image,category\nx1.nii.gz,perfusion\n")
    with pytest.raises(ValueError, match="perfusion"):
        list_series(folder)
    (folder / "series.csv").write_text("image,label\nmissing.nii.gz,1\n")
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        list_series(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found"):
        list_series(tmp_path / "empty")


def test_split_keeps_a_subjects_series_together(tmp_path):
    split = cmr_series_datalist(tmp_path / "d", synth_series=5, test_fraction=0.4)
    train_subjects = {s["subject"] for s in split["training"]}
    test_subjects = {s["subject"] for s in split["testing"]}
    assert len(test_subjects) == 2 and not train_subjects & test_subjects
    again = cmr_series_datalist(tmp_path / "d", test_fraction=0.4)
    assert [s["series"] for s in again["testing"]] == [s["series"] for s in split["testing"]]


# --- DeepCluster -------------------------------------------------------------------------------------------------

def _blob_items(n: int = 48) -> list[dict]:
    """Frames of two kinds (a bright disk / a bright bar) at random positions: labels 0 / 1."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    items = []
    for i in range(n):
        cy, cx = rng.integers(8, 24, 2)
        img = ((yy - cy) ** 2 + (xx - cx) ** 2 < 20) if i % 2 == 0 else ((abs(yy - cy) < 2) & (abs(xx - cx) < 10))
        img = img + rng.normal(0, 0.1, img.shape)
        items.append({"image": ((img - img.mean()) / img.std())[None].astype(np.float32), "index": i,
                      "label": i % 2, "series": f"s{i}", "slice": 0})
    return items


def test_recluster_sets_uniform_cluster_sampling_resets_the_top_layer_and_logs_agreement():
    items = _blob_items()
    net = DeepMCATNet(**TINY_NET)
    sampler = WeightedRandomSampler(torch.ones(len(items), dtype=torch.double), num_samples=len(items))
    loader = DataLoader(items, batch_size=8, sampler=sampler)
    trainer = DeepClusterTrainer("cpu", 2, loader, net, torch.optim.SGD(net.parameters(), 0.01, momentum=0.9),
                                 cluster_data_loader=DataLoader(items, batch_size=16), sampler=sampler,
                                 num_clusters=16, seed=3)
    trainer.run()
    m = trainer.state.metrics
    assert {"nmi_previous_epoch", "nmi_labels", "cluster_purity", "clusters_used"} <= set(m)
    assign = trainer.previous_assignments
    per_cluster = np.bincount(assign, weights=sampler.weights.numpy(), minlength=16)
    used = per_cluster[per_cluster > 0]
    np.testing.assert_allclose(used, 1.0), "every non-empty cluster is drawn with the same probability"
    assert len(used) == m["clusters_used"]
    assert len(trainer.history) == 2 and trainer.history[1]["epoch"] == 2
    # after the last epoch: the final clusters' centroids and names are in the network, and assign reproduces them
    assert net.centroids.any()
    final = net.eval().assign(torch.as_tensor(np.stack([i["image"] for i in items]))).numpy()
    np.testing.assert_array_equal(net.cluster_category.numpy(), majority_label_map(final, [i["label"] for i in items], 16))
    assert cluster_purity(final, [i["label"] for i in items]) > 0.5
    with pytest.raises(ValueError, match="num_clusters"):
        DeepClusterTrainer("cpu", 1, loader, net, torch.optim.SGD(net.parameters(), 0.01),
                           cluster_data_loader=loader, sampler=sampler, num_clusters=8)


def test_cluster_features_is_seeded_and_needs_enough_vectors():
    feats = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    a = cluster_features(feats, 5, seed=1)
    np.testing.assert_array_equal(a, cluster_features(feats, 5, seed=1))
    assert set(a) == set(range(5)) and cluster_features(feats, 4, seed=0, pca_dim=3).max() == 3
    with pytest.raises(ValueError, match="at least as many"):
        cluster_features(feats[:3], 5, seed=0)


def test_scores_use_the_map_per_frame_and_per_series():
    items = [{"label": lab, "series": s} for lab, s in [(0, "a"), (0, "a"), (0, "a"), (1, "b"), (1, "c")]]
    scores = clustering_scores(np.array([0, 0, 1, 2, 2]), items, np.array([0, 1, 1]))
    assert scores["frame_accuracy"] == pytest.approx(4 / 5) and scores["series_accuracy"] == 1.0
    assert scores["cluster_purity"] == 1.0 and scores["clusters_used"] == 3
    with pytest.raises(ValueError, match="category label"):
        clustering_scores(np.array([0]), [{"label": -1, "series": "a"}], np.array([0]))


# --- the bundle ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepmcat")
    data = root / "data"
    synthesize_cmr_dataset(data, series_per_category=3, size=32, progress=False)
    run_bundle(BUNDLE, "train.yaml", bundle_root=str(root), dataset_dir=str(data), **TINY)
    return root, data


def test_bundle_trains_and_keeps_the_cluster_map_in_the_checkpoint(trained):
    root, _ = trained
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    net = DeepMCATNet(num_clusters=16, channels=(4, 4, 8, 8, 8), feature_dim=16)
    net.load_state_dict(state)
    assert (net.cluster_category >= 0).any() and net.cluster_category.max() < len(CMR_CATEGORIES)
    rows = list(csv.DictReader(open(root / "eval" / "clustering_history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["nmi_previous_epoch"] and rows[0]["nmi_labels"]
    assert any((root / "logs").iterdir()), "TensorBoard events"


@pytest.mark.parametrize("method", ["deepmcat", "deepmcat_kmeans", "raw_kmeans"])
def test_evaluate_writes_the_papers_metrics(trained, method):
    root, data = trained
    out = root / f"eval_{method}"
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], bundle_root=str(root), dataset_dir=str(data), method=method,
               output_dir=str(out), **TINY)
    rows = dict(line.split(",") for line in (out / "metrics.csv").read_text().splitlines())
    for key in ("test_nmi_labels", "test_cluster_purity", "test_series_accuracy", "train_frame_accuracy"):
        assert 0.0 <= float(rows[key]) <= 1.0
    assert float(rows["num_clusters"]) == 16 and float(rows["test_series"]) > 0


def test_inference_sorts_a_folder_of_nifti_and_dicom_series_into_a_csv(trained, tmp_path):
    root, data = trained
    archive = tmp_path / "archive"
    archive.mkdir()
    rows = list(csv.DictReader(open(data / "series.csv")))[:3]
    for r in rows:
        (archive / Path(r["image"]).name).symlink_to(data / r["image"])
    vol = nib.load(str(data / rows[0]["image"])).get_fdata().astype(np.float32)
    write_dicom_series(vol, np.diag([11.0, 11.0, 8.0, 1.0]), archive / "dicom" / "exam1")
    out = tmp_path / "sorted.csv"
    run_bundle(BUNDLE, "inference.yaml", bundle_root=str(root), dataset_dir=str(archive), output_csv=str(out),
               ckpt_path=str(root / "models" / "model.pt"), image_size=32, num_clusters=16, channels=[4, 4, 8, 8, 8],
               feature_dim=16)
    got = list(csv.DictReader(open(out)))
    assert [g["series"] for g in got] == sorted(Path(r["image"]).name.replace(".nii.gz", "") for r in rows) + ["dicom/exam1"]
    for g in got:
        assert g["category"] in CMR_CATEGORIES or g["category"].startswith("cluster_")
        assert 0 < float(g["agreement"]) <= 1 and int(g["frames"]) >= 1


def test_inference_on_unreadable_input_names_it_and_writes_no_csv(trained, tmp_path):
    root, _ = trained
    net = DeepMCATNet(**TINY_NET)
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "sorted.csv"
    with pytest.raises(Exception, match="broken.nii.gz"):
        sort_series(bad, net, out, size=32, progress=False)
    assert not out.exists()
    (bad / "broken.nii.gz").unlink()
    (bad / "dicom").mkdir()
    (bad / "dicom" / "IM_0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")
    with pytest.raises(Exception, match="dicom"):
        sort_series(bad, net, out, size=32, progress=False)
    assert not out.exists()
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("no series here")
    with pytest.raises(FileNotFoundError, match="no images found"):
        sort_series(tmp_path / "nothing", net, out, size=32, progress=False)
    assert not out.exists()


def test_frame_items_refuse_an_empty_split():
    with pytest.raises(ValueError, match="no series"):
        series_frame_items([])


def test_metadata_declares_the_network_and_its_data():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 80
