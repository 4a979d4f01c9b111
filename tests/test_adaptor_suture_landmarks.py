"""AdaptOR suture-point detection (issue 35): the two-domain valve phantom and its labelme labels, the dataset list,
the sample-weighted trainer, the CycleGAN pieces, the narrow FlexibleUNet encoder, and the bundle's training,
evaluation and inference through the bundle runner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks.nets import FlexibleUNet, PatchDiscriminator
from PIL import Image

from monai_ext.apps.adaptor_suture_landmarks import adaptor_datalist, cyclegan_pairs, translate_frames
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import adaptor_frame_datalist, read_labelme_points
from monai_ext.engines import CycleGANTrainer, SampleWeightedTrainer
from monai_ext.networks import NarrowResNetEncoder, ResNetTranslator
from monai_ext.phantoms import VALVE_DOMAINS, generate_valve_frame, sample_valve_surgery, synthesize_valve_dataset
from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "adaptor_suture_landmarks"
SMALL_DATA = dict(sim_surgeries=2, intraop_surgeries=3, frames_per_surgery=3, width=128, height=72, progress=False)
SPLIT = dict(validation_surgeries=["op02"], test_surgeries=["op03"])
TINY = dict(SPLIT, backbone="resnet10_w16", decoder_channels=[8, 8, 8, 8, 8], max_epochs=1, iterations_per_epoch=2,
            batch_size=2, crop_size=[64, 64], sigma=1.5)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("valve") / "data"
    synthesize_valve_dataset(root, **SMALL_DATA)
    return root


def test_valve_frames_are_reproducible_and_the_domains_differ():
    shots = {}
    for domain in VALVE_DOMAINS:
        surgery = sample_valve_surgery(np.random.default_rng(5), domain)
        image, points = generate_valve_frame(11, surgery)
        again, points_again = generate_valve_frame(11, surgery)
        assert image.shape == (3, 144, 256) and image.dtype == np.uint8 and np.array_equal(image, again)
        assert np.array_equal(points, points_again) and points.shape[1] == 2 and len(points) <= 15
        assert ((points >= 2) & (points <= [254, 142])).all()
        shots[domain] = image.astype(float)
    # intraop: darker (vignetting, blood) and blurred: less fine detail than the simulator's sharp rendering
    detail = {d: np.abs(np.diff(img, axis=2)).mean() / img.mean() for d, img in shots.items()}
    assert shots["intraop"].mean() < shots["sim"].mean() and detail["intraop"] != detail["sim"]
    counts = [len(generate_valve_frame(s, sample_valve_surgery(np.random.default_rng(0), "sim"))[1]) for s in range(16)]
    assert min(counts) <= 2 and max(counts) >= 12, "0-15 points per frame"


def test_labelme_files_round_trip_and_bad_ones_are_named(frames, tmp_path):
    items = adaptor_frame_datalist(frames)
    assert len(items) == 15 and {i["domain"] for i in items} == {"sim", "intraop"}
    item = items[0]
    doc = json.loads((Path(item["image"]).parents[1] / "point_labels" / f"{item['frame']}.json").read_text())
    assert [s["points"][0] for s in doc["shapes"]] == item["points"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"shapes": [{"label": "suture", "shape_type": "point", "points": [[1, 2], [3, 4]]}]}))
    with pytest.raises(ValueError, match=r"bad\.json: shape 0"):
        read_labelme_points(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="labelme"):
        read_labelme_points(bad)


def test_datalist_splits_weights_and_translated_frames(frames, tmp_path):
    split = adaptor_datalist(frames, **SPLIT, lambda_sim=0.5)
    assert {i["surgery"] for i in split["testing"]} == {"op03"} and {i["surgery"] for i in split["validation"]} == {"op02"}
    assert sorted({(i["domain"], i["weight"]) for i in split["training"]}) == [("intraop", 1.0), ("sim", 0.5)]
    assert all(i["domain"] == "intraop" for i in adaptor_datalist(frames, **SPLIT, lambda_sim=0.0)["training"])
    assert len(adaptor_datalist(frames, **SPLIT, sim_frames="none", intraop_train_frames=1)["training"]) == 1
    with pytest.raises(FileNotFoundError, match="run train_cyclegan.yaml"):
        adaptor_datalist(frames, **SPLIT, sim_frames="translated", translated_dir=tmp_path / "none")
    with pytest.raises(ValueError, match=r"\['op09'\] have no labelled intraop frames"):
        adaptor_datalist(frames, validation_surgeries=["op09"], test_surgeries=["op03"])
    identity = torch.nn.Identity()
    out = translate_frames(identity, split["sim"], tmp_path / "translated", progress=False)
    translated = adaptor_datalist(frames, **SPLIT, sim_frames="translated", translated_dir=out)["training"]
    first = next(i for i in translated if i["domain"] == "translated")
    source = next(i for i in split["sim"] if i["frame"] == first["frame"] and i["surgery"] == first["surgery"])
    assert np.array_equal(np.asarray(Image.open(first["image"])), np.asarray(Image.open(source["image"])))
    assert first["points"] == source["points"]
    with pytest.raises(FileExistsError, match="translated_dir"):
        translate_frames(identity, split["sim"], out, progress=False)
    assert len(cyclegan_pairs(split["sim"], split["intraop_training"], seed=1)) == len(split["sim"])


def test_sample_weighted_trainer_weighs_each_sample():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 1, bias=False)
    x, y = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    per = torch.nn.MSELoss(reduction="none")
    trainer = SampleWeightedTrainer(device="cpu", max_epochs=1, train_data_loader=[{}], network=net,
                                    optimizer=torch.optim.SGD(net.parameters(), lr=0.0), loss_function=per)
    trainer._weights = torch.tensor([0.0, 2.0])
    expected = 2.0 * per(net(x[1:]), y[1:]).mean() / 2
    assert torch.allclose(trainer.loss_function(net(x), y), expected)
    with pytest.raises(KeyError, match="'weight'"):
        trainer._iteration(trainer, {"image": x, "label": y})


def test_cyclegan_iteration_trains_both_directions():
    torch.manual_seed(0)
    g_ab, g_ba = ResNetTranslator(channels=4, num_res_blocks=1), ResNetTranslator(channels=4, num_res_blocks=1)
    d_a, d_b = (PatchDiscriminator(spatial_dims=2, num_layers_d=2, channels=4, in_channels=3) for _ in range(2))
    before = [p.detach().clone() for p in g_ba.parameters()]
    batch = {"image_a": torch.rand(2, 3, 16, 16), "image_b": torch.rand(2, 3, 16, 16)}
    trainer = CycleGANTrainer("cpu", 1, [batch], g_ab, g_ba, d_a, d_b,
                              torch.optim.Adam(list(g_ab.parameters()) + list(g_ba.parameters()), 1e-3),
                              torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), 1e-3), pool_size=2)
    out = trainer._iteration(trainer, batch)
    assert set(out) == {"g_loss", "cycle_loss", "d_a_loss", "d_b_loss"} and all(np.isfinite(list(out.values())))
    assert any(not torch.equal(a, b) for a, b in zip(before, g_ba.parameters()))
    assert ResNetTranslator(channels=4, num_res_blocks=1)(torch.rand(1, 3, 20, 12)).shape == (1, 3, 20, 12)
    with pytest.raises(ValueError, match="divisible by 4"):
        g_ab(torch.rand(1, 3, 18, 16))


def test_narrow_encoder_serves_flexible_unet():
    net = FlexibleUNet(3, 1, "resnet18_w32", spatial_dims=2, decoder_channels=(8, 8, 8, 8, 8))
    x = torch.rand(1, 3, 64, 32)
    assert net(x).shape == (1, 1, 64, 32)
    assert torch.allclose(torch.jit.script(net.eval())(x), net(x), atol=1e-5), "the Model Zoo exports TorchScript"
    with pytest.raises(ValueError, match="no pretrained weights"):
        NarrowResNetEncoder(pretrained=True)


def test_bundle_trains_evaluates_and_infers(frames, tmp_path):
    root = tmp_path / "bundle"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(frames), **TINY)
    assert (root / "models" / "model.pt").is_file() and (root / "models" / "model_final.pt").is_file()
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], bundle_root=str(root), dataset_dir=str(frames), **TINY)
    rows = dict(line.strip().split(",") for line in open(root / "eval" / "metrics.csv"))
    assert {"test_f1", "test_precision", "test_sensitivity"} <= set(rows)
    assert len(list((root / "eval" / "points").glob("op03_frame_*.json"))) == 3
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(frames / "intraop" / "op03" / "images"),
               output_dir=str(tmp_path / "inferred"), backbone="resnet10_w16", decoder_channels=[8, 8, 8, 8, 8])
    with open(tmp_path / "inferred" / "points.csv") as f:
        assert {Path(r["image"]).name for r in csv.DictReader(f)} <= {f"frame_000{i}.png" for i in range(3)}


def test_inference_maps_points_back_to_the_input_pixels(tmp_path):
    """A 1x1 convolution that passes a bright Gaussian spot through as the heatmap: on a frame at twice the training
    scale (input_zoom 0.5) the point comes back at twice the coordinates (the image affine through the zoom)."""
    net = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        net.weight.fill_(10.0)
        net.bias.fill_(-15.0)
    torch.save(net.state_dict(), tmp_path / "spot.pt")
    found = {}
    for name, scale in (("small", 1), ("big", 2)):
        yy, xx = np.mgrid[0 : 144 * scale, 0 : 256 * scale]
        spot = np.exp(-((xx - 100 * scale) ** 2 + (yy - 40 * scale) ** 2) / (2 * (3.0 * scale) ** 2))
        Image.fromarray((np.repeat(spot[..., None], 3, axis=2) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(tmp_path / f"{name}.png"),
                   output_dir=str(tmp_path / name), ckpt_path=str(tmp_path / "spot.pt"), input_zoom=1.0 / scale,
                   network_def={"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 1, "kernel_size": 1})
        with open(tmp_path / name / "points.csv") as f:
            found[name] = np.array([[float(r["x"]), float(r["y"])] for r in csv.DictReader(f)])
        doc = json.loads((tmp_path / name / f"{name}.json").read_text())
        assert [s["points"][0] for s in doc["shapes"]] == found[name].tolist()
    np.testing.assert_allclose(found["small"], [[100.0, 40.0]], atol=0.5)
    np.testing.assert_allclose(found["big"], [[200.0, 80.0]], atol=1.5)


def test_bundle_rejects_bad_input_and_writes_nothing(frames, tmp_path):
    gray = tmp_path / "gray"
    gray.mkdir()
    Image.fromarray(np.zeros((72, 128), np.uint8)).save(gray / "frame.png")
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(gray),
                   output_dir=str(tmp_path / "out"), ckpt_path=str(tmp_path / "missing.pt"))
    assert "missing.pt" in error_text(excinfo) and not (tmp_path / "out").exists()
    torch.save(torch.nn.Conv2d(3, 1, 1).state_dict(), tmp_path / "conv.pt")
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(gray),
                   output_dir=str(tmp_path / "out"), ckpt_path=str(tmp_path / "conv.pt"),
                   network_def={"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 1, "kernel_size": 1})
    assert "frame.png" in error_text(excinfo) and "expects RGB images" in error_text(excinfo)
    assert not (tmp_path / "out").exists()
    data = tmp_path / "data"
    synthesize_valve_dataset(data, **SMALL_DATA)
    label = data / "intraop" / "op01" / "point_labels" / "frame_0000.json"
    doc = json.loads(label.read_text())
    doc["shapes"].append({"label": "suture", "shape_type": "point", "points": [[500.0, 10.0]]})
    label.write_text(json.dumps(doc))
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(tmp_path / "b"), dataset_dir=str(data),
                   **dict(TINY, lambda_sim=0.0))
    assert "op01/images/frame_0000.png" in error_text(excinfo) and "outside the image grid" in error_text(excinfo)
    assert not (tmp_path / "b" / "models" / "model.pt").exists()


def _mixed_batch():
    torch.manual_seed(0)
    return {"image": torch.rand(4, 3, 16, 16), "label": torch.rand(4, 1, 16, 16), "weight": torch.ones(4),
            "target_domain": torch.tensor([1.0, 1.0, 0.0, 0.0])}


def test_m2_discriminator_learns_the_domains_and_the_network_is_pushed_to_fool_it():
    from monai_ext.apps.adaptor_suture_landmarks import DomainAdversarialHeatmapTrainer

    net = torch.nn.Conv2d(3, 1, 3, padding=1)
    disc = torch.nn.Conv2d(1, 1, 3, padding=1)
    d_before = [p.detach().clone() for p in disc.parameters()]
    trainer = DomainAdversarialHeatmapTrainer(
        device="cpu", max_epochs=1, train_data_loader=[_mixed_batch()], network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(reduction="none"),
        discriminator=disc, d_optimizer=torch.optim.SGD(disc.parameters(), lr=0.1), lambda_adv=1.0)
    trainer.run()
    assert trainer.state.adv_loss > 0 and trainer.state.d_loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(d_before, disc.parameters()))
    with pytest.raises(KeyError, match="target_domain"):
        trainer._iteration(trainer, {k: v for k, v in _mixed_batch().items() if k != "target_domain"})


def test_m3_peers_learn_their_own_domain_and_each_other():
    from monai_ext.apps.adaptor_suture_landmarks import CollaborativeHeatmapTrainer, bernoulli_kl

    p = torch.rand(2, 1, 4, 4)
    assert torch.allclose(bernoulli_kl(p, torch.logit(p.clamp(1e-6, 1 - 1e-6))), torch.zeros(2), atol=1e-5)
    assert (bernoulli_kl(p, torch.zeros(2, 1, 4, 4)) >= 0).all()
    net, peer = torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.Conv2d(3, 1, 3, padding=1)
    peer_before = [q.detach().clone() for q in peer.parameters()]
    trainer = CollaborativeHeatmapTrainer(
        device="cpu", max_epochs=1, train_data_loader=[_mixed_batch()], network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(reduction="none"),
        peer=peer, peer_optimizer=torch.optim.SGD(peer.parameters(), lr=0.1), lambda_kl=0.1)
    trainer.run()
    assert np.isfinite(trainer.state.peer_loss)
    assert any(not torch.equal(a, b) for a, b in zip(peer_before, peer.parameters()))
    # without the peer term the network's loss is its supervised loss on the intraop samples only
    trainer.lambda_kl, trainer._target, trainer._weights = 0.0, torch.tensor([1.0, 0.0]), torch.ones(2)
    trainer._peer_pred = torch.zeros(2, 1, 4, 4)
    pred, label = torch.zeros(2, 1, 4, 4), torch.stack([torch.ones(1, 4, 4), 5 * torch.ones(1, 4, 4)])
    assert float(trainer.loss_function(pred, label)) == pytest.approx(0.5)


def test_domain_balanced_weights_draw_each_domain_half_the_time():
    from monai_ext.apps.adaptor_suture_landmarks import domain_balanced_weights

    items = [{"target_domain": 1.0}] * 2 + [{"target_domain": 0.0}] * 6
    w = np.array(domain_balanced_weights(items))
    assert w[:2].sum() == pytest.approx(w[2:].sum()) and w[0] == pytest.approx(3 * w[2])
