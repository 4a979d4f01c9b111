"""MONAI Label round trip: serve the bundle from a local monaibundle app, POST /infer on the real CT.

MONAI Label 0.8.5 needs its own environment (monai 1.5, pydicom < 3, a CUDA build of torch: about
8 GB), so this test runs only when ``MONAI_EXT_MONAILABEL_PYTHON`` names that environment's python
(with monai_ext installed in it: ``pip install --no-deps -e . && pip install fire nibabel itk pytorch-ignite``).
It is the release check of the README, not part of CI.
"""

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

PY = os.environ.get("MONAI_EXT_MONAILABEL_PYTHON")
pytestmark = pytest.mark.skipif(not PY, reason="set MONAI_EXT_MONAILABEL_PYTHON to a python with monailabel 0.8.5")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_infer_endpoint_returns_a_label_volume_on_the_input_grid(tmp_path, shared_data):
    from monai_ext.label_app import prepare_app, server_command

    ct = shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / ct.name).write_bytes(ct.read_bytes())
    app = prepare_app("covid19_ct_fewshot_seg", tmp_path / "apps", python=PY)
    port = _free_port()
    cmd = server_command("covid19_ct_fewshot_seg", app, studies, port=port, python=PY)
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                info = urllib.request.urlopen(f"{base}/info/", timeout=5).read().decode()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(2)
        else:
            pytest.fail("MONAI Label did not start: " + (tmp_path / "server.log").read_text()[-3000:])
        assert "covid19_ct_fewshot_seg" in info and "infection" in info
        req = urllib.request.Request(
            f"{base}/infer/covid19_ct_fewshot_seg?image=chest_abdomen_ct_3mm&output=image", method="POST"
        )
        out = tmp_path / "label.nii.gz"
        out.write_bytes(urllib.request.urlopen(req, timeout=300).read())
        seg, src = nib.load(out), nib.load(ct)
        assert seg.shape == src.shape
        np.testing.assert_allclose(seg.affine, src.affine, atol=1e-3)
        values = set(np.unique(np.asarray(seg.dataobj)).astype(int).tolist())
        assert values <= {0, 1, 2, 3} and {1, 2} <= values  # both lung bases found
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
