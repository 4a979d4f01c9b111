"""The synthetic brain-tumour MR phantom (four contrasts, BraTS labels) and its BraTS-layout writer."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from monai_ext.datalists import brats_datalist
from monai_ext.phantoms import (
    BRAIN_TUMOR_CONTRASTS,
    BRAIN_TUMOR_LABELS,
    brain_tumor_affine,
    generate_brain_tumor_case,
    mni152_t1,
    mni152_tissue_maps,
    render_brain_tumor_case,
    sample_brain_tumor_params,
    synthesize_brain_tumor_dataset,
)

torch.set_num_threads(1)

SEEDS = (0, 1, 7)  # two high-grade cases (all labels) and a low-grade one (no enhancing tumour)
FLAIR, T1, T1C, T2 = range(4)


def _without_artefacts(params: dict) -> dict:
    """The same case without bias field and noise (tissue contrast only)."""
    clean = json.loads(json.dumps(params))
    for acq in clean["acquisition"].values():
        acq["bias_coeff"], acq["noise_std"] = 0.0, 0.0
    return clean


@pytest.fixture(scope="module")
def cases() -> dict[int, tuple]:
    """seed -> (params, image, label, maps, image without bias field and noise) on the default grid."""
    out = {}
    for seed in SEEDS:
        params = sample_brain_tumor_params(seed)
        clean, _ = render_brain_tumor_case(_without_artefacts(params))
        out[seed] = (params, *render_brain_tumor_case(params, return_maps=True), clean)
    return out


def _unmix(channel: np.ndarray, maps: dict, sel: np.ndarray) -> np.ndarray:
    """Pure CSF, GM, WM intensities by least squares over partial-volume voxels ``sel``."""
    a = np.stack([maps["csf"][sel], maps["gm"][sel], maps["wm"][sel]], 1)
    return np.linalg.lstsq(a, channel[sel], rcond=None)[0]


def _healthy(label: np.ndarray, maps: dict) -> np.ndarray:
    return maps["brain"] & (label == 0) & (maps["csf"] + maps["gm"] + maps["wm"] > 0.95)


def _best_threshold_dice(x: np.ndarray, mask: np.ndarray) -> float:
    """Best Dice of ``x > t`` or ``x < t`` against ``mask`` over every threshold t."""
    order = np.argsort(x, kind="stable")
    m = mask[order].astype(np.int64)
    n_pred = np.arange(len(x) + 1)
    best = 0.0
    for tp in (np.concatenate([[0], np.cumsum(m[::-1])]), np.concatenate([[0], np.cumsum(m)])):
        best = max(best, float(np.max(2.0 * tp / (n_pred + m.sum()))))
    return best


def test_shapes_labels_determinism_and_replay():
    case = generate_brain_tumor_case(1)
    image, label, affine, meta = case
    assert image.shape == (4, 64, 64, 48) and image.dtype == np.float32
    assert label.shape == (64, 64, 48) and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2, 4} and set(BRAIN_TUMOR_LABELS) == {0, 1, 2, 4}
    assert BRAIN_TUMOR_CONTRASTS == ("flair", "t1", "t1c", "t2") and meta["contrasts"] == list(BRAIN_TUMOR_CONTRASTS)
    np.testing.assert_array_equal(affine, brain_tumor_affine())
    np.testing.assert_allclose(np.diag(affine)[:3], 3.25)
    assert np.isfinite(image).all() and image.min() >= 0.0
    brain = image[T1] > 0
    assert (image[:, ~brain] == 0).all(), "skull-stripped: background exactly 0 in every contrast"
    assert (label[~brain] == 0).all() and 0.12 < brain.mean() < 0.35
    assert image[0, 0, 0, 0] == 0 and image[0, -1, -1, -1] == 0
    again = generate_brain_tumor_case(1)
    np.testing.assert_array_equal(image, again.image)
    np.testing.assert_array_equal(label, again.label)
    record = json.loads(json.dumps(meta))  # JSON-able, and enough to replay the case
    replay_image, replay_label = render_brain_tumor_case(record, record["shape"], record["spacing"])
    np.testing.assert_array_equal(replay_image, image)
    np.testing.assert_array_equal(replay_label, label)
    assert meta["label_volumes_ml"]["2"] > 0
    other = generate_brain_tumor_case(2)
    assert not np.array_equal(other.label, label)
    # BraTS hierarchy: the enhancing tumour and the necrosis touch the core, the edema surrounds it
    core = (label == 1) | (label == 4)
    assert (ndi.binary_dilation(core, iterations=2) & (label == 2)).any()


def test_params_and_input_checks():
    p = sample_brain_tumor_params(3)
    assert p == sample_brain_tumor_params(3) and p != sample_brain_tumor_params(4)
    assert p["grade"] in ("HGG", "LGG") and 9.0 <= p["tumor_radius_mm"] <= 24.0
    assert set(p["sequences"]) == set(BRAIN_TUMOR_CONTRASTS) == set(p["acquisition"])
    assert p["sequences"]["t1"] == p["sequences"]["t1c"]  # T1c = the T1 sequence after gadolinium
    with pytest.raises(ValueError, match="seed"):
        sample_brain_tumor_params(-1)
    with pytest.raises(ValueError, match="shape"):
        render_brain_tumor_case(p, shape=(64, 64))
    with pytest.raises(ValueError, match="spacing"):
        brain_tumor_affine(spacing=0.1)
    with pytest.raises(KeyError, match="tissues"):
        render_brain_tumor_case({k: v for k, v in p.items() if k != "tissues"})


def test_contrast_rules_as_in_real_mr(cases):
    """Tissue contrast (without the bias field and noise, which are acquisition artefacts)."""
    for seed, (params, _, label, maps, image) in cases.items():
        healthy = _healthy(label, maps)
        pure = {c: _unmix(image[i], maps, healthy) for i, c in enumerate(BRAIN_TUMOR_CONTRASTS)}  # csf, gm, wm
        csf, gm, wm = pure["t1"]
        assert wm > gm > csf > 0, (seed, pure["t1"])  # T1: WM > GM > CSF
        csf, gm, wm = pure["t2"]
        assert csf > gm > wm, (seed, pure["t2"])  # T2: CSF > GM > WM
        csf, gm, wm = pure["flair"]
        assert gm > wm and csf < 0.3 * wm, (seed, pure["flair"])  # FLAIR: CSF suppressed, GM > WM
        wm_vox = (maps["wm"] > 0.7) & (label == 0)
        mean = {c: {k: float(image[i][label == k].mean()) / float(image[i][wm_vox].mean()) for k in (1, 2, 4)
                    if (label == k).any()} for i, c in enumerate(BRAIN_TUMOR_CONTRASTS)}  # fmt: skip
        assert mean["flair"][2] > 1.2 and mean["t2"][2] > 1.3, (seed, mean)  # edema bright in FLAIR and T2
        assert mean["t1"][2] < 1.0, (seed, mean)  # and dark in T1
        if params["grade"] == "HGG":
            assert mean["t1c"][4] > 1.1 and mean["t1c"][4] > mean["t1c"][1] + 0.3, (seed, mean)  # enhancing rim
            assert mean["t1c"][4] > mean["t1"][4] + 0.3, (seed, mean)  # enhancement only after gadolinium
            assert mean["t1"][4] < 1.0, (seed, mean)
        else:
            assert 4 not in mean["t1c"]


def test_no_single_threshold_segments_a_tumour_class(cases):
    """Neither per case (best threshold for that very case) nor over all cases (one global threshold) does a
    threshold on one contrast give a tumour class with Dice > 0.9."""
    pooled_x, pooled_y = [], []
    for seed, (_, image, label, maps, _) in cases.items():
        brain = maps["brain"]
        scores = {}
        for k in (1, 2, 4):
            if (label == k).any():
                scores[k] = max(_best_threshold_dice(image[i][brain], label[brain] == k) for i in range(4))
        whole = max(_best_threshold_dice(image[i][brain], label[brain] > 0) for i in range(4))
        print(f"seed {seed}: best single-threshold Dice per class {scores}, whole tumour {whole:.2f}")
        assert max(scores.values()) < 0.9, (seed, scores)
        assert whole < 0.95, (seed, whole)
        pooled_x.append(image[:, brain])
        pooled_y.append(label[brain])
    # Over all cases: one global threshold (per-case gains), or one after z-scoring every case and contrast.
    x, y = np.concatenate(pooled_x, 1), np.concatenate(pooled_y)
    z = np.concatenate([(c - c.mean(1, keepdims=True)) / c.std(1, keepdims=True) for c in pooled_x], 1)
    for name, values in (("global", x), ("z-scored", z)):
        best = {k: round(max(_best_threshold_dice(values[i], y == k) for i in range(4)), 2) for k in (1, 2, 4)}
        print(f"{name} threshold over the {len(pooled_x)} cases: best Dice per class {best}")
        assert max(best.values()) < 0.9, (name, best)


def test_skull_and_mass_effect_options(cases):
    params, image, label, _, _ = cases[0]
    head, head_label = render_brain_tumor_case(params, skull_strip=False)
    np.testing.assert_array_equal(head_label, label)
    brain = image[T1] > 0
    interior = ndi.binary_erosion(brain, iterations=2)  # the skull's partial volume reaches the edge voxels
    np.testing.assert_allclose(head[:, interior], image[:, interior], rtol=1e-5)
    scalp = ndi.binary_dilation(brain, iterations=4) & ~brain
    assert (head[T1][scalp] > 0).all()  # skull, fat and skin layers (and noise) outside the brain
    # Mass effect: the healthy tissue next to the tumour is pushed away (less of it under the tumour), the
    # tissue far from it stays where it was.
    assert params["mass_effect"] > 0.1
    _, _, pushed = render_brain_tumor_case(params, return_maps=True)
    _, _, flat = render_brain_tumor_case(dict(params, mass_effect=0.0), return_maps=True)
    change = np.abs(pushed["gm"] + pushed["wm"] - flat["gm"] - flat["wm"])
    affine = brain_tumor_affine()
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in label.shape], indexing="ij"), -1)
    dist = np.linalg.norm(ijk * np.diag(affine)[:3] + affine[:3, 3] - params["tumor_centre_mm"], axis=-1)
    r = params["tumor_radius_mm"]
    assert change[dist < 2 * r].max() > 0.2 and change[dist > 6 * r].max() < 0.05


def test_against_the_mni152_template(cases):
    """Healthy anatomy vs the real MNI152 T1 template (nilearn): T1 intensity order and ratios of the pure
    tissues, voxelwise correlation (case rendered without pose, deformation, mass effect, bias field or noise),
    and the overlap of the posed cases' brain masks with the template brain mask."""
    affine = brain_tumor_affine()
    shape = (64, 64, 48)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), 0).reshape(3, -1)
    pts = ijk.T * np.diag(affine)[:3] + affine[:3, 3]

    def on_grid(vol: np.ndarray, aff: np.ndarray) -> np.ndarray:
        return ndi.map_coordinates(vol, ((pts - aff[:3, 3]) / np.diag(aff)[:3]).T, order=1).reshape(shape)

    t1_vol, t1_aff = mni152_t1(2.0)
    template_t1 = on_grid(ndi.gaussian_filter(t1_vol, 0.55), t1_aff)  # 2 -> 3.25 mm resolution
    tissue = mni152_tissue_maps(2.0)
    template_brain = on_grid(tissue["brain_mask"], tissue["affine"]) > 0.5
    for seed, (params, image, _, _, _) in cases.items():
        still = dict(_without_artefacts(params), rotation_deg=[0.0] * 3, scale=1.0, translation_mm=[0.0] * 3,
                     deformation_mm=0.0, mass_effect=0.0)  # fmt: skip
        img, lab, maps = render_brain_tumor_case(still, return_maps=True)
        healthy = _healthy(lab, maps)
        r = float(np.corrcoef(img[T1][healthy], template_t1[healthy])[0, 1])
        ours, theirs = _unmix(img[T1], maps, healthy), _unmix(template_t1, maps, healthy)
        ours, theirs = ours / ours[2], theirs / theirs[2]
        brain = image[T1] > 0
        dice = 2.0 * (brain & template_brain).sum() / (brain.sum() + template_brain.sum())
        still_dice = 2.0 * (maps["brain"] & template_brain).sum() / (maps["brain"].sum() + template_brain.sum())
        print(f"seed {seed}: T1 r = {r:.3f}; CSF/GM/WM phantom {np.round(ours, 2)}, MNI152 {np.round(theirs, 2)}; "
              f"brain-mask Dice posed {dice:.3f}, unposed {still_dice:.3f}")  # fmt: skip
        assert theirs[2] > theirs[1] > theirs[0] and ours[2] > ours[1] > ours[0]
        assert abs(ours[1] - theirs[1]) < 0.2 and abs(ours[0] - theirs[0]) < 0.2
        assert r > 0.75
        assert dice > 0.85 and still_dice > 0.98


