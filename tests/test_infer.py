"""`python -m monai_ext infer BUNDLE INPUT OUTPUT`: one line naming the bad input, exit status 2, nothing written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from error_chain import error_chain

REPO = Path(__file__).resolve().parents[1]
BUNDLE = "covid19_ct_fewshot_seg"


def _bad_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    text = root / "notes.nii.gz"
    text.write_text("not an image")
    empty = root / "empty"
    empty.mkdir()
    png = root / "slice.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(png)
    flat = root / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.float32), np.eye(4)), flat)
    return {
        "missing path": (root / "missing.nii.gz", "not found"),
        "text file named .nii.gz": (text, "cannot read this image file"),
        "empty folder": (empty, "no images found"),
        "2D PNG": (png, "expected a 3D volume"),
        "2D NIfTI": (flat, "expected a 3D volume"),
    }


def _check_one_line_exit_2(case: str, path: Path, expected: str, out: Path, code: int, stdout: str, stderr: str) -> None:
    lines = [ln for ln in (stdout + stderr).splitlines() if ln.strip()]
    assert code == 2, f"{case}: exit {code}\n{stdout[-2000:]}{stderr[-2000:]}"
    assert len(lines) == 1, f"{case}: {len(lines)} lines:\n" + "\n".join(lines[:40])
    assert lines[0].startswith("infer: ") and str(path) in lines[0] and expected in lines[0], f"{case}: {lines[0]}"
    assert "Traceback" not in stderr and "ensure_channel_first" not in lines[0]
    assert not out.exists(), f"{case}: {out} was written"


#: the cases run through a real ``python -m monai_ext`` process (the command line as a user meets it); the others
#: call the same command function in this process (the suite's time: a process costs ~10 s of imports)
SUBPROCESS_CASES = ("missing path", "text file named .nii.gz")


def test_every_bad_input_gives_one_line_exit_2_and_writes_nothing(tmp_path, capfd):
    from monai_ext.cli import import_components, infer_command

    inputs = _bad_inputs(tmp_path)
    for case in SUBPROCESS_CASES:
        path, expected = inputs[case]
        out = tmp_path / f"out_{path.name}"
        res = subprocess.run([sys.executable, "-m", "monai_ext", "infer", BUNDLE, str(path), str(out)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        _check_one_line_exit_2(case, path, expected, out, res.returncode, res.stdout, res.stderr)
    import_components()
    for case, (path, expected) in inputs.items():
        if case in SUBPROCESS_CASES:
            continue
        out = tmp_path / f"out_{path.name}"
        capfd.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            infer_command(BUNDLE, str(path), str(out))
        captured = capfd.readouterr()
        _check_one_line_exit_2(case, path, expected, out, exit_info.value.code, captured.out, captured.err)


def test_infer_segments_a_scan_with_a_progress_line(tmp_path):
    from monai_ext.phantoms import synthesize_dataset

    synthesize_dataset(tmp_path / "data", cases=5, seed=0, shape=(64, 64, 40), spacing=(5.0, 5.0, 5.0), progress=False)
    scan = next((tmp_path / "data" / "imagesTr").glob("*.nii.gz"))
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "monai_ext", "infer", BUNDLE, str(scan), str(out), "--device", "cpu"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("[1/1] ") and "_seg.nii.gz" in lines[0], res.stdout
    seg = nib.load(str(next(out.glob("*_seg.nii.gz"))))
    assert seg.shape == nib.load(str(scan)).shape


def test_infer_refuses_a_bundle_without_input(tmp_path):
    from monai_ext.cli.infer import InferInputError, infer

    with pytest.raises(InferInputError, match="takes no input"):
        infer("ctsgan_chest_ct_synthesis", str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def _phantom_ct(tmp_path: Path):
    from monai_ext.phantoms import generate_chest_ct

    return generate_chest_ct(shape=(48, 48, 32), spacing=(6.0, 6.0, 6.0), seed=4, lesions=False)


def test_too_small_and_non_hu_scans_raise_naming_the_file(tmp_path):
    from monai_ext.cli.infer import infer
    from monai_ext.transforms import ScanInputError

    case = _phantom_ct(tmp_path)
    window = np.clip((case.image + 1350.0) / 1500.0 * 255.0, 0, 255).round().astype(np.uint8)  # W1500 L-600
    inputs = {
        "thin.nii.gz": (case.image[:, :, :5], r"axis 2 has 5 voxel\(s\), expected at least 8"),
        "one_slice.nii.gz": (case.image[:, :, 16:17], r"axis 2 has 1 voxel\(s\), expected at least 8.*single slice"),
        "coronal.nii.gz": (case.image[:, 20:21, :], r"axis 1 has 1 voxel\(s\), expected at least 8.*single slice"),
        "window_0_255.nii.gz": (window, r"\[0, 255\].*Set hu_slope and hu_intercept.*--hu_slope 5.88235 --hu_intercept -1350"),
        "raw_0_4095.nii.gz": ((case.image + 1024.0).astype(np.int16), r"rescale intercept.*--hu_slope 1 --hu_intercept -1024"),
    }
    for name, (data, expected) in inputs.items():
        path = tmp_path / name
        nib.save(nib.Nifti1Image(data, case.affine), path)
        with pytest.raises(Exception) as err:
            infer(BUNDLE, str(path), str(tmp_path / "out"), device="cpu", quiet=True)
        chain = error_chain(err.value)  # MONAI wraps the transform's error in RuntimeErrors
        original = next((e for e in chain if isinstance(e, ScanInputError)), None)
        assert original is not None, f"{name}: {err.value!r}"
        assert re.search(expected, str(original)), f"{name}: {original}"
        assert str(original).startswith(str(path)) and original.filename == str(path), name
        assert not (tmp_path / "out").exists(), name


def test_hu_rescale_options_exit_2_with_the_hint_and_pass_when_given(tmp_path):
    case = _phantom_ct(tmp_path)
    raw = tmp_path / "raw.nii.gz"
    nib.save(nib.Nifti1Image((case.image + 1024.0).astype(np.int16), case.affine), raw)
    res = subprocess.run([sys.executable, "-m", "monai_ext", "infer", BUNDLE, str(raw), str(tmp_path / "o1")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stdout[-2000:] + res.stderr[-2000:]
    assert lines[0].startswith(f"infer: {raw}") and "--hu_intercept -1024" in lines[0], lines[0]
    # the same scan with the rescale the message suggests
    res = subprocess.run([sys.executable, "-m", "monai_ext", "infer", BUNDLE, str(raw), str(tmp_path / "o2"), "--device",
                          "cpu", "--hu_intercept", "-1024"], cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert nib.load(tmp_path / "o2" / "raw_seg.nii.gz").shape == case.image.shape


def test_a_0_255_scan_with_the_rescale_keys_gives_the_hu_result(tmp_path):
    from monai_ext.cli.infer import infer

    case = _phantom_ct(tmp_path)
    hu = tmp_path / "hu.nii.gz"
    nib.save(nib.Nifti1Image(case.image, case.affine), hu)
    window = np.clip((case.image + 1350.0) / 1500.0 * 255.0, 0, 255).round().astype(np.uint8)
    u8 = tmp_path / "u8.nii.gz"
    nib.save(nib.Nifti1Image(window, case.affine), u8)
    infer(BUNDLE, str(hu), str(tmp_path / "out"), device="cpu", quiet=True)
    infer(BUNDLE, str(u8), str(tmp_path / "out"), device="cpu", quiet=True,
          overrides={"hu_slope": 1500.0 / 255.0, "hu_intercept": -1350.0})  # fmt: skip
    ref = np.asarray(nib.load(tmp_path / "out" / "hu_seg.nii.gz").dataobj)
    seg = nib.load(tmp_path / "out" / "u8_seg.nii.gz")  # Invertd: back on the input grid
    assert seg.shape == window.shape
    np.testing.assert_allclose(seg.affine, case.affine, atol=1e-4)
    assert ref.any() and (np.asarray(seg.dataobj) == ref).mean() > 0.99  # only the window's quantisation differs


def test_infer_refuses_overrides_the_bundle_does_not_have(tmp_path):
    from monai_ext.cli.infer import InferInputError, infer

    with pytest.raises(InferInputError, match="has no key.*hu_slope.*--hu_slope do not apply"):
        infer("ctsgan_chest_ct_synthesis", str(tmp_path), str(tmp_path / "out"), overrides={"hu_slope": 2.0})


def test_infer_takes_nested_override_ids_and_refuses_unknown_ones(tmp_path):
    from monai_ext.cli.infer import InferInputError, infer
    from monai_ext.phantoms import synthesize_brain_tumor_dataset

    data = tmp_path / "data"
    synthesize_brain_tumor_dataset(data, cases=1, seed=2, progress=False)
    case = data / "SynthBraTS_000"
    with pytest.raises(InferInputError, match="has no key.*inferer#nope"):
        infer("brain_tumor_multiscale_unet", str(case), str(tmp_path / "out"), overrides={"inferer#nope": 1})
    assert not (tmp_path / "out").exists()
    results = infer("brain_tumor_multiscale_unet", str(case), str(tmp_path / "out"), device="cpu", quiet=True,
                    overrides={"inferer#overlap": 0.5, "output_labels": [0, 1, 2, 4]})
    seg = nib.load(tmp_path / "out" / "SynthBraTS_000_seg.nii.gz")
    assert [Path(p).name for p in results[0]["outputs"]] == ["SynthBraTS_000_seg.nii.gz"]
    assert seg.shape == nib.load(case / "SynthBraTS_000_flair.nii.gz").shape
    assert set(np.unique(np.asarray(seg.dataobj)).astype(int).tolist()) <= {0, 1, 2, 4}
