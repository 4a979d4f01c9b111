"""Active-learning acquisition scores and query strategies (issue 38): values on known inputs, gradient length
against autograd, each strategy's choice on a constructed pool, and clear errors for an empty or too small pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ext.engines import KCenterGreedyQuery, KNNQuery, MixtureQuery, RandomQuery, TopNQuery, make_query
from monai_ext.metrics import acquisition_score, expected_gradient_length_score, least_confidence_score, margin_score


@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_confidence_and_margin_on_known_probabilities(convert):
    p = convert(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]]))
    np.testing.assert_allclose(least_confidence_score(p), [0.0, 0.5, 2 / 3, 0.4])
    np.testing.assert_allclose(margin_score(p), [0.0, 1.0, 1.0, 0.7])
    with pytest.raises(ValueError, match="softmax"):
        margin_score(convert(np.array([[2.0, -1.0]])))


def test_segmentation_scores_reduce_over_voxels():
    p = np.zeros((2, 2, 2, 2))
    p[:, 0] = 1.0
    p[1, :, 0, 0] = 0.5       # one uncertain voxel in image 1
    np.testing.assert_allclose(least_confidence_score(p), [0.0, 0.5 / 4])
    np.testing.assert_allclose(least_confidence_score(p, reduction="max"), [0.0, 0.5])


@pytest.mark.parametrize("mode", ["max", "expected"])
def test_gradient_length_is_the_last_layers_gradient_norm(mode):
    torch.manual_seed(0)
    h, w, b = torch.randn(6, 5), torch.randn(3, 5, requires_grad=True), torch.zeros(3, requires_grad=True)
    logits = h @ w.T + b
    probs = logits.softmax(1)
    expected = []
    for i in range(6):
        norms = []
        for y in range(3):
            gw, gb = torch.autograd.grad(torch.nn.functional.cross_entropy(logits[i:i + 1], torch.tensor([y])),
                                         [w, b], retain_graph=True)
            norms.append(float(torch.sqrt((gw ** 2).sum() + (gb ** 2).sum())))
        pi = probs[i].detach().numpy()
        expected.append(norms[int(pi.argmax())] if mode == "max" else float((pi * np.array(norms)).sum()))
    np.testing.assert_allclose(expected_gradient_length_score(probs.detach(), h, mode=mode), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="embeddings"):
        acquisition_score("expected_gradient_length", probs.detach())


def _pool():
    """Two tight clusters of embeddings (indices 0-9 near 0, 10-19 near 10) and one far point (20); scores rise
    with the index inside cluster A only."""
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.1, (10, 2)), rng.normal(10, 0.1, (10, 2)), [[50.0, 50.0]]])
    scores = np.concatenate([np.linspace(0.5, 1.0, 10), np.zeros(10), [0.1]])
    return scores, emb


def test_top_n_and_mixture():
    scores, emb = _pool()
    labelled = np.zeros(21, bool)
    labelled[9] = True
    assert TopNQuery()(scores, emb, labelled, 3, np.random.default_rng(0)).tolist() == [6, 7, 8]
    mix = MixtureQuery(top_fraction=0.5)(scores, emb, labelled, 4, np.random.default_rng(0))
    assert {7, 8} <= set(mix.tolist()) and len(set(mix.tolist())) == 4 and 9 not in mix


def test_random_is_seeded_and_unlabelled():
    labelled = np.zeros(21, bool)
    labelled[:5] = True
    a = RandomQuery()(None, None, labelled, 6, np.random.default_rng(3))
    assert a.tolist() == RandomQuery()(None, None, labelled, 6, np.random.default_rng(3)).tolist()
    assert len(set(a.tolist())) == 6 and not labelled[a].any()


def test_core_set_spreads_and_knn_stays_near_its_anchors():
    scores, emb = _pool()
    labelled = np.zeros(21, bool)
    labelled[0] = True                         # cluster A is covered
    core = KCenterGreedyQuery()(scores, emb, labelled, 2, np.random.default_rng(0))
    assert 20 in core and any(10 <= i < 20 for i in core), "the far point, then the uncovered cluster"
    knn = KNNQuery(anchor_fraction=0.25)(scores, emb, labelled, 4, np.random.default_rng(0))
    assert 9 in knn and all(i < 10 for i in knn), "the top-scored anchor and its neighbours in cluster A"
    unc = KCenterGreedyQuery(candidate_fraction=0.3)(scores, emb, labelled, 2, np.random.default_rng(0))
    assert all(i < 10 for i in unc), "only the highest-scored candidates"


@pytest.mark.parametrize("name", ["random", "top_n", "mixture", "knn", "core_set"])
def test_empty_pool_and_too_large_budget_are_refused(name):
    scores, emb = _pool()
    query = make_query(name)
    with pytest.raises(ValueError, match="unlabelled pool is empty"):
        query(scores, emb, np.ones(21, bool), 1, np.random.default_rng(0))
    labelled = np.zeros(21, bool)
    labelled[:18] = True
    with pytest.raises(ValueError, match=r"budget of 5 images is larger than the unlabelled pool \(3 of 21"):
        query(scores, emb, labelled, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown query strategy"):
        make_query("uncertainty")


# --- the loop through bundles ------------------------------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from monai_ext.engines import ActiveLearningLoop, budget_schedule, pool_predictions  # noqa: E402

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def test_budget_schedule_fractions_counts_and_errors():
    assert budget_schedule(80, [0.1, 0.2, 0.4], total=100) == [10, 20, 40]
    assert budget_schedule(80, [5, 10]) == [5, 10]
    with pytest.raises(ValueError, match="pool is empty"):
        budget_schedule(0, [0.1])
    with pytest.raises(ValueError, match=r"budget of 90 images .* larger than the unlabelled pool of 80"):
        budget_schedule(80, [0.1, 0.9], total=100)
    with pytest.raises(ValueError, match="must grow"):
        budget_schedule(80, [0.2, 0.2])


def test_pool_predictions_hook_the_last_linear_and_handle_sigmoid_outputs():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    items = [{"image": np.random.default_rng(i).normal(size=(1, 2, 2)).astype(np.float32)} for i in range(5)]
    probs, emb = pool_predictions(net, items, lambda d: d, batch_size=2)
    assert probs.shape == (5, 3) and emb.shape == (5, 6) and np.allclose(probs.sum(1), 1)
    seg = torch.nn.Conv2d(1, 1, 1)
    probs, emb = pool_predictions(seg, items, lambda d: d)
    assert probs.shape == (5, 2, 2, 2) and emb.shape == (5, 1)
    with pytest.raises(ValueError, match="not a module"):
        pool_predictions(net, items, lambda d: d, embedding_layer="encoder")


def _check_record(work: Path, pool_size: int, counts: list[int], classes: bool = True) -> dict:
    record = json.loads((work / "cycles.json").read_text())
    assert [c["labelled"] for c in record["cycles"]] == counts and record["pool_size"] == pool_size
    first = record["cycles"][0]
    assert len(set(first["queried"])) == counts[1] - counts[0]
    # class histograms of the queries for image-level labels; none for segmentation masks
    assert sum(first["queried_histogram"].values()) == (len(first["queried"]) if classes else 0)
    assert (work / "cycle_1" / "model.pt").is_file()
    return record


def test_loop_runs_the_cxr_bundle_with_evaluation(tmp_path):
    from monai_ext.apps.active_learning_cxr import cxr_datalist

    data = tmp_path / "cxr"
    pool = cxr_datalist(data, synth_total=60)["training"]
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(data), "synth_total": 60, "max_epochs": 1,
              "channels": [4, 8, 8, 8], "ckpt_dir": "{cycle_dir}", "output_dir": "{cycle_dir}",
              "log_dir": "{cycle_dir}/logs"}
    record = ActiveLearningLoop(BUNDLES / "active_learning_cxr", ["train.yaml"], pool, [6, 12], tmp_path / "al",
                                strategy="core_set", eval_configs=["train.yaml", "evaluate.yaml"],
                                run_overrides=common).run()
    _check_record(tmp_path / "al", len(pool), [6, 12])
    assert 0 <= record["cycles"][1]["metrics"]["test_balanced_accuracy"] <= 1


def test_loop_drives_an_existing_classification_bundle(tmp_path):
    """brainnetgan_connectome unchanged: its training items key and input key are named, nothing else."""
    from monai_ext.apps.brainnetgan_connectome import brainnetgan_datalist
    from monai_ext.phantoms import synthesize_connectome_dataset

    data = tmp_path / "cx"
    synthesize_connectome_dataset(data, per_class=10, seed=0, progress=False)
    lists = brainnetgan_datalist(data)
    pool = lists["training"]
    ActiveLearningLoop(BUNDLES / "brainnetgan_connectome", ["train.yaml"], pool, [4, 8], tmp_path / "al",
                       strategy="top_n", score="expected_gradient_length", list_key="datalist", datalist=lists,
                       input_key="matrix",
                       run_overrides={"bundle_root": str(tmp_path), "dataset_dir": str(data), "max_epochs": 1,
                                      "train_mode": "real", "augmentation": "none",
                                      "ckpt_dir": "{cycle_dir}", "output_dir": "{cycle_dir}",
                                      "log_dir": "{cycle_dir}/logs"}).run()
    _check_record(tmp_path / "al", len(pool), [4, 8])


def test_loop_drives_an_existing_segmentation_bundle(tmp_path):
    """label_noise_bias_study unchanged: sigmoid outputs become two-class probabilities, scores are averaged over
    the pixels, the embeddings are the pooled features of an encoder block."""
    from monai_ext.apps.label_noise_bias_study import tumour_slice_datalist
    from monai_ext.phantoms import synthesize_brain_tumor_dataset

    synthesize_brain_tumor_dataset(tmp_path / "brats", cases=4, seed=2, progress=False)
    slices = {"num_val": 1, "num_test": 1, "synth_cases": 4}
    pool = tumour_slice_datalist(tmp_path / "brats", tmp_path / "slices", **slices)["training"]
    ActiveLearningLoop(BUNDLES / "label_noise_bias_study", ["train.yaml"], pool, [8, 16], tmp_path / "al",
                       strategy="knn", score="margin", list_key="training_list", transform_key="load_slices",
                       embedding_layer="encoder.1",
                       run_overrides={"bundle_root": str(tmp_path), "dataset_dir": str(tmp_path / "brats"),
                                      "slice_dir": str(tmp_path / "slices"), **slices, "channels": [4, 8],
                                      "batch_size": 8, "max_epochs": 1, "ckpt_dir": "{cycle_dir}",
                                      "output_dir": "{cycle_dir}", "log_dir": "{cycle_dir}/logs"}).run()
    _check_record(tmp_path / "al", len(pool), [8, 16], classes=False)


def test_loop_refuses_a_budget_beyond_the_pool_before_training(tmp_path):
    with pytest.raises(ValueError, match="larger than the unlabelled pool"):
        ActiveLearningLoop(BUNDLES / "active_learning_cxr", ["train.yaml"], [{"image": "a.png", "label": 0}] * 5,
                           [2, 10], tmp_path / "al")
    with pytest.raises(ValueError, match="pool is empty"):
        ActiveLearningLoop(BUNDLES / "active_learning_cxr", ["train.yaml"], [], [0.1], tmp_path / "al")
    assert not (tmp_path / "al").exists()


# --- the chest-radiograph bundle -----------------------------------------------------------------------------------

from monai_ext.bundle_helpers import run_bundle  # noqa: E402
from monai_ext.datalists import covid_radiography_datalist  # noqa: E402
from monai_ext.phantoms import CXR_CLASSES, cxr_class_counts, generate_cxr_image, synthesize_cxr_dataset  # noqa: E402

from error_chain import error_text  # noqa: E402

TINY_CXR = dict(synth_total=60, max_epochs=1, channels=[4, 8, 8, 8])


def test_radiographs_are_seeded_and_the_lesions_add_density_in_the_lungs():
    normal = generate_cxr_image(0, 11)
    assert normal.shape == (64, 64) and normal.dtype == np.uint8
    assert np.array_equal(normal, generate_cxr_image(0, 11)) and not np.array_equal(normal, generate_cxr_image(0, 12))
    # over 40 images per class: COVID-19 adds density to both lower lung fields, other pneumonia more to one side
    mean = {c: np.mean([generate_cxr_image(c, s).astype(float) for s in range(40)], axis=0) for c in range(3)}
    lower_right, lower_left = (slice(36, 52), slice(12, 26)), (slice(36, 52), slice(38, 52))
    for region in (lower_right, lower_left):
        assert mean[1][region].mean() > mean[0][region].mean() + 3
    side = [mean[2][r].mean() - mean[0][r].mean() for r in (lower_right, lower_left)]
    assert max(side) > 5 and max(side) > 1.3 * min(side)
    assert cxr_class_counts(3000, balanced=False) == {"normal": 2019, "covid": 715, "other_pneumonia": 266}
    assert set(cxr_class_counts(30, balanced=True).values()) == {10}
    with pytest.raises(ValueError, match="label"):
        generate_cxr_image(3, 0)


def test_database_layout_and_stratified_split(tmp_path):
    synthesize_cxr_dataset(tmp_path / "db", 60, balanced=True, progress=False)
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["COVID", "Normal", "Viral Pneumonia", "phantom.json"]
    lists = covid_radiography_datalist(tmp_path / "db")
    assert [len(lists[k]) for k in ("training", "validation", "testing")] == [48, 6, 6]
    for split in lists.values():
        assert sorted({it["label"] for it in split}) == [0, 1, 2]
    assert not {it["image"] for it in lists["training"]} & {it["image"] for it in lists["testing"]}
    with pytest.raises(FileNotFoundError, match="no class folder 'Lung_Opacity'"):
        covid_radiography_datalist(tmp_path / "db", classes=["Normal", "Lung_Opacity"])


@pytest.fixture(scope="module")
def cxr_trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("alcxr")
    run_bundle(BUNDLES / "active_learning_cxr", "train.yaml", bundle_root=str(root), **TINY_CXR)
    return root


def test_cxr_bundle_evaluates_and_classifies_a_folder(cxr_trained, tmp_path):
    root = cxr_trained
    run_bundle(BUNDLES / "active_learning_cxr", ["train.yaml", "evaluate.yaml"], bundle_root=str(root), **TINY_CXR)
    rows = dict(line.split(",") for line in (root / "eval" / "metrics.csv").read_text().splitlines())
    assert {"test_accuracy", "test_balanced_accuracy", "test_recall_class2"} <= set(rows)
    folder = root / "data" / "cxr_unbalanced" / "Normal" / "images"
    out = tmp_path / "classes.csv"
    run_bundle(BUNDLES / "active_learning_cxr", "inference.yaml", bundle_root=str(root), dataset_dir=str(folder),
               output_csv=str(out), channels=TINY_CXR["channels"])
    lines = out.read_text().splitlines()
    assert lines[0] == "image,class,p_normal,p_covid,p_other_pneumonia" and len(lines) == 1 + len(list(folder.iterdir()))
    assert all(line.split(",")[1] in CXR_CLASSES for line in lines[1:])


def test_cxr_inference_names_a_broken_image_and_writes_nothing(cxr_trained, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "classes.csv"
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLES / "active_learning_cxr", "inference.yaml", bundle_root=str(cxr_trained),
                   dataset_dir=str(bad), output_csv=str(out), channels=TINY_CXR["channels"])
    assert "broken.png" in error_text(excinfo) and not out.exists()
    (bad / "broken.png").unlink()
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLES / "active_learning_cxr", "inference.yaml", bundle_root=str(cxr_trained),
                   dataset_dir=str(bad), output_csv=str(out), channels=TINY_CXR["channels"])
    assert "no radiographs" in error_text(excinfo) and not out.exists()
