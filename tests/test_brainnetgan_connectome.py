"""BrainNetGAN connectome augmentation (issue 34): phantoms, connectome transforms and dataset list, BrainNetCNN /
graph-convolution networks, the GAN trainer, SMOTE / ADASYN baselines, graph-feature divergences and the bundle's
configs end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ext.apps.brainnetgan_connectome import (
    BrainNetGANTrainer,
    ConnectomeGenerator,
    connectome_training_set,
    fake_set_divergence,
    gan_connectomes,
    load_connectome_set,
    oversampled_connectomes,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import connectome_datalist, connectome_files
from monai_ext.metrics import GraphFeatureDivergence, connectome_graph_features, histogram_kl
from monai_ext.networks import BrainNetCNN, DenseGraphConvClassifier, EdgeToEdgeConv
from monai_ext.phantoms import connectome_atlas, sample_connectome, synthesize_connectome_dataset
from monai_ext.transforms import (
    ConnectomeInputError,
    LoadConnectome,
    LoadConnectomed,
    ScaleConnectome,
    symmetric_to_upper_triangle,
    upper_triangle_to_symmetric,
)

from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "brainnetgan_connectome"
TINY_GAN = dict(max_epochs=2, batch_size=8, g_hidden=[16, 32], latent_dim=8, d_e2e=[4], d_e2n=8, d_n2g=8,
                d_fc=[8], d_train_steps=2)


@pytest.fixture(scope="module")
def connectomes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cx") / "data"
    synthesize_connectome_dataset(out, per_class=20, seed=0, progress=False)
    return out


def test_phantom_is_a_symmetric_count_matrix_with_an_ad_effect_in_its_modules():
    atlas = connectome_atlas()
    assert atlas["positions"].shape == (90, 3) and atlas["module"].max() == 7
    assert 0.25 < atlas["skeleton"][np.triu_indices(90, 1)].mean() < 0.35
    a = sample_connectome(np.random.default_rng(3), 0, atlas)
    assert a.shape == (90, 90) and a.dtype == np.float32 and np.array_equal(a, a.T)
    assert np.all(np.diag(a) == 0) and np.array_equal(a, np.round(a)) and a.min() >= 0
    np.testing.assert_array_equal(a, sample_connectome(np.random.default_rng(3), 0, atlas))
    # the edges touching the AD modules (1 and 5) are weaker in AD, on average over subjects; the others are not
    touch = np.isin(atlas["module"], (1, 5))
    touch = touch[:, None] | touch[None]
    means = {}
    for label in (0, 1):
        m = np.stack([np.log1p(sample_connectome(np.random.default_rng(100 + i), label, atlas)) for i in range(30)])
        means[label] = (m[:, touch & atlas["skeleton"]].mean(), m[:, ~touch & atlas["skeleton"]].mean())
    assert means[1][0] < means[0][0] - 0.15 and abs(means[1][1] - means[0][1]) < 0.1
    with pytest.raises(ValueError, match="label"):
        sample_connectome(np.random.default_rng(0), 2, atlas)


def test_dataset_writer_layout_and_refusal(connectomes, tmp_path):
    rows = list(csv.DictReader(open(connectomes / "labels.csv")))
    assert len(rows) == 40 and {r["label"] for r in rows} == {"CN", "AD"}
    assert len(list((connectomes / "matrices").glob("*.npy"))) == 40
    assert json.loads((connectomes / "dataset.json").read_text())["num_nodes"] == 90
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError):
        synthesize_connectome_dataset(tmp_path / "full", per_class=2)


def test_datalist_is_stratified_and_names_what_is_wrong(connectomes, tmp_path):
    dl = connectome_datalist(connectomes, split_seed=1)
    assert [len(dl[k]) for k in ("training", "validation", "testing")] == [24, 8, 8]
    for part in dl.values():
        assert sorted(np.bincount([it["label"] for it in part])) == [len(part) // 2] * 2
    subjects = [it["subject"] for part in dl.values() for it in part]
    assert len(set(subjects)) == 40
    assert dl["testing"] != connectome_datalist(connectomes, split_seed=2)["testing"]
    bad = tmp_path / "bad"
    (bad / "matrices").mkdir(parents=True)
    np.save(bad / "matrices" / "a.npy", np.zeros((90, 90)))
    (bad / "labels.csv").write_text("subject,label\na,CN\nb,AD\n")
    with pytest.raises(FileNotFoundError, match="for b"):
        connectome_datalist(bad)
    (bad / "labels.csv").write_text("subject,label\na,MCI\n")
    with pytest.raises(ValueError, match="'MCI'"):
        connectome_datalist(bad)
    assert [f["subject"] for f in connectome_files(bad)] == ["a"]
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        connectome_datalist(tmp_path / "nothing")


def test_loader_checks_every_way_a_matrix_can_be_wrong(tmp_path):
    good = np.random.default_rng(0).random((90, 90))
    good = good + good.T
    np.savetxt(tmp_path / "good.csv", good, delimiter=",")
    np.savetxt(tmp_path / "good.txt", good)
    for name in ("good.csv", "good.txt"):
        m = LoadConnectome()(tmp_path / name)
        assert m.shape == (1, 90, 90) and float(m[0].diagonal().abs().max()) == 0
        assert m.meta["filename_or_obj"].endswith(name)
    cases = {
        "missing.npy": (None, "not found"),
        "small.npy": (good[:80, :80], "expects 90 x 90"),
        "rect.npy": (good[:, :80], "square"),
        "asym.npy": (good + np.triu(np.ones((90, 90)), 1), "not symmetric"),
        "neg.npy": (-good, "negative"),
        "nan.npy": (np.where(good > 1.9, np.nan, good), "NaN"),
    }
    for name, (array, message) in cases.items():
        if array is not None:
            np.save(tmp_path / name, array)
        with pytest.raises(ConnectomeInputError, match=message) as e:
            LoadConnectomed("m")({"m": str(tmp_path / name)})
        assert name in str(e.value)
    (tmp_path / "corrupt.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ConnectomeInputError, match="corrupt.npy: cannot be read"):
        LoadConnectome()(tmp_path / "corrupt.npy")


def test_scaling_and_upper_triangle_mapping():
    counts = np.zeros((1, 4, 4), np.float32)
    counts[0, 0, 1] = counts[0, 1, 0] = 1000.0
    counts[0, 2, 3] = counts[0, 3, 2] = 9.0
    counts[0, 1, 1] = 5.0
    scaled = ScaleConnectome()(counts)
    assert isinstance(scaled, np.ndarray) and scaled.max() == 1.0 and scaled[0, 1, 1] == 0.0
    np.testing.assert_allclose(scaled[0, 2, 3], np.log1p(9) / np.log1p(1000), rtol=1e-6)
    np.testing.assert_allclose(ScaleConnectome()(torch.as_tensor(counts)).numpy(), scaled)
    with pytest.raises(ConnectomeInputError):
        ScaleConnectome()(-counts)
    v = torch.arange(1.0, 7.0)
    m = upper_triangle_to_symmetric(v)
    assert m.shape == (4, 4) and torch.equal(m, m.T) and torch.equal(symmetric_to_upper_triangle(m), v)
    assert m[0, 1] == 1 and m[0, 3] == 3 and m[2, 3] == 6
    with pytest.raises(ConnectomeInputError):
        upper_triangle_to_symmetric(torch.ones(5))


def test_brainnetcnn_layers_are_the_cross_shaped_convolutions():
    torch.manual_seed(0)
    e2e = EdgeToEdgeConv(2, 3, 6)
    x = torch.rand(2, 2, 6, 6)
    row = torch.nn.functional.conv2d(x, e2e.row_weight[:, :, None, :], e2e.row_bias)
    col = torch.nn.functional.conv2d(x, e2e.col_weight[:, :, :, None], e2e.col_bias)
    torch.testing.assert_close(e2e(x), row + col)
    # edge (i, j) sees only row i and column j
    x2 = x.clone()
    x2[:, :, 4, 5] += 1.0
    changed = (e2e(x2) - e2e(x)).abs().sum((0, 1)) > 0
    assert changed[4].all() and changed[:, 5].all() and changed.sum() == 6 + 6 - 1
    for net in (BrainNetCNN(6, 2, e2e_channels=(4,), e2n_channels=4, n2g_channels=4, fc_channels=(4,)),
                DenseGraphConvClassifier(6, 2, graph_channels=(4,), fc_channels=(4,))):
        assert net(torch.rand(3, 1, 6, 6)).shape == (3, 2)
        with pytest.raises(ValueError, match="expected connectivity matrices"):
            net(torch.rand(3, 1, 5, 5))


def test_generator_writes_symmetric_matrices_of_the_asked_classes():
    g = ConnectomeGenerator(num_nodes=10, latent_dim=4, hidden_channels=(8,))
    with torch.no_grad():
        x = g.sample(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 10, 10) and torch.equal(x, x.transpose(-1, -2))
    assert float(x[:, 0].diagonal(dim1=-2, dim2=-1).abs().max()) == 0 and 0 <= float(x.min()) and float(x.max()) <= 1
    # the bundle's sampling path (mirrored straight into its output) gives the same matrices as sample()
    fx, fy = gan_connectomes(g, {0: 1, 1: 2}, seed=0)
    with torch.no_grad():
        ref = g.sample(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0))
    assert fy.tolist() == [0, 1, 1] and torch.equal(torch.as_tensor(fx), ref)
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        g.condition(torch.tensor([2]))
    with pytest.raises(ValueError, match="codes"):
        g(torch.zeros(2, 5))


def test_gan_trainer_updates_all_three_networks(connectomes):
    torch.manual_seed(0)
    x, y = load_connectome_set(connectome_datalist(connectomes)["training"])
    g = ConnectomeGenerator(latent_dim=8, hidden_channels=(16,))
    d = BrainNetCNN(90, 1, e2e_channels=(4,), e2n_channels=8, n2g_channels=8, fc_channels=(8,), dropout=0.0)
    c = BrainNetCNN(90, 2, e2e_channels=(4,), e2n_channels=8, n2g_channels=8, fc_channels=(8,))
    before = [[p.detach().clone() for p in n.parameters()] for n in (g, d, c)]
    data = torch.utils.data.DataLoader([{"matrix": m, "label": int(c)} for m, c in zip(x, y)], batch_size=8)
    opt = lambda n: torch.optim.Adam(n.parameters(), 1e-3)  # noqa: E731
    trainer = BrainNetGANTrainer("cpu", 1, data, g, opt(g), d, opt(d), c, opt(c), d_train_steps=2, seed=0)
    trainer.run()
    out = trainer.state.output
    assert {"d_loss", "g_loss", "c_loss", "gp", "wasserstein", "c_acc_real"} <= set(out) and out["gp"] >= 0
    for net, old in zip((g, d, c), before):
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), old)), type(net).__name__
    with pytest.raises(ValueError, match="matrices with B labels"):
        trainer._iteration(trainer, {"matrix": torch.rand(2, 1, 80, 80), "label": torch.zeros(2)})


def test_smote_and_adasyn_make_as_many_symmetric_matrices_as_asked(connectomes):
    x, y = load_connectome_set(connectome_datalist(connectomes)["training"])
    for method in ("smote", "adasyn"):
        fx, fy = oversampled_connectomes(x, y, {0: 12, 1: 12}, method, seed=0)
        assert fx.shape[1:] == (1, 90, 90) and np.allclose(fx, np.swapaxes(fx, -1, -2))
        counts = np.bincount(fy, minlength=2)
        assert (counts == 12).all() if method == "smote" else (abs(counts - 12) <= 3).all()
    items = connectome_datalist(connectomes)["training"]
    assert len(connectome_training_set(items, "real+fake", "smote")) == 2 * len(items)
    assert {it["source"] for it in connectome_training_set(items, "fake", "smote")} == {"smote"}
    with pytest.raises(ValueError, match="'real' takes augmentation 'none'"):
        connectome_training_set(items, "real", "gan")


def test_graph_feature_divergence_is_zero_for_a_set_and_itself():
    rng = np.random.default_rng(0)
    a = rng.random((6, 12, 12)) * (rng.random((6, 12, 12)) < 0.4)
    a = np.triu(a, 1) + np.triu(a, 1).transpose(0, 2, 1)
    f = connectome_graph_features(a)
    assert f["node_strength"].shape == (6, 12) and f["global_efficiency"].shape == (6, 1)
    same = GraphFeatureDivergence()(a, a)
    assert all(abs(v) < 1e-9 for k, v in same.items() if k.endswith("_kl"))
    denser = np.minimum(a + 0.3 * (np.triu(rng.random((6, 12, 12)), 1) > 0.5), 1.0)
    denser = np.triu(denser, 1) + np.triu(denser, 1).transpose(0, 2, 1)
    other = GraphFeatureDivergence()(a, denser)
    assert other["global_efficiency_kl"] > 0.5 and other["node_strength_mmd"] > 0.1
    assert histogram_kl(np.zeros(5), np.zeros(5)) == 0.0


def test_bundle_trains_the_gan_and_the_classifier_evaluates_infers_and_generates(connectomes, tmp_path):
    root = tmp_path / "b"
    common = dict(bundle_root=str(root), dataset_dir=str(connectomes), latent_dim=8, g_hidden=[16, 32])
    run_bundle(BUNDLE, "train_gan.yaml", **{**TINY_GAN, **common})
    assert (root / "models" / "generator.pt").is_file() and (root / "logs" / "state" / "brainnetgan_state.pt").is_file()
    for configs in ("train.yaml", ["train.yaml", "evaluate.yaml"]):
        run_bundle(BUNDLE, configs, **common, max_epochs=2, train_mode="real+fake", augmentation="gan")
    rows = dict(r for r in csv.reader(open(root / "eval" / "metrics.csv")))
    assert {"test_accuracy", "test_balanced_accuracy", "test_auc"} <= set(rows)
    assert len(list(csv.reader(open(root / "eval" / "predictions.csv")))) == 8
    single = connectomes / "matrices" / "sub-0003.npy"
    run_bundle(BUNDLE, "inference.yaml", bundle_root=str(root), dataset_dir=str(single),
               output_dir=str(tmp_path / "inf"), ckpt_path=str(root / "models" / "model.pt"))
    (row,) = list(csv.reader(open(tmp_path / "inf" / "predictions.csv")))
    assert row[0] == "sub-0003" and abs(float(row[1]) + float(row[2]) - 1) < 1e-5
    gen = tmp_path / "gen"
    run_bundle(BUNDLE, "generate.yaml", bundle_root=str(root), output_dir=str(gen), per_class=3,
               generator_path=str(root / "models" / "generator.pt"), latent_dim=8, g_hidden=[16, 32])
    assert len(connectome_datalist(gen, val_fraction=0.3, test_fraction=0.3)["training"]) == 2
    with pytest.raises(Exception) as e:  # an existing non-empty output folder: nothing overwritten
        run_bundle(BUNDLE, "generate.yaml", bundle_root=str(root), output_dir=str(gen), per_class=3,
                   generator_path=str(root / "models" / "generator.pt"), latent_dim=8, g_hidden=[16, 32])
    assert "not an empty folder" in error_text(e) or "exists" in error_text(e)
    divergence = fake_set_divergence(connectomes, tmp_path / "div.json", "gan", root / "models" / "generator.pt",
                                     generator_kwargs={"latent_dim": 8, "hidden_channels": [16, 32]},
                                     threshold=0.6, max_per_class=2)  # an untrained generator's dense matrices are slow
    assert set(divergence) == {"CN", "AD", "mean"} and (tmp_path / "div.json").is_file()


def test_bundle_inference_names_a_wrong_matrix_and_missing_weights(connectomes, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "subject_a.npy", np.random.default_rng(0).random((90, 90)))  # not symmetric
    net = tmp_path / "model.pt"
    torch.save(DenseGraphConvClassifier(90, 2).state_dict(), net)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, "inference.yaml", dataset_dir=str(folder), output_dir=str(tmp_path / "out"),
                   ckpt_path=str(net))
    assert "subject_a.npy: not symmetric" in error_text(e)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, "inference.yaml", dataset_dir=str(connectomes), output_dir=str(tmp_path / "out"),
                   ckpt_path=str(tmp_path / "none.pt"))
    assert "none.pt" in error_text(e)
