"""Model Zoo checks (monai_ext.cli.zoo) on a minimal bundle written into tmp_path."""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ext.cli import catalog, zoo

NET_KW = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[4, 8], strides=[2], num_res_units=0)

INFERENCE_YAML = """\
imports:
  - $import os
  - $import torch
  - $import monai_ext
bundle_root: "."
device: "$torch.device('cpu')"
ckpt_path: "$os.path.join(@bundle_root, 'models', 'model.pt')"
network_def:
  _target_: monai.networks.nets.UNet
  spatial_dims: 3
  in_channels: 1
  out_channels: 2
  channels: [4, 8]
  strides: [2]
  num_res_units: 0
network: "$@network_def.to(@device)"
"""

TRAIN_YAML = """\
imports:
  - $import monai_ext
bundle_root: "."
network_def:
  _target_: monai.networks.nets.UNet
  spatial_dims: 3
  in_channels: 1
  out_channels: 2
  channels: [4, 8]
  strides: [2]
  num_res_units: 0
"""

LOGGING_CONF = """\
[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level=INFO
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level=INFO
formatter=fullFormatter
args=(sys.stdout,)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""


def _io(num_channels: int, fmt: str, channel_def: dict) -> dict:
    return {
        "type": "image",
        "format": fmt,
        "modality": "CT",
        "num_channels": num_channels,
        "spatial_shape": ["16*n", "16*n", "16*n"],
        "dtype": "float32",
        "value_range": [0, 1],
        "is_patch_data": True,
        "channel_def": channel_def,
    }


def _metadata() -> dict:
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.1.0",
        "changelog": {"0.1.0": "first version"},
        "monai_version": "1.6.1",
        "pytorch_version": "2.13.0",
        "numpy_version": "2.0.0",
        "optional_packages_version": {},
        "name": "tiny test bundle",
        "task": "Tiny 3D segmentation",
        "description": "A two-level 3D U-Net used to test the Model Zoo checks.",
        "authors": "tests",
        "copyright": "Copyright (c) tests",
        "data_source": "random tensors",
        "data_type": "nibabel",
        "intended_use": "tests only",
        "network_data_format": {
            "inputs": {"image": _io(1, "hounsfield", {"0": "image"})},
            "outputs": {"pred": _io(2, "segmentation", {"0": "background", "1": "foreground"})},
        },
    }


def _write_meta(bundle: Path, meta: dict) -> None:
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))


def make_bundle(root: Path, name: str = "tiny_bundle", weights: bool = True) -> Path:
    bundle = root / name
    for d in ("configs", "models", "docs"):
        (bundle / d).mkdir(parents=True, exist_ok=True)
    _write_meta(bundle, _metadata())
    (bundle / "configs" / "inference.yaml").write_text(INFERENCE_YAML)
    (bundle / "configs" / "train.yaml").write_text(TRAIN_YAML)
    (bundle / "configs" / "logging.conf").write_text(LOGGING_CONF)
    (bundle / "docs" / "README.md").write_text("# tiny bundle\n")
    (bundle / "LICENSE").write_text("Apache License 2.0\n")
    if weights:
        from monai.networks.nets import UNet

        torch.manual_seed(123)
        net = UNet(**NET_KW)
        with torch.no_grad():  # non-trivial weights, so that a weight mix-up would show
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        torch.save(net.state_dict(), bundle / "models" / "model.pt")
    return bundle


def _files(bundle: Path) -> dict[str, float]:
    return {str(p.relative_to(bundle)): p.stat().st_mtime for p in bundle.rglob("*")}


def _by_check(results: list[zoo.CheckResult]) -> dict[str, zoo.CheckResult]:
    return {r.check: r for r in results}


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path)


def test_valid_bundle_passes_every_check_and_leaves_no_file(bundle: Path):
    before = _files(bundle)
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    np_state, py_state, sys_path = np.random.get_state()[1].copy(), random.getstate(), list(sys.path)
    cwd = os.getcwd()
    level = logging.getLogger("monai.bundle.scripts").level

    results = zoo.verify_bundle(bundle)

    checks = _by_check(results)
    assert list(checks) == ["layout", "metadata", "version", "net_in_out", "torchscript", "onnx"]
    assert all(r.ok for r in results), zoo.format_results(results, width=0)
    assert all(r.bundle == "tiny_bundle" for r in results)
    assert "(1, 2, 16, 16, 16)" in checks["net_in_out"].message
    # the TorchScript export of the trained weights matched the eager network
    assert checks["torchscript"].message.startswith("models/model.pt exported")
    # no file added to (or changed in) the bundle
    assert _files(bundle) == before
    # global state restored
    assert torch.equal(torch.rand(3), expected_next)
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state
    assert sys.path == sys_path and os.getcwd() == cwd
    assert logging.getLogger("monai.bundle.scripts").level == level
    assert torch.is_grad_enabled()


def test_missing_metadata_field_names_field_bundle_and_file(bundle: Path):
    meta = _metadata()
    del meta["copyright"]
    meta["network_data_format"]["outputs"]["pred"].pop("channel_def")
    _write_meta(bundle, meta)
    checks = _by_check(zoo.verify_bundle(bundle, check_export=False))
    assert not checks["metadata"].ok
    msg = checks["metadata"].message
    assert "'copyright'" in msg and "tiny_bundle" in msg and "metadata.json" in msg
    assert "network_data_format.outputs.pred.channel_def" in msg
    # the other checks still ran
    assert checks["layout"].ok and checks["net_in_out"].ok


def test_changelog_must_hold_current_version(bundle: Path):
    meta = _metadata()
    meta["version"] = "0.2.0"
    _write_meta(bundle, meta)
    res = zoo._check_metadata(bundle, bundle.name)
    assert not res.ok and "changelog" in res.message and "0.2.0" in res.message


def test_wrong_output_channels_fails_net_in_out(bundle: Path):
    meta = _metadata()
    meta["network_data_format"]["outputs"]["pred"]["num_channels"] = 3
    _write_meta(bundle, meta)
    checks = _by_check(zoo.verify_bundle(bundle, check_export=False))
    assert not checks["net_in_out"].ok
    assert "3" in checks["net_in_out"].message and "channel" in checks["net_in_out"].message
    assert checks["metadata"].ok


def test_layout_reports_missing_files(bundle: Path):
    (bundle / "docs" / "README.md").unlink()
    (bundle / "LICENSE").unlink()
    res = zoo._check_layout(bundle, bundle.name)
    assert not res.ok and "docs/README.md" in res.message and "LICENSE" in res.message


def test_without_weights_exports_random_init(tmp_path: Path):
    b = make_bundle(tmp_path, "no_weights", weights=False)
    before = _files(b)
    res = _by_check(zoo.verify_bundle(b))["torchscript"]
    assert res.ok and res.message == zoo.NO_WEIGHTS_MESSAGE
    assert _files(b) == before


def test_local_schema_is_applied_offline(bundle: Path, tmp_path: Path, monkeypatch):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["copyright", "references"]}))
    monkeypatch.setenv(zoo.SCHEMA_ENV, str(schema))
    res = zoo._check_metadata(bundle, bundle.name)
    assert not res.ok and "references" in res.message and "schema" in res.message


def test_list_resolve_and_verify_exit_code(tmp_path: Path, monkeypatch, capsys):
    good = make_bundle(tmp_path, "good", weights=False)
    bad = make_bundle(tmp_path, "bad", weights=False)
    meta = _metadata()
    del meta["copyright"]
    _write_meta(bad, meta)
    monkeypatch.setenv(catalog.BUNDLES_ENV, str(tmp_path))

    assert catalog.bundles_root() == tmp_path.resolve()
    rows = catalog.list_bundles()
    assert [r["name"] for r in rows] == ["bad", "good"]
    assert rows[1]["version"] == "0.1.0" and rows[1]["task"] == "Tiny 3D segmentation"
    assert catalog.resolve_bundle("good") == good.resolve()
    assert catalog.resolve_bundle(str(good)) == good.resolve()
    with pytest.raises(FileNotFoundError, match="good"):
        catalog.resolve_bundle("nope")

    assert zoo.verify(["good"], check_export=False) == 0
    capsys.readouterr()
    assert zoo.verify(None, all=True, check_export=False) != 0
    out = capsys.readouterr().out
    assert "bad" in out and "metadata" in out and "copyright" in out and "FAIL" in out
    assert zoo.verify(["nope"], check_export=False) != 0
    assert zoo.verify(None) != 0


def test_format_results_table():
    table = zoo.format_results(
        [zoo.CheckResult("b", "layout", True, "fine"), zoo.CheckResult("b", "metadata", False, "x\ny")]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["bundle", "check", "status", "message"]
    assert "FAIL" in lines[3] and "x y" in lines[3]


def test_a_dictionary_in_place_of_a_state_dict_fails_and_names_the_file(bundle: Path):
    """The Model Zoo CI's ckpt_export reads models/model.pt as network_def's state dict, so verify does too (the
    style-transfer bundle's {"model": ..., "config": ...} checkpoints passed here and failed there)."""
    ckpt = bundle / "models" / "model.pt"
    state = torch.load(ckpt, weights_only=True)
    torch.save({"model": state, "epoch": 3}, ckpt)
    res = _by_check(zoo.verify_bundle(bundle))["torchscript"]
    assert not res.ok, res.message
    assert "model.pt" in res.message and "expected the state dict of network_def" in res.message, res.message
    assert "'epoch'" in res.message and "'model'" in res.message


def test_a_truncated_weight_file_fails_and_names_the_file(bundle: Path):
    ckpt = bundle / "models" / "model.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    res = _by_check(zoo.verify_bundle(bundle))["torchscript"]
    assert not res.ok and "model.pt" in res.message and "cannot be read as a PyTorch weight file" in res.message, res.message


def test_every_bundle_loads_with_monai_bundle_load_and_its_committed_weights():
    """monai.bundle.load(source="disk") fills network_def (built from the bundle's inference config: MONAI's load
    looks for a .json config only, and these bundles' configs are YAML) with exactly models/model.pt, for every
    bundle: every parameter of the network comes from the file and no entry of the file is left over."""
    from monai.bundle import ConfigParser, load

    from monai_ext.cli.catalog import bundles_root, find_config, list_bundles

    for row in list_bundles():
        name, path = row["name"], Path(row["path"])
        parser = ConfigParser()
        parser.read_config(str(find_config(path, "inference")))
        parser["bundle_root"] = str(path)
        parser["device"] = "$torch.device('cpu')"
        net = parser.get_parsed_content("network_def")
        for p in net.parameters():  # make "not loaded" visible
            p.data.fill_(float("nan"))
        net = load(name, model=net, bundle_dir=str(bundles_root()), source="disk", device="cpu")
        committed = torch.load(path / "models" / "model.pt", map_location="cpu", weights_only=True)
        got = net.state_dict()
        assert set(committed) == set(got), f"{name}: keys differ: {sorted(set(committed) ^ set(got))[:5]}"
        assert all(torch.equal(committed[k], got[k]) for k in committed), name


def test_mismatched_checkpoint_fails_torchscript(bundle: Path):
    from monai.networks.nets import UNet

    torch.save(UNet(**{**NET_KW, "out_channels": 5}).state_dict(), bundle / "models" / "model.pt")
    res = _by_check(zoo.verify_bundle(bundle))["torchscript"]
    assert not res.ok and "tiny_bundle" in res.message


def test_segmentation_bundles_are_those_declaring_a_segmentation_output(tmp_path: Path):
    from monai_ext.cli.catalog import segmentation_bundles

    assert "covid19_ct_fewshot_seg" in segmentation_bundles()
    src = Path(__file__).resolve().parents[1] / "bundles" / "covid19_ct_fewshot_seg"
    for name, fmt in (("seg_copy", "segmentation"), ("generator", "hounsfield")):
        dst = tmp_path / name / "configs"
        dst.mkdir(parents=True)
        for f in ("inference.yaml", "metadata.json"):
            (dst / f).write_text((src / "configs" / f).read_text())
        meta = json.loads((dst / "metadata.json").read_text())
        meta["network_data_format"]["outputs"]["pred"]["format"] = fmt
        (dst / "metadata.json").write_text(json.dumps(meta))
    assert segmentation_bundles(tmp_path) == ["seg_copy"]


def test_version_must_be_the_newest_changelog_entry(bundle: Path):
    meta_file = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    assert _by_check(zoo.verify_bundle(bundle, check_export=False))["version"].ok
    meta["version"] = "9.9.9"
    meta_file.write_text(json.dumps(meta))
    res = _by_check(zoo.verify_bundle(bundle, check_export=False))["version"]
    assert not res.ok and "9.9.9" in res.message and "changelog" in res.message
    meta["changelog"] = {**meta["changelog"], "9.9.9": "added last"}
    meta_file.write_text(json.dumps(meta))
    res = _by_check(zoo.verify_bundle(bundle, check_export=False))["version"]
    assert not res.ok and "first changelog entry" in res.message


def test_a_shipped_model_ts_is_loaded_and_compared(bundle: Path):
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(**NET_KW).eval()
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    torch.jit.script(net).save(str(bundle / "models" / "model.ts"))
    res = _by_check(zoo.verify_bundle(bundle))["model.ts"]
    assert res.ok, res.message
    torch.manual_seed(1)
    torch.jit.script(UNet(**NET_KW).eval()).save(str(bundle / "models" / "model.ts"))  # other weights
    res = _by_check(zoo.verify_bundle(bundle))["model.ts"]
    assert not res.ok and "model.ts" in res.message and "differs" in res.message, res.message


def test_properties_step_for_bundles_that_declare_supported_apps(bundle: Path):
    """Issue 39: a bundle that declares an app (MONAI Label) must hold MONAI's inference-workflow properties; the
    tiny bundle's inference config has a network only, so the step fails and names what is missing. Without
    supported_apps the step does not run, as in the Model Zoo CI."""
    assert "properties" not in _by_check(zoo.verify_bundle(bundle, check_export=False))
    meta = _metadata()
    meta["supported_apps"] = {"monai-label": "0.8.5"}
    _write_meta(bundle, meta)
    check = _by_check(zoo.verify_bundle(bundle, check_export=False))["properties"]
    assert not check.ok and "lacks required properties" in check.message
    assert "'inferer'" in check.message and "'dataset'" in check.message and "'evaluator'" in check.message


def test_covid_bundle_holds_the_inference_properties_monai_label_needs():
    check = _by_check(zoo.verify_bundle("covid19_ct_fewshot_seg", check_export=False))["properties"]
    assert check.ok, check.message


@pytest.mark.slow  # .ci/run runs `python -m monai_ext verify --all` itself after the suite
def test_every_repository_bundle_passes_every_check_with_its_committed_weights(capsys):
    """Issue 39: `verify --all` on the committed weights (TorchScript and ONNX export included), as CI runs it."""
    code = zoo.verify(None, all=True)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "FAIL" not in out
