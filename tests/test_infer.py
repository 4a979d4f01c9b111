"""`python -m monai_ext infer BUNDLE INPUT OUTPUT`: one line naming the bad input, exit status 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

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


def test_every_bad_input_gives_one_line_exit_2_and_writes_nothing(tmp_path):
    inputs = _bad_inputs(tmp_path)
    for case, (path, expected) in inputs.items():
        out = tmp_path / f"out_{path.name}"
        res = subprocess.run([sys.executable, "-m", "monai_ext", "infer", BUNDLE, str(path), str(out)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
        assert res.returncode == 2, f"{case}: exit {res.returncode}\n{res.stdout[-2000:]}{res.stderr[-2000:]}"
        assert len(lines) == 1, f"{case}: {len(lines)} lines:\n" + "\n".join(lines[:40])
        assert lines[0].startswith("infer: ") and str(path) in lines[0] and expected in lines[0], f"{case}: {lines[0]}"
        assert "Traceback" not in res.stderr and "ensure_channel_first" not in lines[0]
        assert not out.exists(), f"{case}: {out} was written"


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
