"""``python -m monai_ext study``: the study runner on a tiny fake bundle, the paired statistics on known numbers,
the bundles' study files, and the app study functions that replaced the bundle scripts (tiny settings)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.cli.study import (
    StudyError,
    available_studies,
    load_study,
    paired_comparison,
    read_run_metric,
    run_study,
    study_main,
    substitute,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"

# a bundle config that writes a score depending on `offset` and `seed` (metrics.csv as MetricsSaver writes it,
# and a JSON file), and counts its runs
RUN_YAML = """
imports:
  - $import pathlib
  - $import json
output_dir: .
offset: 0.0
seed: 0
value: "$@offset + 0.01 * @seed"
run:
  - "$pathlib.Path(@output_dir).mkdir(parents=True, exist_ok=True)"
  - "$pathlib.Path(@output_dir, 'metrics.csv').write_text('score,' + str(@value) + chr(10) + 'other,1.0' + chr(10))"
  - "$pathlib.Path(@output_dir, 'out.json').write_text(json.dumps({'nested': {'score': @value, 'list': [1.5, 2.5]}}))"
  - "$pathlib.Path(@output_dir, 'count.txt').open('a').write('x')"
"""

STUDY_YAML = """
description: a tiny study
vars:
  base: 0.5
  prep_dir: "{work}/prep"
seeds: [0, 1, 2]
baseline: a
arms:
  a: {offset: "{base}"}
  b: {offset: 0.6}
  c: {offset: 0.6, _seeds: [0, 1]}
comparisons: [[c, b]]
overrides: {output_dir: "{run_dir}", seed: "{seed}", where: "{bundle}/configs"}
prepare:
  - configs: [run.yaml]
    for_each: {k: [1, 2]}
    overrides: {output_dir: "{prep_dir}/{k}"}
    creates: "{prep_dir}/{k}/metrics.csv"
run:
  - configs: [run.yaml]
metrics:
  score: {file: metrics.csv}
  json_score: {file: out.json, key: "nested#score"}
  second: {file: out.json, key: "nested#list#1"}
