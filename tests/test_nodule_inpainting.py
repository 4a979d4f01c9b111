"""CT-SGAN's learned nodule injector / eraser (conditional inpainting GANs of a VOI's central region), their VOI
data and training pairs, the bundle configs that train them and the nodule-classifier study config."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from monai_ext.apps.ctsgan_chest_ct_synthesis import (
    NODULE_HU_WINDOW,
    NoduleInpaintingGenerator,
    NoduleInpaintingTrainer,
    NodulePairCritic,
    balance_voi_samples,
    central_region_mask,
    crop_voi,
    eraser_pairs,
    injector_pairs,
    inpaint_ct_voi,
    inpainting_batch,
    inserted_nodule_vois,
    learned_voi_inserter,
    nodule_voi_samples,
    phantom_nodule_vois,
    sphere_mask,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.phantoms import generate_chest_ct
from monai_ext.transforms import hu_to_unit, unit_to_hu

torch.set_num_threads(1)

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "ctsgan_chest_ct_synthesis"
FEAT = [4, 4, 8, 8, 8, 4]
SHAPE = [96, 96, 96]  # small phantoms (2 mm): a 192 mm field of view still holds lung and nodules
TINY = dict(num_cases=1, phantom_shape=SHAPE, voi_size=32, region_size=16, features=FEAT, d_channels=4,
            max_epochs=1, epoch_length=1, batch_size=2, seed=0)


def _voi_batch(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    voi = torch.rand(b, 1, 32, 32, 32, generator=g) * 2 - 1
    region = torch.as_tensor(central_region_mask(32, 16))[None].expand(b, -1, -1, -1, -1).contiguous()
    nod = torch.as_tensor(sphere_mask(32, 12.0, (2.0, 2.0, 2.0)))[None].expand(b, -1, -1, -1, -1).contiguous()
    return voi, region, nod


@pytest.fixture(scope="module")
def phantom_samples():
    return phantom_nodule_vois(2, seed=3, voi_size=32, shape=SHAPE)


# ------------------------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("mode", ["inject", "erase"])
def test_generator_shapes_and_passthrough_outside_region(mode):
    torch.manual_seed(0)
    g = NoduleInpaintingGenerator(mode, features=FEAT)
    voi, region, nod = _voi_batch()
    out = g(voi, region, nod if mode == "inject" else None)
    assert out.shape == voi.shape and float(out.abs().max()) <= 1.0
    outside = region == 0
    assert torch.equal(out[outside], voi[outside])  # bit for bit outside the region
    assert not torch.allclose(out[~outside], voi[~outside])  # generated inside
    cond = g.condition(voi, region, nod if mode == "inject" else None)
    assert cond.shape[1] == (3 if mode == "inject" else 2)
    if mode == "inject":  # the injector never sees the region's content, the eraser does
        assert torch.equal(g(voi * (1 - region) + 0.3 * region, region, nod), out)
    else:
        assert not torch.equal(g(voi * (1 - region) + 0.3 * region, region), out)
    d = NodulePairCritic(mode, channels=4)
    assert d(cond, out).shape[:2] == (2, 1)
    # the default generator fits the bundle's 5 MB weight limit
    assert sum(p.numel() for p in NoduleInpaintingGenerator(mode).parameters()) * 4 < 5e6


def test_bad_input_errors():
    with pytest.raises(ValueError, match="mode"):
        NoduleInpaintingGenerator("paint")
    with pytest.raises(ValueError, match="mode"):
        NodulePairCritic("insert")
    g = NoduleInpaintingGenerator("inject", features=FEAT)
    voi, region, nod = _voi_batch(1)
    with pytest.raises(ValueError, match="nodule_mask"):
        g(voi, region)
    with pytest.raises(ValueError, match="divisible by 16"):
        g(voi[..., :24], region[..., :24], nod[..., :24])
    with pytest.raises(ValueError, match="voi"):
        g(voi[0], region[0], nod[0])
    ct = np.full((40, 40, 40), -800.0, np.float32)
    ct[:5] = 40.0
    with pytest.raises(ValueError, match="outside the image"):
        crop_voi(ct, (60, 20, 20), 16)
    with pytest.raises(ValueError, match="outside the image"):
        inpaint_ct_voi(g, ct, (20, -30, 20), 32, 16, 10.0, (2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="outside the image"):
        nodule_voi_samples(ct, [{"centre_mm": [500.0, 0.0, 0.0], "diameter_mm": 8.0}], np.eye(4), 16, 0)
    with pytest.raises(ValueError, match="Hounsfield"):
        nodule_voi_samples((ct + 1000) / 1400, [], np.eye(4), 16, 1)
    with pytest.raises(ValueError, match="diameter_mm"):
        inpaint_ct_voi(g, ct, (20, 20, 20), 32, 16)
    with pytest.raises(ValueError, match="injector"):
        learned_voi_inserter(NoduleInpaintingGenerator("erase", features=FEAT))
    with pytest.raises(ValueError, match="erase"):
        inpainting_batch({"image": voi, "region": region}, "erase", "cpu")


def test_hu_mapping_round_trip():
    hu = torch.tensor([-1000.0, -300.0, 0.0, 400.0])
    assert torch.allclose(unit_to_hu(hu_to_unit(hu, NODULE_HU_WINDOW), NODULE_HU_WINDOW), hu, atol=1e-3)
    assert float(hu_to_unit(torch.tensor(-3000.0), NODULE_HU_WINDOW)) == -1.0


# ------------------------------------------------------------------------------------------------ data


def test_voi_samples_and_pairs(phantom_samples):
    s = phantom_samples
    pos = [x for x in s if x["label"] == 1]
    neg = [x for x in s if x["label"] == 0]
    assert pos and len(pos) == len(neg)
    assert all(x["image"].shape == (1, 32, 32, 32) and x["image"].dtype == np.float32 for x in s)
    # a centred solid nodule is soft tissue in the VOI centre; nodule-free lung VOIs are mostly air-like there
    c = slice(15, 17)
    assert np.median([x["image"][0, c, c, c].mean() for x in pos]) > -300
    assert np.median([x["image"][0, c, c, c].mean() for x in neg]) < -500
    bal = balance_voi_samples(s + neg[:1], seed=1)
    assert sum(x["label"] for x in bal) * 2 == len(bal)

    inj = injector_pairs(s, 16, seed=0)
    assert len(inj) == len(s) and {p["pair"] for p in inj} == {"annotated", "rule-inserted"}
    for p, x in zip(inj, s):
        assert p["region"].sum() == 16**3 and p["nodule_mask"].sum() > 0
        if p["pair"] == "rule-inserted":  # a nodule at the centre of a nodule-free VOI, the rest untouched
            assert p["image"][0, c, c, c].mean() > x["image"][0, c, c, c].mean() + 200
    era = eraser_pairs(s, 16, seed=0)
    for p in era:
        diff = np.abs(p["image"] - p["target"])[0] > 0
        assert diff.any()
        assert not diff[p["region"][0] == 0].any()  # pairs differ only inside the region the eraser fills


def test_inpaint_ct_voi_changes_only_the_region():
    case = generate_chest_ct(SHAPE, (2.0, 2.0, 2.0), seed=1, lesions=False)
    lung = (case.label == 1) | (case.label == 2)
    g = NoduleInpaintingGenerator("inject", features=FEAT)
    ins = learned_voi_inserter(g, 32, 16, (2.0, 2.0, 2.0))
    img = case.image[None].copy()
    centre = np.argwhere(lung)[len(np.argwhere(lung)) // 2]
    out = ins(img, lung, centre, 10.0, 0)
    assert out.shape == img.shape and np.array_equal(img, case.image[None])  # input not modified
    box = np.zeros(SHAPE, bool)
    box[tuple(slice(int(c) - 8, int(c) + 8) for c in centre)] = True
    assert np.array_equal(out[0][~box], img[0][~box])
    assert not np.allclose(out[0][box], img[0][box])
    # near the border: only the part of the region inside the image is written
    edge = inpaint_ct_voi(g, img, (2, centre[1], centre[2]), 32, 16, 10.0, (2.0, 2.0, 2.0))
    assert edge.shape == img.shape and not np.array_equal(edge, img)
    vois = inserted_nodule_vois(0, 2, seed=0, voi_size=32, shape=SHAPE, inserter=ins, case_seeds=[1])
    assert [v["label"] for v in vois].count(1) == 2 and vois[0]["source"] == "learned-inserted"


def test_trainer_updates_generator_and_critic(phantom_samples):
    pairs = injector_pairs(phantom_samples[:4], 16, seed=0)
    torch.manual_seed(0)
    g = NoduleInpaintingGenerator("inject", features=FEAT)
    d = NodulePairCritic("inject", channels=4)
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = [p.detach().clone() for p in d.parameters()]
    keys = ("image", "region", "nodule_mask")
    loader = DataLoader([{k: p[k] for k in keys} for p in pairs], batch_size=2)
    tr = NoduleInpaintingTrainer("cpu", 1, loader, g, torch.optim.Adam(g.parameters(), 1e-3), d,
                                 torch.optim.Adam(d.parameters(), 1e-3), epoch_length=2)
    tr.run()
    out = tr.state.output
    assert np.isfinite([out["g_l1"], out["g_adv"], out["d_loss"]]).all() and out["d_loss"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(g0, g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    with pytest.raises(TypeError, match="NoduleInpaintingGenerator"):
        NoduleInpaintingTrainer("cpu", 1, loader, d, torch.optim.Adam(d.parameters()), d,
                                torch.optim.Adam(d.parameters()))


# ------------------------------------------------------------------------------------------------ bundle


# train_inpainting.yaml holds both trainings; train_injector.yaml / train_eraser.yaml only set mode
TRAIN_CONFIGS = {"inject": ["train_inpainting.yaml", "train_injector.yaml"],
                 "erase": ["train_inpainting.yaml", "train_eraser.yaml"]}
COMMITTED = ("nodule_injector.pt", "nodule_eraser.pt")


def _committed_weights():
    return {n: (BUNDLE / "models" / n).read_bytes() if (BUNDLE / "models" / n).is_file() else None for n in COMMITTED}


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint_bundle")
    committed = _committed_weights()
    for configs in TRAIN_CONFIGS.values():
        run_bundle(BUNDLE, configs, bundle_root=str(root), **TINY)
    assert _committed_weights() == committed, "a test run must not overwrite the bundle's committed weights"
    return root


@pytest.mark.parametrize("configs,overrides,name", [
    (["train_inpainting.yaml"], {}, "nodule_injector"),  # mode inject is the default
    (TRAIN_CONFIGS["inject"], {}, "nodule_injector"),
    (TRAIN_CONFIGS["erase"], {}, "nodule_eraser"),
    (["train_inpainting.yaml"], {"mode": "erase"}, "nodule_eraser"),
])
def test_train_config_output_names_follow_mode(configs, overrides, name, tmp_path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / c) for c in configs])
    parser.update(dict(overrides, bundle_root=str(tmp_path)))
    assert parser.get_parsed_content("model_name") == name + ".pt"
    assert Path(parser.get_parsed_content("log_dir")) == tmp_path / "logs" / name
    assert Path(parser.get_parsed_content("ckpt_dir")) == tmp_path / "models"


def test_train_override_files_set_only_mode():
    from monai.bundle import ConfigParser

    for mode, configs in TRAIN_CONFIGS.items():
        assert ConfigParser.load_config_file(BUNDLE / "configs" / configs[-1]) == {"mode": mode}


@pytest.mark.parametrize("mode,name", [("inject", "nodule_injector.pt"), ("erase", "nodule_eraser.pt")])
def test_train_configs_run_through_bundle_runner(trained_root, mode, name):
    state = torch.load(trained_root / "models" / name, weights_only=True)
    g = NoduleInpaintingGenerator(mode, features=FEAT)
    g.load_state_dict(state)
    assert all(torch.isfinite(v).all() for v in state.values())
    sub = "nodule_injector" if mode == "inject" else "nodule_eraser"
    full = torch.load(trained_root / "logs" / sub / "state" / "state.pt", weights_only=True)
    assert set(full) == {"generator", "critic", "g_optimizer", "d_optimizer"}


def test_train_config_rejects_bad_mode(tmp_path):
    with pytest.raises(Exception) as info:
        run_bundle(BUNDLE, ["train_inpainting.yaml"], bundle_root=str(tmp_path), **dict(TINY, mode="paint"))
    err = info.value
    while err.__cause__ is not None:
        err = err.__cause__
    assert isinstance(err, ValueError) and "mode" in str(err)


def test_classifier_study_config_runs(trained_root):
    out = trained_root / "study"
    run_bundle(BUNDLE, ["evaluate_nodule_classifier.yaml"], output_dir=str(out),
               injector_path=str(trained_root / "models" / "nodule_injector.pt"), injector_features=FEAT,
               real_cases=1, test_cases=1, synth_cases=1, synth_per_case=2, augment_per_case=2, phantom_shape=SHAPE,
               steps=2, finetune_steps=1, seeds=[0], channels=[4, 4])
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["accuracy"]) == {"real", "synthetic_rule", "synthetic_learned", "pretrain_rule", "pretrain_learned",
                                  "real_plus_rule", "real_plus_learned"}
    assert all(0.0 <= v["mean"] <= 1.0 for v in m["accuracy"].values())
    assert m["counts"]["test"]["positive"] == m["counts"]["test"]["negative"] > 0
    assert m["counts"]["inserted_rule"]["positive"] == 2 and not set(m["test_subjects"]) & set(m["real_subjects"])
    assert "| real |" in (out / "results.md").read_text()
    with pytest.raises(Exception):
        run_bundle(BUNDLE, ["evaluate_nodule_classifier.yaml"], output_dir=str(out / "x"), modes=["imaginary"])
