"""MONAI Label round trip: serve each segmentation bundle from a local monaibundle app, POST /infer on an image of its
kind (the real CT; a four-contrast brain MR or a hand MR phantom).

MONAI Label 0.8.5 needs its own environment (monai 1.5, pydicom < 3, a CUDA build of torch: about
8 GB), so this test runs only when ``MONAI_EXT_MONAILABEL_PYTHON`` names that environment's python
(with monai_ext installed in it: ``pip install --no-deps -e . && pip install fire nibabel itk pytorch-ignite``).
It is the release check of the README, not part of CI.
"""

import os
import pathlib
import socket
import subprocess
import time
import urllib.request

import nibabel as nib
import numpy as np
import pytest

PY = os.environ.get("MONAI_EXT_MONAILABEL_PYTHON")
pytestmark = pytest.mark.skipif(not PY, reason="set MONAI_EXT_MONAILABEL_PYTHON to a python with monailabel 0.8.5")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _segmentation_bundles() -> list[str]:
    from monai_ext.cli.catalog import segmentation_bundles

    return segmentation_bundles()


def _study_image(bundle: str, shared_data, out_dir) -> "pathlib.Path":
    """An image of the bundle's input kind: the real CT, a four-contrast brain MR (MSD-style 4D NIfTI, channels FLAIR,
    T1, T1c, T2) or a hand MR phantom."""
    from pathlib import Path

    if bundle in ("brain_tumor_multiscale_unet", "label_noise_bias_study"):
        from monai_ext.phantoms import generate_brain_tumor_case

        case = generate_brain_tumor_case(7)
        path = Path(out_dir) / "brain_mr_4ch.nii.gz"
        nib.save(nib.Nifti1Image(np.moveaxis(case.image, 0, -1), case.affine), path)
        return path
    if bundle == "hand_bones_multiscale_unet":
        from monai_ext.phantoms.hand_mri import generate_hand_case

        image, _, meta = generate_hand_case(7)
        path = Path(out_dir) / "hand_mr.nii.gz"
        nib.save(nib.Nifti1Image(image[0], np.array(meta["affine"])), path)
        return path
    return shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"


@pytest.mark.parametrize("bundle", _segmentation_bundles())
def test_infer_endpoint_returns_a_label_volume_on_the_input_grid(tmp_path, shared_data, bundle):
    import json

    from monai_ext.cli.catalog import resolve_bundle
    from monai_ext.cli.label_app import prepare_app, server_command

    meta = json.loads((resolve_bundle(bundle) / "configs" / "metadata.json").read_text())
    pred = next(o for o in meta["network_data_format"]["outputs"].values() if o.get("format") == "segmentation")
    # softmax outputs: channel 0 is the background, the others the classes; a one-channel (sigmoid) output is one class
    one_channel = int(pred.get("num_channels", len(pred["channel_def"]))) == 1
    class_names = [] if one_channel else [v for k, v in sorted(pred["channel_def"].items()) if k != "0"]
    num_labels = 1 if one_channel else len(class_names)

    studies = tmp_path / "studies"
    studies.mkdir()
    ct = _study_image(bundle, shared_data, studies)
    if ct.parent != studies:
        (studies / ct.name).write_bytes(ct.read_bytes())
    study_id = ct.name[: -len(".nii.gz")]
    app = prepare_app(bundle, tmp_path / "apps", python=PY)
    port = _free_port()
    cmd = server_command(bundle, app, studies, port=port, python=PY)
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
        assert bundle in info and all(c in info for c in class_names)
        req = urllib.request.Request(f"{base}/infer/{bundle}?image={study_id}&output=image", method="POST")
        out = tmp_path / "label.nii.gz"
        out.write_bytes(urllib.request.urlopen(req, timeout=300).read())
        seg, src = nib.load(out), nib.load(ct)
        assert seg.shape == src.shape[:3]
        np.testing.assert_allclose(seg.affine, src.affine, atol=1e-3)
        values = set(np.unique(np.asarray(seg.dataobj)).astype(int).tolist())
        assert values <= set(range(num_labels + 1)) and len(values) > 1
        if bundle == "covid19_ct_fewshot_seg":
            assert {1, 2} <= values  # both lung bases found
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
