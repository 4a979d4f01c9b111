"""The demo never hands out a broken model: a run cut short by its time limit says so, exits non-zero and leaves the
committed weights alone; the trained weights go to the demo's folder; installing needs a model at least as good."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ext.cli.demo import install_if_not_worse
from monai_ext.phantoms import synthesize_dataset

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "bundles" / "covid19_ct_fewshot_seg" / "models" / "model.pt"
TINY = {"pixdim": [6.0, 6.0, 6.0], "patch_size": [32, 32, 32], "roi_size": [32, 32, 32], "val_interval": 1}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_time_limited_demo_reports_partial_training_exits_non_zero_and_keeps_committed_weights(tmp_path):
    if not COMMITTED.is_file():
        pytest.skip("no committed weights")
    before = _sha(COMMITTED)
    work = tmp_path / "demo"
    synthesize_dataset(work / "data", cases=7, seed=3, shape=(64, 64, 48), spacing=(5.0, 5.0, 5.0), progress=False)
    cmd = [
        sys.executable, "-m", "monai_ext", "demo", "covid19_ct_fewshot_seg", "--work_dir", str(work),
        "--max_epochs", "50", "--time_limit_sec", "0.001", "--install_weights", "--real_ct", str(tmp_path / "none.nii.gz"),
        "--train_overrides", json.dumps(TINY),
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 3, out[-4000:]
    assert "1 of 50 epochs" in res.stdout and "STOPPED BY THE TIME LIMIT" in res.stdout, res.stdout[-3000:]
    assert "not installed" in res.stdout
    assert _sha(COMMITTED) == before, "the demo changed the committed weights"
    assert (work / "models" / "model.pt").is_file()  # the partial model is kept in the demo folder, for inspection


def test_install_replaces_committed_weights_only_when_not_worse(tmp_path):
    trained, committed = tmp_path / "new.pt", tmp_path / "committed.pt"
    torch.save({"w": torch.ones(1)}, trained)
    torch.save({"w": torch.zeros(1)}, committed)
    old = {"left": 0.9, "right": 0.9, "infection": 0.7}
    worse = {"left": 0.9, "right": 0.9, "infection": 0.6}
    msg = install_if_not_worse(trained, committed, worse, old)
    assert msg.startswith("not installed") and "below" in msg
    assert torch.load(committed)["w"].item() == 0.0
    better = {k: v + 0.01 for k, v in old.items()}
    assert install_if_not_worse(trained, committed, better, old).startswith("installed")
    assert torch.load(committed)["w"].item() == 1.0
    # without committed numbers (no committed model) the trained one is installed
    assert install_if_not_worse(trained, tmp_path / "fresh.pt", better, None).startswith("installed")
    assert np.isclose(torch.load(tmp_path / "fresh.pt")["w"].item(), 1.0)


def test_install_refuses_a_model_that_is_less_consistent_on_real_ct(tmp_path):
    trained, committed = tmp_path / "trained.pt", tmp_path / "committed.pt"
    trained.write_bytes(b"new")
    committed.write_bytes(b"old")
    same = {"a": 0.9, "b": 0.9}
    msg = install_if_not_worse(trained, committed, same, same, new_consistency=0.90, old_consistency=0.95)
    assert msg.startswith("not installed") and "consistency" in msg and committed.read_bytes() == b"old"
    assert install_if_not_worse(trained, committed, same, same, 0.95, 0.95).startswith("installed")
    assert committed.read_bytes() == b"new"