"""


@pytest.fixture
def tiny_bundle(tmp_path):
    b = tmp_path / "tiny_bundle"
    (b / "configs").mkdir(parents=True)
    (b / "docs").mkdir()
    shutil.copy(BUNDLES / "vae_manifold_augmentation" / "configs" / "logging.conf", b / "configs" / "logging.conf")
    (b / "configs" / "metadata.json").write_text(json.dumps({"version": "0.1.0"}))
    (b / "configs" / "run.yaml").write_text(RUN_YAML)
    (b / "configs" / "study.yaml").write_text(STUDY_YAML)
    broken = STUDY_YAML.replace("second: {file: out.json, key: \"nested#list#1\"}", "second: {file: metrics.csv, key: nope}")
    (b / "configs" / "study_broken.yaml").write_text(broken)
    return b


def test_paired_statistics_on_known_numbers():
    # d = 1, 2, 3: mean 2, sd 1, t = 2 sqrt(3) with 2 degrees of freedom, exact Wilcoxon p = 2 / 2^3
    c = paired_comparison([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert c["n"] == 3 and c["mean_difference"] == pytest.approx(2.0) and c["std_difference"] == pytest.approx(1.0)
    half = 4.302652729749464 / math.sqrt(3)  # t_{0.975, 2}
    assert c["ci95"] == pytest.approx([2.0 - half, 2.0 + half])
    assert c["t_test_p"] == pytest.approx(0.07417990022744853)
    assert c["wilcoxon_p"] == pytest.approx(0.25)
    assert (c["better"], c["worse"], c["ties"]) == (3, 0, 0)
    errors = paired_comparison([1.0, 2.0, 3.0], [2.0, 4.0, 3.0], lower_is_better=True)  # an error that grew twice
    assert (errors["better"], errors["worse"], errors["ties"]) == (0, 2, 1) and errors["mean_difference"] == 1.0
    # the 10-seed comparison committed in vae_manifold_augmentation/docs/rescore_new_subjects_val100.json
    real = [0.7044444444444444, 0.6816666666666666, 0.6433333333333333, 0.6644444444444444, 0.63,
            0.633888888888889, 0.6622222222222223, 0.6811111111111111, 0.7033333333333334, 0.7727777777777778]
    manifold = [0.72, 0.6988888888888889, 0.6811111111111111, 0.6738888888888889, 0.6722222222222223,
                0.6377777777777778, 0.7088888888888889, 0.6838888888888889, 0.7216666666666667, 0.7466666666666666]
    c = paired_comparison(real, manifold)
    assert c["mean_difference"] == pytest.approx(0.01677777777777777)
    assert c["std_difference"] == pytest.approx(0.021708253852448855)
    assert c["t_test_p"] == pytest.approx(0.037117418249641154)
    assert c["wilcoxon_p"] == pytest.approx(0.037109375)
    assert (c["better"], c["worse"]) == (9, 1)
    lo, hi = c["ci95"]
    assert lo < c["mean_difference"] < hi and (hi - lo) / 2 == pytest.approx(2.2621571627409915 * 0.021708253852448855 / math.sqrt(10))
    # one seed, or no varying difference: no test
    one = paired_comparison([0.5], [0.7])
    assert one["mean_difference"] == pytest.approx(0.2) and one["t_test_p"] is None and one["ci95"] is None
    same = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert same["t_test_p"] is None and same["wilcoxon_p"] is None and same["ties"] == 2
    with pytest.raises(StudyError, match="equally long"):
        paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(StudyError, match="finite"):
        paired_comparison([1.0, float("nan")], [1.0, 2.0])


def test_substitution_keeps_types_and_monai_expressions():
    names = {"work": "/w", "seeds": [0, 1], "seed": 3}
    assert substitute("{seeds}", names) == [0, 1]
    assert substitute("{work}/runs/x_seed{seed}", names) == "/w/runs/x_seed3"
    expr = "${'a': @b} + {other}"
    assert substitute(expr, names) == expr
    assert substitute({"k": ["{seed}", {"n": "{work}"}], 0: "{seed}"}, names) == {"k": [3, {"n": "/w"}], 0: 3}


def test_study_runs_resumes_and_compares(tiny_bundle, tmp_path, capsys):
    work = tmp_path / "work"
    res = run_study(tiny_bundle, work=work, docs=True)
    out = capsys.readouterr().out
    assert "prepare 0: run.yaml done" in out and "1/8 a seed 0: score 0.5000" in out
    assert res["per_run"]["score"]["a"] == pytest.approx({"0": 0.5, "1": 0.51, "2": 0.52})
    assert set(res["per_run"]["score"]["c"]) == {"0", "1"}  # the arm's own seeds
    assert res["per_run"]["second"]["b"]["0"] == 2.5
    comp = res["comparisons"]["score"]
    assert comp["b - a"]["mean_difference"] == pytest.approx(0.1) and comp["b - a"]["better"] == 3
    assert comp["b - a"]["t_test_p"] is None  # the difference does not vary
    assert comp["c - b"]["n"] == 2 and comp["c - b"]["mean_difference"] == pytest.approx(0.0)
    for stem in (work / "study", tiny_bundle / "docs" / "study"):
        assert json.loads(stem.with_suffix(".json").read_text())["summary"]["score"]["a"]["mean"] == pytest.approx(0.51)
        assert "| b - a | 3 |" in stem.with_suffix(".md").read_text()
    assert (work / "prep" / "1" / "metrics.csv").is_file() and (work / "prep" / "2" / "metrics.csv").is_file()
    record = json.loads((work / "runs" / "study" / "a_seed1" / "study_run.json").read_text())
    assert record["metrics"]["score"] == pytest.approx(0.51) and record["settings"][0]["overrides"]["offset"] == 0.5

    # resumable: nothing runs again, the prepare step is skipped
    run_study(tiny_bundle, work=work)
    out = capsys.readouterr().out
    assert "prepare 0: run.yaml skipped" in out and out.count("done before") == 8
    assert (work / "runs" / "study" / "a_seed1" / "count.txt").read_text() == "x"
    # a var changes arm a only; a config override changes every run; arms / seeds restrict the runs
    res = run_study(tiny_bundle, work=work, sets=["base=0.7"], arms=["a", "b"], seeds=[1])
    out = capsys.readouterr().out
    assert "a seed 1: settings changed" in out and "b seed 1: done before" in out
    assert res["per_run"]["score"] == {"a": {"1": pytest.approx(0.71)}, "b": {"1": pytest.approx(0.61)}}
    res = run_study(tiny_bundle, work=work, sets={"offset": 1.0}, arms=["b"], seeds=[0])
    assert res["per_run"]["score"]["b"]["0"] == pytest.approx(1.0)
    # the same bundle in another checkout resumes the same runs (its path is recorded as {bundle})
    assert record["settings"][0]["overrides"]["where"] == "{bundle}/configs"
    moved = shutil.copytree(tiny_bundle, tmp_path / "elsewhere" / "tiny_bundle")
    run_study(moved, work=work, arms=["a"], seeds=[0, 2])
    assert capsys.readouterr().out.count("done before") == 2


def test_study_errors_are_clear(tiny_bundle, tmp_path, capsys):
    work = tmp_path / "work"
    with pytest.raises(StudyError, match=r"unknown arm\(s\) \['z'\].*its arms: a, b, c"):
        run_study(tiny_bundle, arms=["z"], work=work)
    with pytest.raises(StudyError, match="no study 'nothing'; available: study, broken"):
        run_study(tiny_bundle, "nothing", work=work)
    with pytest.raises(StudyError, match="no bundle 'no_such_bundle'"):
        run_study("no_such_bundle")
    with pytest.raises(StudyError, match="KEY=VALUE"):
        run_study(tiny_bundle, sets=["novalue"], work=work)
    with pytest.raises(StudyError, match=r"run a seed 0: metric 'second': no row 'nope' in .*metrics.csv; it holds \['other', 'score'\]"):
        run_study(tiny_bundle, "broken", work=work, arms=["a"], seeds=[0])
    with pytest.raises(StudyError, match=r"no key 'nested#missing'.*at nested it holds \['list', 'score'\]"):
        read_run_metric(work / "runs" / "study_broken" / "a_seed0", "m", {"file": "out.json", "key": "nested#missing"})
    with pytest.raises(StudyError, match="not found"):
        read_run_metric(work / "runs" / "study_broken" / "a_seed0", "m", {"file": "absent.json"})
    bad = tiny_bundle / "configs" / "study_bad.yaml"
    bad.write_text(STUDY_YAML.replace("baseline: a", "baseline: d"))
    with pytest.raises(StudyError, match="baseline 'd' is not an arm"):
        load_study(tiny_bundle, "bad")
    bad.write_text(STUDY_YAML.replace("configs: [run.yaml]\nmetrics", "configs: [missing.yaml]\nmetrics"))
    with pytest.raises(StudyError, match="config 'missing.yaml' not found"):
        load_study(tiny_bundle, "bad")
    bad.write_text(STUDY_YAML + "\nextra: 1\n")
    with pytest.raises(StudyError, match=r"unknown key\(s\) \['extra'\]"):
        load_study(tiny_bundle, "bad")
    capsys.readouterr()
    assert study_main([str(tiny_bundle), "--arms", "a,z", "--work", str(work)]) == 2
    assert "unknown arm(s) ['z']" in capsys.readouterr().err
    assert study_main([str(tiny_bundle), "--seeds", "x"]) == 2


def test_bundle_studies_load_and_plan(tmp_path):
    """Every study file of the bundles parses, names existing configs and app functions, and plans its runs."""
    import importlib

    expected = {
        "vae_manifold_augmentation": {"study", "single_pair", "per_seed_pair", "digits", "oasis_calibration", "oasis_split"},
        "us_variational_style_transfer": {"study", "content_preservation", "loss_network"},
        "ctsgan_chest_ct_synthesis": {"study", "inpainting"},
        "box_supervised_seg": {"study", "best_val"},
        "ao_cone_label_transfer": {"study"},
        "brainnetgan_connectome": {"study", "graph_features"},
        "us_inpainting_hpi": {"study"},
        "deepmcat_series_clustering": {"study"},
        "fsnet_joint_training": {"study"},
        "active_learning_cxr": {"study"},
        "metahistoseg": {"study", "single_source"},
        "oneshot_cochlea_landmarks": {"study"},
        "adaptor_suture_landmarks": {"study"},
        "fewshot_dag_xray_landmarks": {"study", "10_labelled"},
        "aneurysm_tof_mra_detection": {"study", "holdout", "irregular"},
    }
    for bundle, names in expected.items():
        assert set(available_studies(BUNDLES / bundle)) == names
        assert not (BUNDLES / bundle / "scripts").exists() or not list((BUNDLES / bundle / "scripts").glob("*.py"))
        for name in names:
            spec = load_study(bundle, name)
            for step in spec["prepare"] + spec["run"] + spec["finalize"]:
                if "call" in step:
                    module, _, fn = step["call"].rpartition(".")
                    assert callable(getattr(importlib.import_module(module), fn)), step["call"]
            plan = run_study(bundle, name, work=tmp_path / bundle / name, dry_run=True)["plan"]
            assert len(plan) == sum(len(a.get("_seeds", spec["seeds"])) for a in spec["arms"].values())
    plan = run_study("vae_manifold_augmentation", dry_run=True, arms=["real+prior"])["plan"]
    assert plan == [("real+prior", s) for s in range(5)]
    v = run_study("vae_manifold_augmentation", dry_run=True, work=tmp_path / "w", sets=["new_test_per_class=20"])["vars"]
    assert v["new_subjects_data"] == str(tmp_path / "w" / "data" / "brain_ad_new_subjects_100+20")


def test_command_line_lists_the_studies():
    res = subprocess.run([sys.executable, "-m", "monai_ext", "study", "ctsgan_chest_ct_synthesis", "--list"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "inpainting: configs/study_inpainting.yaml; arms trained, untrained" in res.stdout


# --- the app study functions (what the bundle scripts did), tiny settings -------------------------------------


def _tiny_brain_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    ds = {}
    yy, xx = np.mgrid[:64, :64] / 64 - 0.5
    for split, n in (("training", 3), ("validation", 1), ("test", 1)):
        ds[split] = []
        for c in (0, 1):
            for i in range(n):
                arr = (0.8 * ((xx**2 + yy**2) < (0.3 + 0.1 * c) ** 2) + 0.05 * rng.random((64, 64))).astype(np.float32)
                root.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(arr, np.diag([2.0, 2.0, 1.0, 1.0])), str(root / f"{split}_{c}_{i}.nii.gz"))
                ds[split].append({"image": f"{split}_{c}_{i}.nii.gz", "label": c})
    (root / "dataset.json").write_text(json.dumps(ds))
    return root


def test_vae_study_functions(tmp_path):
    from monai.bundle import ConfigParser

    from monai_ext.apps.vae_manifold_augmentation import (
        check_generated_images,
        real_vs_generated_grid,
        score_brain_classifier,
    )

    bundle = BUNDLES / "vae_manifold_augmentation"
    cfg = ConfigParser()
    cfg.read_config(str(bundle / "configs" / "train.yaml"))
    torch.manual_seed(0)
    torch.save(cfg.get_parsed_content("network_def").state_dict(), tmp_path / "model.pt")
    data = tmp_path / "new_subjects"
    res = score_brain_classifier(str(tmp_path / "model.pt"), str(tmp_path / "s.json"), str(data),
                                 str(bundle / "configs" / "train.yaml"), test_per_class=2, skip_first=1)
    assert len(json.loads((data / "dataset.json").read_text())["test"]) == 6  # 3 per class rendered, 2 scored
    assert 0.0 <= res["balanced_accuracy"] <= 1.0
    assert json.loads((tmp_path / "s.json").read_text())["balanced_accuracy"] == res["balanced_accuracy"]
    with pytest.raises(ValueError, match="fewer than"):
        score_brain_classifier(str(tmp_path / "model.pt"), str(tmp_path / "s.json"), str(data),
                               str(bundle / "configs" / "train.yaml"), test_per_class=5)

    brain = _tiny_brain_dataset(tmp_path / "brain")
    gen = tmp_path / "generated" / "class1_hmc_0123"
    gen.mkdir(parents=True)
    for i in range(2):
        nib.save(nib.Nifti1Image(np.full((64, 64), 0.1 * (i + 1), np.float32), np.diag([2.0, 2.0, 1.0, 1.0])),
                 str(gen / f"gen_{i}.nii.gz"))
    report = check_generated_images(str(brain), [str(tmp_path / "generated")], str(tmp_path / "check.json"))
    assert set(report) == {"class0_real", "class1_real", "class1_hmc_0123"}
    assert report["class1_hmc_0123"]["n"] == 2 and report["class1_hmc_0123"]["affines_equal_to_real"]
    assert report["class1_hmc_0123"]["max"] == pytest.approx(0.2)
    with pytest.raises(FileNotFoundError, match="no gen_"):
        check_generated_images(str(brain), [str(brain)], str(tmp_path / "c.json"))

    pair = {c: str(bundle / "models" / f"rhvae_class{c}_seed0.pt") for c in (0, 1)}
    png = real_vs_generated_grid(str(brain), pair, str(tmp_path / "grid.png"), per_row=2)
    from PIL import Image

    assert Image.open(png).size == (110 + 2 * 66, 6 * 66)  # 2 classes x (real, prior, manifold) rows


def test_us_fewshot_scoring_function(tmp_path):
    from monai.bundle import ConfigParser

    from monai_ext.apps.us_variational_style_transfer import save_us_style_checkpoint, score_fewshot_segmenter
    from monai_ext.phantoms import synthesize_us_dataset

    bundle = BUNDLES / "us_variational_style_transfer"
    data = tmp_path / "data"
    synthesize_us_dataset(data, subjects=3, styles=["handheld_curvilinear", "gel_phantom"], seed=5, shape=(64, 64),
                          progress=False)
    cfg = ConfigParser()
    cfg.read_config(str(bundle / "configs" / "evaluate.yaml"))
    cfg["bundle_root"] = str(bundle)
    torch.manual_seed(0)
    save_us_style_checkpoint(cfg.get_parsed_content("network"), tmp_path / "segmenter.pt")
    kw = dict(dataset_dir=str(data), config_file=str(bundle / "configs" / "evaluate.yaml"), data_seed=5)
    res = score_fewshot_segmenter(str(tmp_path / "segmenter.pt"), str(tmp_path / "o.json"), **kw)
    assert res["images"] == 3 and 0.0 <= res["dice"] <= 1.0 and len(res["dice_per_class"]) == 3
    with pytest.raises(ValueError, match="data_seed 0"):
        score_fewshot_segmenter(str(tmp_path / "segmenter.pt"), str(tmp_path / "o.json"), **dict(kw, data_seed=0))
    with pytest.raises(FileNotFoundError, match="no segmenter"):
        score_fewshot_segmenter(str(tmp_path / "nothing.pt"), str(tmp_path / "o.json"), **kw)


def test_nodule_classifier_study_caches_its_vois(tmp_path):
    from monai_ext.apps.ctsgan_chest_ct_synthesis import nodule_classifier_study

    kw = dict(modes=["real", "real_plus_rule"], seeds=[0], real_cases=1, test_cases=1, augment_per_case=2,
              phantom_shape=[96, 96, 96], steps=2, channels=[4, 4], voi_cache=str(tmp_path / "vois.pt"))
    first = nodule_classifier_study(str(tmp_path / "a"), **kw)
    cache = torch.load(tmp_path / "vois.pt", weights_only=True)
    assert set(cache) == {"test", "real", "inserted_rule"}
    # one mode at a time from the cache: the same accuracy as with both modes in one call
    again = nodule_classifier_study(str(tmp_path / "b"), **dict(kw, modes=["real_plus_rule"]))
    assert again["accuracy"]["real_plus_rule"]["per_seed"] == first["accuracy"]["real_plus_rule"]["per_seed"]
    assert again["counts"] == {k: v for k, v in first["counts"].items()}
    with pytest.raises(ValueError, match="modes"):
        nodule_classifier_study(str(tmp_path / "c"), **dict(kw, modes=["imaginary"]))
    with pytest.raises(FileNotFoundError, match="injector"):
        nodule_classifier_study(str(tmp_path / "c"), **dict(kw, modes=["synthetic_learned"], injector_path=None))
