import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "monai_ext", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_list_shows_the_bundle_and_its_task():
    res = _cli("list")
    assert res.returncode == 0, res.stderr
    assert "covid19_ct_fewshot_seg" in res.stdout and "infection" in res.stdout.lower()


def test_synth_writes_dataset_json_and_folds(tmp_path):
    out = tmp_path / "synth"
    res = _cli("synth", "--out", str(out), "--cases", "5", "--seed", "1", "--shape", "48,48,32", "--spacing", "6,6,6")
    assert res.returncode == 0, res.stderr[-2000:]
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["numTraining"] == 5 and len(ds["training"]) == 5
    folds = json.loads((out / "datalist_fewshot_5fold.json").read_text())
    assert len(folds) == 5 and all(len(f["training"]) == 4 for f in folds.values())
    img = nib.load(out / ds["training"][0]["image"])
    assert img.shape == (48, 48, 32)


@pytest.mark.slow  # .ci/run runs `python -m monai_ext verify --all` through this CLI after the suite
def test_verify_passes_for_the_bundle():
    res = _cli("verify", "covid19_ct_fewshot_seg")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for check in ("layout", "metadata", "net_in_out", "torchscript"):
        assert check in res.stdout


def test_verify_unknown_bundle_fails_and_names_it():
    res = _cli("verify", "no_such_bundle")
    assert res.returncode != 0
    assert "no_such_bundle" in res.stdout + res.stderr


def test_label_app_refuses_a_bundle_without_segmentation_output(tmp_path):
    from monai_ext.cli.label_app import prepare_app

    with pytest.raises(ValueError, match="has no segmentation output.*monai.bundle run"):
        prepare_app("ctsgan_chest_ct_synthesis", tmp_path / "apps", python="/nonexistent/python")
    assert not (tmp_path / "apps").exists()