def test_brats_dataset_writer(tmp_path: Path, capsys, monkeypatch):
    out = tmp_path / "brats"
    items = synthesize_brain_tumor_dataset(out, cases=2, seed=5, shape=(32, 32, 24), spacing=6.5)
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # one progress line per case
    assert [i["case"] for i in items] == ["SynthBraTS_000", "SynthBraTS_001"]
    affine = brain_tumor_affine((32, 32, 24), 6.5)
    for item in items:
        name = item["case"]
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == sorted(f"{name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2", "seg"))
        imgs = [nib.load(p) for p in [*item["image"], item["label"]]]
        for img in imgs:
            np.testing.assert_allclose(img.affine, affine, atol=1e-5)
            assert img.shape == (32, 32, 24) and int(img.header["sform_code"]) == 1
        assert imgs[-1].get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(imgs[-1].dataobj))) <= {0, 1, 2, 4}
        assert np.asarray(imgs[2].dataobj).dtype == np.float32
    description = json.loads((out / "dataset.json").read_text())
    assert description["labels"]["4"] and len(description["cases"]) == 2
    listed = brats_datalist(out)  # the data set list reads it as BraTS 2017-2021
    assert listed["layout"] == "brats2017"
    assert [c["case"] for c in listed["cases"]] == ["SynthBraTS_000", "SynthBraTS_001"]
    assert listed["cases"][0]["image"][2].endswith("_t1ce.nii.gz")
    with pytest.raises(FileExistsError, match="overwrite"):
        synthesize_brain_tumor_dataset(out, cases=1, seed=5, shape=(32, 32, 24), spacing=6.5, progress=False)
    with pytest.raises(ValueError, match="layout"):
        synthesize_brain_tumor_dataset(tmp_path / "x", cases=1, layout="decathlon")

    # An error half-way through a case leaves neither the case nor a temporary folder behind.
    calls = {"n": 0}
    real_save = nib.save

    def failing_save(img, path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_save(img, path)

    monkeypatch.setattr(nib, "save", failing_save)
    broken = tmp_path / "broken"
    with pytest.raises(OSError, match="disk full"):
        synthesize_brain_tumor_dataset(broken, cases=1, seed=5, shape=(32, 32, 24), spacing=6.5, progress=False)
    assert list(broken.iterdir()) == []


def test_dataset_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A failure after a complete case leaves no partial data set; overwrite replaces the whole data set (no stale
    cases of a larger earlier one, no other layout mixed in)."""
    geo = {"shape": (32, 32, 24), "spacing": 6.5, "progress": False}
    out = tmp_path / "data"
    synthesize_brain_tumor_dataset(out, cases=2, seed=5, **geo)
    synthesize_brain_tumor_dataset(out, cases=1, seed=6, layout="brats2023", overwrite=True, **geo)
    assert sorted(p.name for p in out.iterdir()) == ["SynthBraTS_000", "dataset.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staged or old copy left beside it
    assert brats_datalist(out)["layout"] == "brats2023"
    assert json.loads((out / "dataset.json").read_text())["generator"]["cases"] == 1

    calls = {"n": 0}
    real_save = nib.save

    def failing_save(img, path):  # the second case's third file
        calls["n"] += 1
        if calls["n"] == 8:
            raise OSError("disk full")
        real_save(img, path)

    monkeypatch.setattr(nib, "save", failing_save)
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        synthesize_brain_tumor_dataset(fresh, cases=2, seed=5, **geo)
    assert list(fresh.iterdir()) == []
    with pytest.raises(OSError, match="disk full"):
        calls["n"] = 0
        synthesize_brain_tumor_dataset(out, cases=2, seed=5, overwrite=True, **geo)
    assert sorted(p.name for p in out.iterdir()) == ["SynthBraTS_000", "dataset.json"]  # the old set, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "fresh"]


def test_brats2023_layout(tmp_path: Path):
    items = synthesize_brain_tumor_dataset(tmp_path, cases=1, seed=5, shape=(32, 32, 24), spacing=6.5,
                                           layout="brats2023", progress=False)  # fmt: skip
    assert items[0]["image"][0].endswith("SynthBraTS_000-t2f.nii.gz")
    listed = brats_datalist(tmp_path)
    assert listed["layout"] == "brats2023"
    seg = np.asarray(nib.load(items[0]["label"]).dataobj)
    assert set(np.unique(seg)) <= {0, 1, 2, 3}
