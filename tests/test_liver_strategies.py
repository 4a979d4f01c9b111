"""Strategies of the liver bundle: active learning (paper 003: uncertainty ranking of unlabelled cases and the
simulated loop; the strategies share round 0, entropy adds the cases the round's model is least sure of, random adds
others) and FBPAug's smooth/sharp kernel agreement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from monai_ext.apps.liver_tumor_ct_seg import kernel_agreement, rank_unlabelled, score_cases, simulate_active_learning
from monai_ext.apps.liver_tumor_ct_seg import fbp_agreement
from monai_ext.phantoms import synthesize_liver_tumor_dataset

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "liver_tumor_ct_seg"
TINY = {"pixdim": [8.0, 8.0, 8.0], "channels": [4, 8, 16], "strides": [2, 2], "patch_size": [32, 32],
        "device": "$torch.device('cpu')", "samples_per_volume": 4}
INFER = {k: TINY[k] for k in ("pixdim", "channels", "strides")}


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("liver_al")
    data = tmp / "data"
    synthesize_liver_tumor_dataset(data, cases=8, seed=3, shape=(48, 48, 32), spacing=(8.0, 8.0, 8.0),
                                   contrast="mixed", progress=False)
    kw = dict(initial=2, step=2, rounds=2, steps_per_round=2, num_val=1, num_test=1, overrides=TINY,
              work=tmp / "runs", bundle_dir=BUNDLE)
    ent = simulate_active_learning(data, tmp / "entropy.json", strategy="entropy", seed=0, **kw)
    rnd = simulate_active_learning(data, tmp / "random.json", strategy="random", seed=0, **kw)
    return {"tmp": tmp, "data": data, "entropy": ent, "random": rnd}


def test_rounds_share_the_start_and_add_pool_cases(loop):
    ent, rnd = loop["entropy"], loop["random"]
    assert [r["labelled"] for r in ent["rounds"]] == [2, 4] == [r["labelled"] for r in rnd["rounds"]]
    assert ent["dice_liver_round0"] == rnd["dice_liver_round0"]  # the same initial cases, trained once
    assert len(list((loop["tmp"] / "runs").glob("train_*"))) == 3  # round 0 shared, round 1 per strategy
    for rep in (ent, rnd):
        added = rep["rounds"][0]["added"]
        assert len(added) == 2 and len(set(added)) == 2
        assert all(0.0 <= rep[f"dice_liver_round{r}"] <= 1.0 for r in range(2))
    assert json.loads((loop["tmp"] / "entropy.json").read_text())["strategy"] == "entropy"


def test_entropy_adds_the_most_uncertain_cases(loop):
    """Recompute the scores of the round-0 model on the pool: the two it added are the top two."""
    run0 = next(d for d in (loop["tmp"] / "runs").glob("train_*")
                if len(json.loads((d / "datalist.json").read_text())["training"]) == 2)
    initial = {Path(c["image"]).name for c in json.loads((run0 / "datalist.json").read_text())["training"]}
    images = sorted(str(p) for p in (loop["data"] / "imagesTr").glob("*.nii.gz"))
    datalist = json.loads((run0 / "datalist.json").read_text())
    held = {Path(c["image"]).name for c in datalist["validation"] + datalist["testing"]}
    pool = [p for p in images if Path(p).name not in initial | held]
    ranked = rank_unlabelled(pool, run0 / "model.pt", loop["tmp"] / "ranked.json", bundle_dir=BUNDLE,
                             overrides=INFER)
    assert [r["rank"] for r in ranked] == list(range(1, len(pool) + 1))
    assert all(a["uncertainty"] >= b["uncertainty"] for a, b in zip(ranked, ranked[1:]))
    assert {Path(r["case"]).name for r in ranked[:2]} == set(loop["entropy"]["rounds"][0]["added"])
    assert json.loads((loop["tmp"] / "ranked.json").read_text()) == ranked


def test_bad_arguments_are_named(loop, tmp_path):
    with pytest.raises(ValueError, match="strategy"):
        simulate_active_learning(loop["data"], tmp_path / "x.json", strategy="greedy")
    with pytest.raises(ValueError, match="fewer than initial"):
        simulate_active_learning(loop["data"], tmp_path / "x.json", initial=6, step=2, rounds=2, num_val=1,
                                 num_test=1)
    with pytest.raises(ValueError, match="no dropout"):
        score_cases([str(next((loop["data"] / "imagesTr").glob("*.nii.gz")))],
                    next((loop["tmp"] / "runs").glob("train_*/model.pt")), method="mc_dropout", bundle_dir=BUNDLE,
                    overrides=INFER)


def test_kernel_agreement_of_smooth_and_sharp_copies(loop, monkeypatch):
    model = next((loop["tmp"] / "runs").glob("train_*/model.pt"))
    rep = kernel_agreement(model, loop["data"], loop["tmp"] / "agree.json", num_val=1, num_test=1,
                           bundle_dir=BUNDLE, overrides=INFER)
    assert len(rep["cases"]) == 1 and rep["kernels"] == {"smooth": [-1.0, 2.0], "sharp": [8.0, 2.0]}
    assert 0.0 <= rep["agreement_liver"] <= 1.0
    assert json.loads((loop["tmp"] / "agree.json").read_text())["agreement_liver"] == rep["agreement_liver"]
    # the same kernel twice: the predictions agree exactly
    monkeypatch.setitem(fbp_agreement.REFERENCE_KERNELS, "sharp", fbp_agreement.REFERENCE_KERNELS["smooth"])
    same = kernel_agreement(model, loop["data"], loop["tmp"] / "same.json", num_val=1, num_test=1,
                            bundle_dir=BUNDLE, overrides=INFER)
    assert same["agreement_liver"] == 1.0 or math.isnan(same["agreement_liver"])
