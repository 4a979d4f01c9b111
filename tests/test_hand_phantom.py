"""Tests of the synthetic hand MRI phantom (bone classes of Kayalibay et al. 2017) and its data set writer."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from monai_ext.phantoms import hand_mri as hm
from monai_ext.phantoms.hand_mri import (
    HAND_DEFAULT_SHAPE,
    HAND_LABELS,
    HAND_TISSUES,
    generate_hand_case,
    hand_affine,
    hand_landmarks,
    render_hand_case,
    render_hand_tissues,
    sample_hand_params,
    synthesize_hand_dataset,
)

N_BONES = {1: 5, 2: 5, 3: 4, 4: 5}  # metacarpals, proximal, middle (no thumb), distal phalanges
CONN26 = np.ones((3, 3, 3), dtype=bool)
SEEDS = (0, 1, 7)


@pytest.fixture(scope="module")
def cases() -> dict[int, tuple[np.ndarray, np.ndarray, dict]]:
    return {s: generate_hand_case(s) for s in SEEDS}


def _best_threshold_dice(image: np.ndarray, mask: np.ndarray) -> float:
    """Best Dice of ``image > t`` or ``image < t`` with ``mask`` over every threshold t (exact scan)."""
    x, m = image.ravel(), mask.ravel().astype(np.float64)
    order = np.argsort(x, kind="stable")
    best = 0.0
    for idx in (order[::-1], order):  # brightest first (image > t), darkest first (image < t)
        tp = np.cumsum(m[idx])
        k = np.arange(1, x.size + 1)
        best = max(best, float(np.max(2.0 * tp / (k + m.sum()))))
    return best


def test_shapes_dtypes_labels_affine(cases):
    image, label, meta = cases[0]
    assert image.shape == (1, *HAND_DEFAULT_SHAPE) and image.dtype == np.float32
    assert label.shape == HAND_DEFAULT_SHAPE and label.dtype == np.uint8
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(np.unique(label)) == set(HAND_LABELS) == {0, 1, 2, 3, 4}
    aff = np.asarray(meta["affine"])
    np.testing.assert_allclose(aff, hand_affine())
    np.testing.assert_allclose(np.diag(aff)[:3], meta["spacing"])
    centre = aff @ np.append((np.array(HAND_DEFAULT_SHAPE) - 1) / 2.0, 1.0)
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    json.dumps(meta)  # JSON-able
    assert abs(sum(meta["label_fractions"].values()) - 1.0) < 1e-4
    # the paper's frequency order: metacarpal > proximal > middle > distal
    fr = [meta["label_fractions"][str(k)] for k in (1, 2, 3, 4)]
    assert fr == sorted(fr, reverse=True) and fr[-1] > 0


def test_determinism_and_replay_from_params(cases):
    image, label, meta = cases[1]
    image2, label2, _ = generate_hand_case(1)
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(label, label2)
    replay = json.loads(json.dumps(meta))  # a record written to disk
    image3, label3, aff3 = render_hand_case(replay, replay["shape"], replay["spacing"])
    np.testing.assert_array_equal(image, image3)
    np.testing.assert_array_equal(label, label3)
    np.testing.assert_allclose(aff3, meta["affine"])
    assert sample_hand_params(1) == {k: v for k, v in meta.items() if k in sample_hand_params(1)}
    other, other_label, _ = cases[0]
    assert not np.array_equal(label, other_label) and not np.allclose(image, other)


def test_every_bone_present_and_separated(cases):
    """Each class has one connected component per bone (26-connectivity), and no bone voxel touches a voxel of
    another class: the joint gaps separate consecutive bones of every finger."""
    for seed, (_, label, _) in cases.items():
        for c, n in N_BONES.items():
            _, count = ndi.label(label == c, structure=CONN26)
            assert count == n, f"seed {seed}: class {c} has {count} components, expected {n}"
            touching = ndi.binary_dilation(label == c, structure=CONN26) & (label > 0) & (label != c)
            assert not touching.any(), f"seed {seed}: class {c} touches another class"


def test_bones_in_anatomical_order_along_the_fingers(cases):
    def mean_distance(label, c, wrist):
        ijk = np.argwhere(label == c)
        xyz = ijk * np.asarray(meta["spacing"]) + np.asarray(meta["affine"])[:3, 3]
        return float(np.linalg.norm(xyz - wrist, axis=1).mean())

    for seed, (_, label, meta) in cases.items():
        wrist = np.asarray(meta["landmarks"]["wrist"])
        d = {c: mean_distance(label, c, wrist) for c in N_BONES}
        assert d[1] < d[2] and d[1] < d[3] and d[1] < d[4], (seed, d)
    # an open hand (every joint extended): strictly metacarpal < proximal < middle < distal
    params = sample_hand_params(SEEDS[-1])
    flat = copy.deepcopy(params)
    for f in flat["fingers"].values():
        f["flexion_deg"] = [0.0] * len(f["flexion_deg"])
    flat["wrist"] = {"flexion_deg": 0.0, "deviation_deg": 0.0}
    _, label, _ = render_hand_case(flat)
    wrist = np.asarray(hand_landmarks(flat)["wrist"])
    d = [mean_distance(label, c, wrist) for c in (1, 2, 3, 4)]
    assert d == sorted(d), d
    # landmarks run away from the wrist along every extended finger
    for pts in hand_landmarks(flat)["fingers"].values():
        r = np.linalg.norm(np.asarray(pts) - wrist, axis=1)
        assert np.all(np.diff(r) > 0), r


def test_mr_contrast_and_not_one_threshold(cases):
    for seed in SEEDS[:2]:
        image, label, meta = cases[seed]
        tissue = render_hand_tissues(meta, meta["shape"], meta["spacing"])
        assert tissue.shape == label.shape and set(np.unique(tissue)) <= set(HAND_TISSUES)
        mean = {HAND_TISSUES[k]: float(image[0][tissue == k].mean()) for k in HAND_TISSUES if np.any(tissue == k)}
        assert mean["marrow (cancellous bone)"] > mean["cortical bone"] + 0.1, mean
        assert mean["subcutaneous fat"] > mean["muscle"] > mean["air"], mean
        assert mean["subcutaneous fat"] > mean["tendon"], mean
        assert abs(mean["marrow (cancellous bone)"] - mean["subcutaneous fat"]) < 0.3, mean  # both fat-bright
        assert np.all(label[tissue < 6] == 0)  # labels lie in bone
        # no single threshold segments bone, or any one class
        assert _best_threshold_dice(image[0], label > 0) < 0.8
        for c in N_BONES:
            assert _best_threshold_dice(image[0], label == c) < 0.8


def test_other_grids_and_parameter_checks():
    params = sample_hand_params(3)
    image, label, aff = render_hand_case(params, (40, 48, 32), (4.5, 5.0, 4.5))
    assert image.shape == (1, 40, 48, 32) and label.shape == (40, 48, 32)
    np.testing.assert_allclose(np.diag(aff)[:3], (4.5, 5.0, 4.5))
    assert (label > 0).any()
    for shape in ((64, 64), (8, 64, 64), (64.5, 64, 48), "64"):
        with pytest.raises(ValueError):
            render_hand_case(params, shape)
    for spacing in ((3.0, 3.0), (0.0, 3.0, 3.0), (np.nan, 3, 3)):
        with pytest.raises(ValueError):
            render_hand_case(params, None, spacing)
    with pytest.raises(KeyError):
        render_hand_case({k: v for k, v in params.items() if k != "fingers"})
    with pytest.raises(ValueError):
        sample_hand_params(-1)
    short = copy.deepcopy(params)
    short["fingers"]["index"]["lengths_mm"] = short["fingers"]["index"]["lengths_mm"][:2]  # two bones would vanish
    with pytest.raises(ValueError, match=r"\['index'\]\['lengths_mm'\] needs 4 entries"):
        render_hand_case(short)


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_dataset_writer_layout(tmp_path):
    from monai.data import load_decathlon_datalist

    out = tmp_path / "hand"
    out.mkdir()  # an empty folder is filled (as ensure_dataset asks)
    ds = synthesize_hand_dataset(out, cases=2, seed=5, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "imagesTr", "labelsTr"]
    assert not _siblings(out)
    on_disk = json.loads((out / "dataset.json").read_text())
    assert on_disk == json.loads(json.dumps(ds))
    assert on_disk["labels"] == {"0": "background", "1": "metacarpal", "2": "proximal phalanx",
                                 "3": "middle phalanx", "4": "distal phalanx"}
    assert on_disk["numTraining"] == 2 and len(on_disk["phantom"]["records"]) == 2
    items = load_decathlon_datalist(out / "dataset.json", data_list_key="training")
    assert [Path(i["image"]).name for i in items] == ["hand_000.nii.gz", "hand_001.nii.gz"]
    for item, record in zip(items, on_disk["phantom"]["records"]):
        img, lab = nib.load(item["image"]), nib.load(item["label"])
        assert img.shape == lab.shape == HAND_DEFAULT_SHAPE
        assert img.get_data_dtype() == np.float32 and lab.get_data_dtype() == np.uint8
        np.testing.assert_allclose(img.affine, hand_affine())
        # the record replays the case
        _, label, _ = render_hand_case(record, on_disk["phantom"]["shape"], on_disk["phantom"]["spacing"])
        np.testing.assert_array_equal(np.asarray(lab.dataobj), label)
    with pytest.raises(FileExistsError):  # never overwrites a data set
        synthesize_hand_dataset(out, cases=1, progress=False)
    again = tmp_path / "hand_again"
    synthesize_hand_dataset(again, cases=2, seed=5, progress=False)
    assert (again / "dataset.json").read_bytes() == (out / "dataset.json").read_bytes()  # reproducible to the byte


def test_dataset_writer_leaves_nothing_on_error(tmp_path, monkeypatch):
    out = tmp_path / "hand"
    with pytest.raises(ValueError):
        synthesize_hand_dataset(out, cases=2, shape=(64, 64), progress=False)
    with pytest.raises(ValueError):
        synthesize_hand_dataset(out, cases=0, progress=False)
    assert not out.exists() and not _siblings(out)

    calls = []

    def failing(seed, shape=None, spacing=None):
        calls.append(seed)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return generate_hand_case(seed, shape, spacing)

    monkeypatch.setattr(hm, "generate_hand_case", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize_hand_dataset(out, cases=3, progress=False)
    assert len(calls) == 2
    assert not out.exists() and not _siblings(out), list(tmp_path.iterdir())


def test_dataset_writer_keeps_an_empty_folder_on_error(tmp_path, monkeypatch):
    out = tmp_path / "hand"
    out.mkdir()

    def failing(seed, shape=None, spacing=None):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(hm, "generate_hand_case", failing)
    with pytest.raises(RuntimeError):
        synthesize_hand_dataset(out, cases=1, progress=False)
    assert out.is_dir() and not any(out.iterdir()) and not _siblings(out)
