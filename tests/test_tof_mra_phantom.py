"""The TOF-MRA aneurysm phantom (monai_ext.phantoms.tof_mra) and the ADAM dataset list
(monai_ext.datalists.adam_aneurysm): determinism, labels that match the two-point records, aneurysms that are bright
and attached to a vessel, unlabelled mimics, the ADAM layout on disk and its round trip, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_ext.datalists import adam_aneurysm_datalist
from monai_ext.io import world_to_voxel
from monai_ext.phantoms import TofMraCase, generate_tof_mra_case, synthesize_tof_mra_dataset

SMALL = (48, 48, 40)
SPACING = (0.47, 0.47, 0.4)


@pytest.fixture(scope="module")
def cases() -> list[TofMraCase]:
    return [generate_tof_mra_case(s, SMALL, SPACING) for s in range(6)]


def _voxel(point, affine) -> np.ndarray:
    return world_to_voxel(point, affine)[0]


def _neighbourhood(volume: np.ndarray, voxel: np.ndarray, half: int) -> np.ndarray:
    i = np.rint(voxel).astype(int)
    return volume[tuple(slice(max(0, v - half), v + half + 1) for v in i)]


def test_same_seed_gives_identical_cases_and_another_seed_differs():
    a, b = generate_tof_mra_case(11, SMALL, SPACING), generate_tof_mra_case(11, SMALL, SPACING)
    c = generate_tof_mra_case(12, SMALL, SPACING)
    assert a.image.dtype == np.float32 and a.label.dtype == np.uint8 and a.image.shape == a.label.shape == SMALL
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert json.dumps(a.info) == json.dumps(b.info)
    assert not np.array_equal(a.image, c.image)
    assert a.info["seed"] == 11 and 15.0 <= a.info["noise_sigma"] <= 25.0


def test_default_case_grid_affine_and_intensity_ranges():
    case = generate_tof_mra_case(0)
    assert case.image.shape == (80, 80, 72) and case.spacing == (0.47, 0.47, 0.4)
    assert nib.aff2axcodes(case.affine) == ("L", "P", "S")
    np.testing.assert_allclose(np.abs(np.diag(case.affine)[:3]), case.spacing)
    np.testing.assert_allclose(case.affine @ [39.5, 39.5, 35.5, 1.0], [0, 0, 0, 1], atol=1e-9)  # centred
    bg = float(np.median(case.image))
    assert 120.0 <= bg <= 200.0
    assert 400.0 <= float(np.percentile(case.image, 99.9)) <= 750.0  # vessels (with noise)


def test_label_spheres_match_the_two_point_records(cases):
    for case in cases:
        aff, sp = case.affine, np.asarray(case.spacing)
        ans = case.info["aneurysms"]
        assert 1 <= len(ans) <= 3
        labelled = np.argwhere(case.label == 1)
        world = labelled @ aff[:3, :3].T + aff[:3, 3]
        nearest = np.full(len(world), np.inf)
        expected_volume = 0.0
        for a in ans:
            neck, dome, centre = (np.array(a[k]) for k in ("neck", "dome", "centre"))
            r = a["radius_mm"]
            np.testing.assert_allclose(centre, (neck + dome) / 2, atol=1e-9)
            assert np.linalg.norm(dome - neck) / 2 == pytest.approx(r) and a["diameter_mm"] == pytest.approx(2 * r)
            assert 1.0 <= a["diameter_mm"] <= 6.0
            v = _voxel(centre, aff)
            assert case.label[tuple(np.rint(v).astype(int))] == 1
            # inside the volume with a 3 mm margin
            n = np.asarray(case.label.shape)
            assert np.all(v - (r + 3.0) / sp >= 0) and np.all(v + (r + 3.0) / sp <= n - 1)
            nearest = np.minimum(nearest, np.linalg.norm(world - centre, axis=1) - r)
            expected_volume += 4.0 / 3.0 * np.pi * r ** 3
        assert np.all(nearest <= 1e-4)  # every labelled voxel's centre lies in a recorded sphere
        volume = len(labelled) * float(np.prod(sp))
        assert volume == pytest.approx(expected_volume, rel=0.3)
        assert sum(a["voxels"] for a in ans) == len(labelled)


def test_aneurysm_sizes_are_spread_with_many_small_ones(cases):
    d = np.array([a["diameter_mm"] for c in cases for a in c.info["aneurysms"]]
                 + [a["diameter_mm"] for s in range(6, 30) for a in generate_tof_mra_case(s, SMALL).info["aneurysms"]])
    assert len(d) >= 30 and 0.2 <= float(np.mean(d < 3.0)) <= 0.65 and d.max() > 4.0


def test_aneurysms_are_bright_and_sit_on_a_vessel(cases):
    kinds = set()
    for case in cases:
        bg = float(np.median(case.image))
        for a in case.info["aneurysms"]:
            kinds.add(a["kind"])
            inside = case.label == 1
            assert float(case.image[inside].mean()) > bg + 150.0
            # the neck pole lies 0.3 vessel radii off the parent's centreline (inside the lumen)
            parent, neck, centre = (np.array(a[k]) for k in ("parent_point", "neck", "centre"))
            rv = a["parent_radius_mm"]
            assert np.linalg.norm(neck - parent) == pytest.approx(0.3 * rv, abs=1e-6)
            assert np.linalg.norm(centre - parent) == pytest.approx(a["radius_mm"] + 0.3 * rv, abs=1e-6)
            # the parent vessel is bright there, outside the sphere (its centreline point is not labelled)
            pv = _voxel(parent, case.affine)
            assert float(_neighbourhood(case.image, pv, 1).max()) > bg + 200.0
            assert float(_neighbourhood(case.image, _voxel(neck, case.affine), 1).mean()) > bg + 120.0
            assert a["dome_intensity"] < a["neck_intensity"]
    assert kinds == {"bifurcation", "sidewall"}


def test_mimics_are_bright_but_not_labelled(cases):
    kinds = set()
    for case in cases:
        bg = float(np.median(case.image))
        assert 1 <= len(case.info["mimics"]) <= 3
        for m in case.info["mimics"]:
            kinds.add(m["kind"])
            v = _voxel(m["centre"], case.affine)
            np.testing.assert_allclose(v, m["centre_voxel"], atol=1e-6)
            assert not _neighbourhood(case.label, v, 2).any()
            assert float(_neighbourhood(case.image, v, 3).max()) > bg + 150.0
    assert kinds == {"infundibulum", "loop"}


def test_dataset_writer_layout_and_round_trip_through_the_adam_datalist(tmp_path, capsys):
    out = tmp_path / "adam"
    record = synthesize_tof_mra_dataset(out, cases=2, seed=5, shape=SMALL, spacing=SPACING, progress=True)
    assert len([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("TOF-MRA case")]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["10000", "10001", "dataset.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adam"]  # no temporary folder left
    written = json.loads((out / "dataset.json").read_text())
    assert written == json.loads(json.dumps(record))
    assert written["seed"] == 5 and written["cases"] == 2 and written["shape"] == list(SMALL)
    recs = {r["case"]: r for r in written["records"]}
    for cid, rec in recs.items():
        tof, lab = nib.load(str(out / cid / "orig" / "TOF.nii.gz")), nib.load(str(out / cid / "aneurysms.nii.gz"))
        assert tof.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8 and tof.shape == SMALL
        case = generate_tof_mra_case(rec["seed"], SMALL, SPACING)  # the recorded seed replays the case
        np.testing.assert_array_equal(np.asarray(lab.dataobj), case.label)
        np.testing.assert_array_equal(np.asarray(tof.dataobj), np.rint(case.image).astype(np.int16))
        np.testing.assert_allclose(tof.affine, case.affine, atol=1e-6)
        assert len((out / cid / "location.txt").read_text().splitlines()) == len(rec["aneurysms"])

    from_json = adam_aneurysm_datalist(out)
    assert from_json["layout"] == "adam" and [c["case"] for c in from_json["cases"]] == ["10000", "10001"]
    for c in from_json["cases"]:
        assert c["points_source"] == "points.json" and Path(c["image"]).is_absolute()
        assert c["label"] == str((out / c["case"] / "aneurysms.nii.gz").resolve())
        expected = [[a["neck"], a["dome"]] for a in recs[c["case"]]["aneurysms"]]
        np.testing.assert_allclose(c["points"], expected, atol=1e-9)
        (out / c["case"] / "points.json").unlink()
    from_txt = adam_aneurysm_datalist(out)
    for cj, ct in zip(from_json["cases"], from_txt["cases"]):
        assert ct["points_source"] == "location.txt" and np.shape(ct["points"]) == np.shape(cj["points"])
        aff = nib.load(ct["image"]).affine
        pj, pt = np.asarray(cj["points"]), np.asarray(ct["points"])
        cen_j, cen_t = world_to_voxel(pj.mean(axis=1), aff), world_to_voxel(pt.mean(axis=1), aff)
        assert np.abs(cen_j - cen_t).max() <= 0.5 and np.abs(cen_j - cen_t).max() < 0.01
        rad_j = np.linalg.norm(pj[:, 1] - pj[:, 0], axis=1) / 2
        rad_t = np.linalg.norm(pt[:, 1] - pt[:, 0], axis=1) / 2
        np.testing.assert_allclose(rad_t, rad_j, atol=1e-3)


def _fake_case(root: Path, name: str = "A01", shape=(10, 12, 8), location: str | None = None,
               points: object | None = None) -> Path:
    folder = root / name
    (folder / "orig").mkdir(parents=True)
    aff = np.diag([0.5, 0.5, 0.6, 1.0])
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), aff), str(folder / "orig" / "TOF.nii.gz"))
    if location is not None:
        (folder / "location.txt").write_text(location)
    if points is not None:
        (folder / "points.json").write_text(points if isinstance(points, str) else json.dumps(points))
    return folder


def test_datalist_reads_whitespace_location_lines_and_cases_without_aneurysms(tmp_path):
    _fake_case(tmp_path, "B02", location="\n4 5\t3, 2\n\n")
    _fake_case(tmp_path, "A01")
    (tmp_path / "B02" / "pre").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty_folder").mkdir()
    cases = adam_aneurysm_datalist(tmp_path)["cases"]
    assert [c["case"] for c in cases] == ["A01", "B02"]
    assert cases[0]["points"] == [] and cases[0]["points_source"] == "none" and cases[0]["label"] is None
    # centre voxel (4, 5, 3) -> (2, 2.5, 1.8) mm; radius 2 voxels x 0.5 mm along the first world axis
    np.testing.assert_allclose(cases[1]["points"], [[[1.0, 2.5, 1.8], [3.0, 2.5, 1.8]]])


@pytest.mark.parametrize("line, message", [
    ("4, 5, 3\n", "line 2: expected 4 numbers"),
    ("4, 5, 3, 2, 1\n", "line 2: expected 4 numbers"),
    ("4, five, 3, 2\n", "line 2: expected 4 numbers 'x, y, z, r', got non-numeric"),
    ("4, 5, 3, 0\n", "line 2: the radius must be positive"),
])
def test_bad_location_lines_name_the_file_and_line(tmp_path, line, message):
    folder = _fake_case(tmp_path, location="2, 2, 2, 1\n" + line)
    with pytest.raises(ValueError, match=message) as err:
        adam_aneurysm_datalist(tmp_path)
    assert str(folder / "location.txt") in str(err.value)


def test_points_outside_the_volume_name_the_case_point_and_shape(tmp_path):
    _fake_case(tmp_path, "C7", points={"aneurysms": [{"neck": [1.0, 1.0, 1.0], "dome": [1.0, 1.0, 9.0]}]})
    with pytest.raises(ValueError, match=r"case C7: aneurysm 0 dome \[1.0, 1.0, 9.0\].*shape \(10, 12, 8\)"):
        adam_aneurysm_datalist(tmp_path)
    (tmp_path / "C7" / "points.json").unlink()
    (tmp_path / "C7" / "location.txt").write_text("0.5, 5, 3, 1.5\n")  # the neck at voxel x = -1 is outside
    with pytest.raises(ValueError, match=r"case C7: aneurysm 0 neck .*location.txt.*\(10, 12, 8\)"):
        adam_aneurysm_datalist(tmp_path)
    (tmp_path / "C7" / "location.txt").write_text("1.5, 5, 3, 1.5\n")  # on the edge (-0.5 .. n - 0.5): fine
    assert adam_aneurysm_datalist(tmp_path)["cases"][0]["points_source"] == "location.txt"


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON"),
    ({"neck": [1, 1, 1]}, "without an 'aneurysms' list"),
    ({"aneurysms": [{"neck": [1, 1], "dome": [1, 1, 2]}]}, r"aneurysms\[0\] must have 'neck' and 'dome'"),
    ({"aneurysms": [{"neck": [1, 1, 1], "dome": [1, 1, 1]}]}, "radius 0"),
    ({"aneurysms": [], "units": "voxels"}, "'units' must be 'mm'"),
])
def test_malformed_points_json_is_named(tmp_path, content, message):
    folder = _fake_case(tmp_path, points=content)
    with pytest.raises(ValueError, match=message) as err:
        adam_aneurysm_datalist(tmp_path)
    assert str(folder / "points.json") in str(err.value)


def test_missing_or_empty_dataset_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        adam_aneurysm_datalist(tmp_path / "nowhere")
    (tmp_path / "case1" / "pre").mkdir(parents=True)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no ADAM case folder.*Found: case1/, readme.txt"):
        adam_aneurysm_datalist(tmp_path)


def test_writer_refuses_bad_arguments_and_writes_nothing(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="out_dir .*full.* not an empty folder"):
        synthesize_tof_mra_dataset(full, cases=1, shape=SMALL, progress=False)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    for kwargs, message in [({"cases": 0}, "cases must be a positive integer"),
                            ({"seed": -1}, "seed must be a non-negative integer"),
                            ({"shape": (48, 48)}, "shape must be three integers"),
                            ({"spacing": (0.47, 0.47, 0.0)}, "spacing must be three voxel sizes")]:
        with pytest.raises(ValueError, match=message):
            synthesize_tof_mra_dataset(tmp_path / "new", **{"shape": SMALL, "progress": False, **kwargs})
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        generate_tof_mra_case(-3, SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_irregular_aneurysms_keep_the_annotation_and_the_rest_of_the_case():
    sphere = generate_tof_mra_case(5, SMALL)
    irregular = generate_tof_mra_case(5, SMALL, aneurysm_shape="irregular")
    assert [a["neck"] for a in sphere.info["aneurysms"]] == [a["neck"] for a in irregular.info["aneurysms"]]
    assert all(a["shape"] == "irregular" for a in irregular.info["aneurysms"])
    a, b = sphere.label > 0, irregular.label > 0
    iou = (a & b).sum() / (a | b).sum()
    assert 0.3 < iou < 0.99                                  # the two-point sphere only approximates the aneurysm
    far = ~np.isin(np.arange(a.size), np.flatnonzero(a | b)).reshape(a.shape)
    near = np.zeros_like(a)
    for c in np.argwhere(a | b):                             # voxels within 4 of any aneurysm voxel may differ
        near[tuple(slice(max(0, x - 4), x + 5) for x in c)] = True
    np.testing.assert_array_equal(sphere.image[far & ~near], irregular.image[far & ~near])
    with pytest.raises(ValueError, match="aneurysm_shape"):
        generate_tof_mra_case(5, SMALL, aneurysm_shape="cube")
