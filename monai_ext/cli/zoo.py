"""MONAI Model Zoo checks for the bundles under ``bundles/``, usable from the command line.

``python -m monai_ext verify BUNDLE`` (or ``--all``) runs, for each bundle, every check below and reports each
one separately (a failing check never stops the others):

``layout``
    ``configs/metadata.json``, a train config, an inference config (``.json``, ``.yaml`` or ``.yml``),
    ``configs/logging.conf``, ``models/``, ``docs/README.md`` and ``LICENSE`` exist, and the configs parse.
``metadata``
    the fields that the Model Zoo's CI (``ci/verify_bundle.py`` and the ``meta_schema`` it validates
    against) demands are present and non-empty, ``changelog`` has an entry for ``version``, and every
    ``network_data_format`` input/output entry is complete. The JSON schema of ``metadata["schema"]`` is
    also applied with :func:`monai.bundle.verify_metadata` when a local copy of it exists
    (``$MONAI_EXT_META_SCHEMA``, or a file with the schema URL's basename in :func:`bundles_root` or in
    the bundle's ``eval/`` folder); it is never downloaded.
``net_in_out``
    :func:`monai.bundle.verify_net_in_out` builds ``network_def`` from the inference config and runs it on
    random data of the declared input shape (``"16*n"`` -> ``16 * n``), checking the output channels and
    dtype; the output spatial shape is then compared with the declared one.
``torchscript``
    :func:`monai.bundle.ckpt_export` exports ``models/model.pt`` (or the randomly initialised network when
    there are no trained weights) into a temporary folder; the TorchScript module is loaded back and must
    match the eager network (same weights, same random input) to ``max |diff| < 1e-4``.
``onnx``
    only when ``onnx`` is importable: ``torch.onnx.export`` + ``onnx.checker`` (+ onnxruntime comparison
    when that is installed).

All of it runs offline and leaves no file in the bundle; global state that the MONAI helpers touch (random
number generators, ``sys.path``, modules imported from the bundle, working directory, grad mode, default
dtype, MONAI's log levels, warning filters) is restored afterwards.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .catalog import (
    CONFIG_SUFFIXES,
    bundles_root,
    find_config,
    list_bundles,
    one_line,
    resolve_bundle,
)
from .quiet import captured_run_output

__all__ = [
    "CheckResult",
    "REQUIRED_METADATA_FIELDS",
    "REQUIRED_IO_FIELDS",
    "verify_bundle",
    "format_results",
    "verify",
]

#: environment variable naming a local copy of the metadata JSON schema
SCHEMA_ENV = "MONAI_EXT_META_SCHEMA"


#: top-level metadata fields required by the Model Zoo (``meta_schema_20220324.json`` + ``ci/verify_bundle.py``)
REQUIRED_METADATA_FIELDS: tuple[str, ...] = (
    "schema",
    "version",
    "changelog",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "optional_packages_version",
    "name",
    "task",
    "description",
    "authors",
    "copyright",
    "data_source",
    "data_type",
    "intended_use",
    "network_data_format",
)
#: fields that may be present but empty (an empty dict)
_MAY_BE_EMPTY = frozenset({"optional_packages_version"})
#: expected JSON types of the top-level fields (``authors`` may be a string or a list)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "version": (str,),
    "changelog": (dict,),
    "monai_version": (str,),
    "pytorch_version": (str,),
    "numpy_version": (str,),
    "optional_packages_version": (dict,),
    "name": (str,),
    "task": (str,),
    "description": (str,),
    "authors": (str, list),
    "copyright": (str,),
    "data_source": (str,),
    "data_type": (str,),
    "intended_use": (str,),
    "network_data_format": (dict,),
}
#: fields of every ``network_data_format`` input / output entry, with their JSON types
REQUIRED_IO_FIELDS: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "format": (str,),
    "num_channels": (int,),
    "spatial_shape": (list, tuple),
    "dtype": (str,),
    "value_range": (list, tuple),
    "is_patch_data": (bool,),
    "channel_def": (dict,),
}

NET_ID = "network_def"
TS_TOLERANCE = 1e-4
NO_WEIGHTS_MESSAGE = "no trained weights; exported random init"


@dataclass
class CheckResult:
    """Outcome of one check of one bundle."""

    bundle: str
    check: str
    ok: bool
    message: str = ""

    def __str__(self) -> str:
        return f"[{'OK' if self.ok else 'FAIL'}] {self.bundle}:{self.check}: {self.message}"


# ---------------------------------------------------------------------------------------------------------------
# isolation of global state
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_bundle(bundle: Path, quiet: bool = True) -> Iterator[None]:
    """Run MONAI's bundle helpers with the bundle importable, and undo what they change afterwards.

    Restores: torch / numpy / python random states, ``sys.path``, modules imported from the bundle folder,
    the working directory, grad mode, default dtype, cudnn flags, MONAI's log levels and warning filters.
    """
    bundle_s = str(bundle)
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    saved_cwd = os.getcwd()
    saved_grad = torch.is_grad_enabled()
    saved_dtype = torch.get_default_dtype()
    saved_np = np.random.get_state()
    saved_py = random.getstate()
    saved_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    saved_levels: dict[str, int] = {}
    if quiet:
        names = [n for n in list(logging.root.manager.loggerDict) if n == "monai" or n.startswith("monai.")]
        for n in names:
            lg = logging.getLogger(n)
            saved_levels[n] = lg.level
            lg.setLevel(logging.WARNING)
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda_devices), warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                # MONAI >= 1.5 maps the Model Zoo's `optional_packages_version` onto `required_packages_version`
                warnings.filterwarnings("ignore", message="Detected deprecated name")
            # the Model Zoo CI puts the bundle first on sys.path so that ``$import scripts`` works
            sys.path.insert(0, bundle_s)
            yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            mod = sys.modules.get(name)
            f = getattr(mod, "__file__", None) or ""
            if f and os.path.abspath(f).startswith(bundle_s + os.sep):
                del sys.modules[name]
        torch.set_grad_enabled(saved_grad)
        torch.set_default_dtype(saved_dtype)
        np.random.set_state(saved_np)
        random.setstate(saved_py)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved_cudnn
        for n, level in saved_levels.items():
            logging.getLogger(n).setLevel(level)


def _err(e: BaseException) -> str:
    """One-line exception text, with the cause chain (MONAI wraps config errors)."""
    parts = []
    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen and len(parts) < 4:
        seen.add(id(cur))
        text = " ".join(str(cur).split())
        parts.append(f"{type(cur).__name__}: {text}" if text else type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return " <- ".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------------------------


def _check_layout(bundle: Path, name: str) -> CheckResult:
    problems = []
    required = [
        ("configs/metadata.json", (bundle / "configs" / "metadata.json").is_file()),
        ("configs/train.(json|yaml|yml)", find_config(bundle, "train") is not None),
        ("configs/inference.(json|yaml|yml)", find_config(bundle, "inference") is not None),
        ("configs/logging.conf", (bundle / "configs" / "logging.conf").is_file()),
        ("models/", (bundle / "models").is_dir()),
        ("docs/README.md", (bundle / "docs" / "README.md").is_file()),
        ("LICENSE", (bundle / "LICENSE").is_file()),
    ]
    missing = [f for f, ok in required if not ok]
    if missing:
        problems.append(f"missing in bundle {name!r} ({bundle}): {', '.join(missing)}")
    # the configs that exist must parse
    from monai.bundle import ConfigParser

    cfg_dir = bundle / "configs"
    if cfg_dir.is_dir():
        for p in sorted(cfg_dir.iterdir()):
            if p.suffix in CONFIG_SUFFIXES and p.is_file():
                try:
                    ConfigParser.load_config_file(str(p))
                except Exception as e:
                    problems.append(f"{p.relative_to(bundle)} does not parse: {_err(e)}")
        log_conf = cfg_dir / "logging.conf"
        if log_conf.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read(log_conf, encoding="utf-8")
                lacking = [s for s in ("loggers", "handlers", "formatters") if not cp.has_section(s)]
                if lacking:
                    problems.append(f"configs/logging.conf lacks section(s) {lacking}")
            except configparser.Error as e:
                problems.append(f"configs/logging.conf does not parse: {_err(e)}")
    if problems:
        return CheckResult(name, "layout", False, "; ".join(problems))
    return CheckResult(name, "layout", True, "all required files present")


def _is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, (str, list, tuple, dict)) and len(v) == 0) or (
        isinstance(v, str) and not v.strip()
    )


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "array", tuple: "array"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _has_type(v: Any, types: tuple[type, ...]) -> bool:
    if bool not in types and isinstance(v, bool):  # JSON true/false is not an integer
        return False
    return isinstance(v, types)


def _metadata_problems(meta: Any) -> list[str]:
    """Field problems of a metadata dict, each phrased as ``field 'x' ...``."""
    if not isinstance(meta, dict):
        return [f"the metadata is a JSON {type(meta).__name__}, not an object"]
    problems: list[str] = []
    for field in REQUIRED_METADATA_FIELDS:
        if field not in meta:
            problems.append(f"field '{field}' is missing")
            continue
        v = meta[field]
        if not _has_type(v, _FIELD_TYPES[field]):
            problems.append(f"field '{field}' must be {_type_names(_FIELD_TYPES[field])}, got {type(v).__name__}")
            continue
        if field not in _MAY_BE_EMPTY and _is_empty(v):
            problems.append(f"field '{field}' is empty")
    version, changelog = meta.get("version"), meta.get("changelog")
    if isinstance(version, str) and version and isinstance(changelog, dict) and version not in changelog:
        problems.append(f"field 'changelog' has no entry for the current version '{version}'")
    ndf = meta.get("network_data_format")
    if isinstance(ndf, dict):
        for section in ("inputs", "outputs"):
            entries = ndf.get(section)
            key = f"network_data_format.{section}"
            if section not in ndf:
                problems.append(f"field '{key}' is missing")
                continue
            if not isinstance(entries, dict) or not entries:
                problems.append(f"field '{key}' must be a non-empty object")
                continue
            for entry_name, entry in entries.items():
                ekey = f"{key}.{entry_name}"
                if not isinstance(entry, dict):
                    problems.append(f"field '{ekey}' must be an object")
                    continue
                for f, types in REQUIRED_IO_FIELDS.items():
                    if f not in entry:
                        problems.append(f"field '{ekey}.{f}' is missing")
                    elif not _has_type(entry[f], types):
                        problems.append(
                            f"field '{ekey}.{f}' must be {_type_names(types)}, got {type(entry[f]).__name__}"
                        )
                    elif f in ("type", "format", "dtype") and _is_empty(entry[f]):
                        problems.append(f"field '{ekey}.{f}' is empty")
                if isinstance(entry.get("num_channels"), int) and not isinstance(entry["num_channels"], bool):
                    if entry["num_channels"] < 1:
                        problems.append(f"field '{ekey}.num_channels' must be >= 1")
                shape = entry.get("spatial_shape")
                if isinstance(shape, (list, tuple)):
                    bad = [s for s in shape if isinstance(s, bool) or not isinstance(s, (int, str))]
                    if bad:
                        problems.append(f"field '{ekey}.spatial_shape' items must be integers or strings, got {bad}")
                dtype = entry.get("dtype")
                if isinstance(dtype, str) and dtype and not isinstance(getattr(torch, dtype, None), torch.dtype):
                    problems.append(f"field '{ekey}.dtype' is not a torch/numpy dtype name: {dtype!r}")
    return problems


def _local_schema(bundle: Path, meta: dict) -> Path | None:
    """A local copy of the metadata JSON schema, or ``None``: nothing is ever downloaded."""
    env = os.environ.get(SCHEMA_ENV)
    if env and Path(env).is_file():
        return Path(env)
    url = meta.get("schema") if isinstance(meta, dict) else None
    if not isinstance(url, str) or not url:
        return None
    if "://" not in url and Path(url).is_file():  # a path rather than a URL
        return Path(url)
    base = url.rstrip("/").rsplit("/", 1)[-1]
    if not base:
        return None
    for c in (bundles_root() / base, bundle / "eval" / base, bundle / "eval" / "schema.json"):
        if c.is_file():
            return c
    return None


def _check_metadata(bundle: Path, name: str) -> CheckResult:
    meta_file = bundle / "configs" / "metadata.json"
    if not meta_file.is_file():
        return CheckResult(name, "metadata", False, f"bundle {name!r}: {meta_file} does not exist")
    try:
        with open(meta_file, encoding="utf-8") as f:
            meta = json.load(f)
    except Exception as e:
        return CheckResult(name, "metadata", False, f"bundle {name!r}: {meta_file} is not valid JSON: {_err(e)}")
    problems = [f"bundle {name!r}: {p} in {meta_file}" for p in _metadata_problems(meta)]
    schema_note = "no local copy of the JSON schema: field checks only"
    schema = _local_schema(bundle, meta) if isinstance(meta, dict) else None
    if schema is not None:
        try:
            from monai.bundle import verify_metadata

            with isolated_bundle(bundle), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="No hash value provided")
                # ``filepath`` exists, so MONAI's download_url skips the download
                verify_metadata(meta_file=str(meta_file), filepath=str(schema), create_dir=False)
            schema_note = f"validated against the schema {schema}"
        except Exception as e:
            problems.append(f"bundle {name!r}: {meta_file} fails the JSON schema {schema}: {_err(e)}")
    if problems:
        return CheckResult(name, "metadata", False, "; ".join(problems))
    return CheckResult(name, "metadata", True, f"required fields present; {schema_note}")


def _needs_configs(name: str) -> str:
    return f"bundle {name!r}: needs configs/metadata.json and an inference config"


def _io_entries(meta: dict) -> tuple[str, dict, str, dict]:
    """(input name, input entry, output name, output entry): ``image``/``pred`` if present, else the first."""
    ndf = meta["network_data_format"]
    inputs, outputs = ndf["inputs"], ndf["outputs"]
    in_name = "image" if "image" in inputs else next(iter(inputs))
    out_name = "pred" if "pred" in outputs else next(iter(outputs))
    return in_name, inputs[in_name], out_name, outputs[out_name]


def _fake_spatial_shape(shape: Sequence[Any], n: int, any_size: int) -> tuple[int, ...]:
    try:
        from monai.bundle.scripts import _get_fake_spatial_shape
    except ImportError:  # pragma: no cover - private helper of MONAI
        _get_fake_spatial_shape = None
    if _get_fake_spatial_shape is not None:
        return tuple(int(s) for s in _get_fake_spatial_shape(shape, p=1, n=n, any=any_size))
    out = []
    for s in shape:
        if isinstance(s, int):
            out.append(s)
        elif s == "*":
            out.append(any_size)
        else:
            out.append(int(eval(str(s), {"__builtins__": {}}, {"n": n, "p": 1})))  # noqa: S307
    return tuple(out)


def _declared_io(bundle: Path, n: int, any_size: int) -> tuple[dict, tuple[int, ...], torch.dtype, dict]:
    """(metadata, input shape incl. batch 1, input dtype, output entry)."""
    from monai.utils import get_equivalent_dtype

    with open(bundle / "configs" / "metadata.json", encoding="utf-8") as f:
        meta = json.load(f)
    _, inp, _, out = _io_entries(meta)
    shape = (1, int(inp["num_channels"]), *_fake_spatial_shape(inp["spatial_shape"], n, any_size))
    dtype = get_equivalent_dtype(inp.get("dtype", "float32"), torch.Tensor)
    return meta, shape, dtype, out


def _io_overrides(meta: dict) -> dict:
    """MONAI reads ``inputs#image`` and ``outputs#pred``: alias the first entries when named otherwise."""
    in_name, inp, out_name, out = _io_entries(meta)
    ov = {}
    if in_name != "image":
        ov["_meta_#network_data_format#inputs#image"] = inp
    if out_name != "pred":
        ov["_meta_#network_data_format#outputs#pred"] = out
    return ov


def _build_network(bundle: Path, config_file: Path, meta_file: Path, device: str) -> torch.nn.Module:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(f=str(config_file))
    parser.read_meta(f=str(meta_file))
    parser["bundle_root"] = str(bundle)
    net = parser.get_parsed_content(NET_ID)
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"'{NET_ID}' in {config_file.name} is a {type(net).__name__}, not a torch.nn.Module")
    return net.to(device).eval()


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []


def _network_with_committed_weights(bundle: Path, config_file: Path, meta_file: Path, device: str) -> torch.nn.Module:
    """``network_def`` of ``config_file`` with ``models/model.pt`` loaded when the bundle has it (read as the Model Zoo
    CI reads it: the state dict itself)."""
    net = _build_network(bundle, config_file, meta_file, device)
    ckpt_file = bundle / "models" / "model.pt"
    if ckpt_file.is_file():
        net.load_state_dict(state_dict_of(_load_checkpoint(ckpt_file)[0], ckpt_file))
    return net


def _output_difference(ref: list[torch.Tensor], got: list[torch.Tensor], what: str) -> tuple[float, str | None]:
    """``(max |got - ref|, problem)``: ``problem`` says what differs when the outputs cannot be compared element by
    element (another number of tensors or another shape); ``what`` names ``got`` in that message."""
    if not ref or len(ref) != len(got):
        return float("inf"), f"eager gives {len(ref)} tensor(s), {what} {len(got)}"
    diff = 0.0
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            return float("inf"), f"{what} output shape {tuple(g.shape)} != eager {tuple(r.shape)}"
        diff = max(diff, float((r.float() - g.float()).abs().max()) if r.numel() else 0.0)
    return diff, None


def _check_net_in_out(
    bundle: Path, name: str, device: str, n: int, any_size: int, extra_forward_args: dict | None
) -> CheckResult:
    config_file = find_config(bundle, "inference")
    meta_file = bundle / "configs" / "metadata.json"
    if config_file is None or not meta_file.is_file():
        return CheckResult(name, "net_in_out", False, _needs_configs(name))
    try:
        from monai.bundle import verify_net_in_out

        meta, shape, dtype, out_entry = _declared_io(bundle, n, any_size)
        with isolated_bundle(bundle):
            verify_net_in_out(
                net_id=NET_ID,
                meta_file=str(meta_file),
                config_file=str(config_file),
                device=device,
                p=1,
                n=n,
                any=any_size,
                extra_forward_args=dict(extra_forward_args or {}),
                bundle_root=str(bundle),
                **_io_overrides(meta),
            )
            # MONAI checks channels and dtype; check the declared output spatial shape as well
            net = _build_network(bundle, config_file, meta_file, device)
            x = torch.rand(*shape, dtype=dtype if dtype != torch.float16 else torch.float32, device=device)
            with torch.no_grad():
                outs = _tensors(net(x, **dict(extra_forward_args or {})))
        if not outs:
            return CheckResult(name, "net_in_out", False, f"bundle {name!r}: the network returned no tensor")
        declared = out_entry.get("spatial_shape")
        got = tuple(outs[0].shape[2:])
        if isinstance(declared, (list, tuple)) and "*" not in declared:
            want = _fake_spatial_shape(declared, n, any_size)
            if got != want:
                return CheckResult(
                    name,
                    "net_in_out",
                    False,
                    f"bundle {name!r}: output spatial shape {got} for input {tuple(shape)} does not match the "
                    f"declared {list(declared)} (= {want} with n={n}) in {meta_file}",
                )
        return CheckResult(
            name, "net_in_out", True, f"input {tuple(shape)} -> output {tuple(outs[0].shape)} {outs[0].dtype}"
        )
    except Exception as e:
        return CheckResult(name, "net_in_out", False, f"bundle {name!r} ({config_file.name}): {_err(e)}")


def _load_checkpoint(path: Path) -> tuple[Any, bool]:
    """(checkpoint, loadable_as_is): weights only; mapped to CPU when it cannot be loaded as saved."""
    try:
        try:
            return torch.load(str(path), weights_only=True), True
        except RuntimeError:
            return torch.load(str(path), map_location="cpu", weights_only=True), False
    except Exception as e:
        raise ValueError(
            f"{path}: cannot be read as a PyTorch weight file ({type(e).__name__}: {one_line(e, 120)}); expected the "
            "state dict of network_def as torch.save writes it (truncated or corrupt?)"
        ) from e


def state_dict_of(ckpt: Any, path: Path) -> dict:
    """``ckpt`` when it is a state dict (parameter names -> tensors), as the Model Zoo CI's ``ckpt_export`` and
    ``monai.bundle.load`` read ``models/model.pt``; else ``ValueError`` naming ``path`` and what it holds."""
    if isinstance(ckpt, dict) and ckpt and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ckpt.items()):
        return ckpt
    if isinstance(ckpt, dict):
        other = sorted(str(k) for k, v in ckpt.items() if not isinstance(v, torch.Tensor))[:6]
        what = f"a dictionary with non-tensor entries {other}" if ckpt else "an empty dictionary"
    else:
        what = f"a {type(ckpt).__name__}"
    raise ValueError(
        f"{path}: holds {what}; expected the state dict of network_def (parameter names -> tensors), which the "
        "Model Zoo CI's ckpt_export and monai.bundle.load read as they are. Save net.state_dict() and keep other "
        "information in a file beside it."
    )


def export_torchscript(
    bundle: Path, config_file: Path, meta_file: Path, ts_file: Path, tmp_dir: Path
) -> tuple[torch.nn.Module, bool]:
    """``ckpt_export`` of ``models/model.pt`` (random init when there are no weights) to ``ts_file``.

    Returns the eager network (weights loaded, on CPU) and whether trained weights were found."""
    from monai.bundle import ckpt_export

    ckpt_file = bundle / "models" / "model.pt"
    net = _build_network(bundle, config_file, meta_file, "cpu")
    trained = ckpt_file.is_file()
    if trained:
        ckpt, as_is = _load_checkpoint(ckpt_file)
        net.load_state_dict(state_dict_of(ckpt, ckpt_file))
        export_ckpt = ckpt_file
        if not as_is:  # e.g. saved on a GPU and read on a CPU-only machine: export a CPU copy
            export_ckpt = tmp_dir / "model_cpu.pt"
            torch.save(net.state_dict(), export_ckpt)
    else:
        export_ckpt = tmp_dir / "random_init.pt"
        torch.save(net.state_dict(), export_ckpt)
    export_kwargs: dict[str, Any] = dict(
        net_id=NET_ID,
        filepath=str(ts_file),
        ckpt_file=str(export_ckpt),
        meta_file=str(meta_file),
        config_file=str(config_file),
        bundle_root=str(bundle),
    )
    ckpt_export(**export_kwargs)
    return net, trained


def _check_torchscript(bundle: Path, name: str, device: str, n: int, any_size: int) -> CheckResult:
    config_file = find_config(bundle, "inference")
    meta_file = bundle / "configs" / "metadata.json"
    if config_file is None or not meta_file.is_file():
        return CheckResult(name, "torchscript", False, _needs_configs(name))
    try:
        _, shape, dtype, _ = _declared_io(bundle, n, any_size)
        if dtype == torch.float16 and device == "cpu":
            dtype = torch.float32
        with tempfile.TemporaryDirectory(prefix="monai_ext_verify_") as tmp, isolated_bundle(bundle):
            tmp_dir = Path(tmp)
            ts_file = tmp_dir / "model.ts"
            net, trained = export_torchscript(bundle, config_file, meta_file, ts_file, tmp_dir)
            if not ts_file.is_file():
                return CheckResult(name, "torchscript", False, f"bundle {name!r}: ckpt_export wrote no {ts_file.name}")
            extra = {"metadata.json": "", f"{config_file.stem}.json": ""}
            ts = torch.jit.load(str(ts_file), map_location=device, _extra_files=extra)
            ts.eval()
            missing_extra = [k for k, v in extra.items() if not v]
            net = net.to(device).eval()
            x = torch.rand(*shape, dtype=dtype, device=device)
            with torch.no_grad():
                ref = _tensors(net(x))
                got = _tensors(ts(x))
        diff, problem = _output_difference(ref, got, "TorchScript")
        if problem is not None:
            return CheckResult(name, "torchscript", False, f"bundle {name!r}: {problem}")
        if not diff < TS_TOLERANCE:
            return CheckResult(
                name,
                "torchscript",
                False,
                f"bundle {name!r}: TorchScript and eager outputs differ, max |diff| = {diff:.3g} >= {TS_TOLERANCE:g}",
            )
        if missing_extra:
            return CheckResult(
                name, "torchscript", False, f"bundle {name!r}: exported module lacks extra files {missing_extra}"
            )
        if not trained:
            return CheckResult(name, "torchscript", True, NO_WEIGHTS_MESSAGE)
        return CheckResult(name, "torchscript", True, f"models/model.pt exported; max |ts - eager| = {diff:.2g}")
    except Exception as e:
        return CheckResult(name, "torchscript", False, f"bundle {name!r}: {_err(e)}")


def _check_onnx(bundle: Path, name: str, n: int, any_size: int) -> CheckResult:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return CheckResult(name, "onnx", True, "onnx not installed")
    config_file = find_config(bundle, "inference")
    meta_file = bundle / "configs" / "metadata.json"
    if config_file is None or not meta_file.is_file():
        return CheckResult(name, "onnx", False, _needs_configs(name))
    try:
        _, shape, dtype, _ = _declared_io(bundle, n, any_size)
        if dtype == torch.float16:
            dtype = torch.float32
        with tempfile.TemporaryDirectory(prefix="monai_ext_onnx_") as tmp, isolated_bundle(bundle):
            net = _network_with_committed_weights(bundle, config_file, meta_file, "cpu")
            x = torch.rand(*shape, dtype=dtype)
            path = Path(tmp) / "model.onnx"
            try:
                torch.onnx.export(net, (x,), str(path), input_names=["input"], output_names=["output"])
            except ImportError as e:  # e.g. the dynamo exporter without onnxscript
                return CheckResult(name, "onnx", True, f"onnx export skipped: {_err(e)}")
            onnx.checker.check_model(str(path))
            try:
                import onnxruntime as ort
            except ImportError:
                return CheckResult(name, "onnx", True, "exported and checked (onnxruntime not installed)")
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            with torch.no_grad():
                ref = _tensors(net(x))[0].numpy()
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        diff = float(np.abs(ref - got).max())
        if not diff < 1e-3:
            msg = f"bundle {name!r}: onnxruntime and eager differ, max |diff| = {diff:.3g}"
            return CheckResult(name, "onnx", False, msg)
        return CheckResult(name, "onnx", True, f"exported, checked, max |onnxruntime - eager| = {diff:.2g}")
    except Exception as e:
        return CheckResult(name, "onnx", False, f"bundle {name!r}: {_err(e)}")


def _check_version(bundle: Path, name: str) -> CheckResult:
    """The Model Zoo CI's version step: ``version`` present and listed in ``changelog`` (here also: first, as the
    newest entry)."""
    try:
        meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return CheckResult(name, "version", False, f"bundle {name!r}: configs/metadata.json unreadable: {_err(e)}")
    version, changelog = meta.get("version"), meta.get("changelog")
    if not isinstance(version, str) or not isinstance(changelog, dict):
        return CheckResult(name, "version", False, f"bundle {name!r}: metadata needs a 'version' string and a 'changelog' dict")
    if version not in changelog:
        return CheckResult(name, "version", False, f"bundle {name!r}: version {version} is missing in 'changelog'")
    if next(iter(changelog)) != version:
        return CheckResult(
            name, "version", False, f"bundle {name!r}: the first changelog entry is {next(iter(changelog))}, not the version {version}"
        )
    return CheckResult(name, "version", True, f"{version} (in changelog)")


def _check_properties(bundle: Path, name: str) -> CheckResult | None:
    """The Model Zoo CI's bundle-properties step for the apps in ``supported_apps`` (MONAI Label serves a bundle
    through MONAI's inference workflow): ``inference.yaml`` initialises as a ``ConfigWorkflow`` and holds every
    required property of MONAI's ``MetaProperties`` and ``InferProperties``. The Model Zoo takes each app's own
    ``bundle_properties.py`` from its repository, which is not available offline; MONAI's lists are what those
    files hold for inference. ``dataset_dir`` points at a folder with one small NIfTI, as no data ship with a
    bundle. ``None`` when the bundle declares no ``supported_apps``."""
    try:
        meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return CheckResult(name, "properties", False, f"bundle {name!r}: configs/metadata.json unreadable: {_err(e)}")
    apps = meta.get("supported_apps") or {}
    if not apps:
        return None
    config = find_config(bundle, "inference")
    if config is None:
        return CheckResult(name, "properties", False, f"bundle {name!r} declares {sorted(apps)} but has no inference config")
    import nibabel as nib
    from monai.bundle import ConfigWorkflow
    from monai.bundle.properties import InferProperties, MetaProperties
    from monai.utils import BundleProperty, BundlePropertyConfig

    try:
        with tempfile.TemporaryDirectory(prefix="monai_ext_properties_") as tmp, isolated_bundle(bundle):
            nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), os.path.join(tmp, "scan.nii.gz"))
            workflow = ConfigWorkflow(
                config_file=str(config), meta_file=str(bundle / "configs" / "metadata.json"),
                logging_file=str(bundle / "configs" / "logging.conf"), workflow_type="infer",
                bundle_root=str(bundle), dataset_dir=tmp, output_dir=os.path.join(tmp, "out"),
            )
            workflow.initialize()
            props = {**MetaProperties, **InferProperties}
            missing = [  # MONAI's check_properties stops at the first absent ID with a KeyError: list them all
                n for n, prop in props.items()
                if prop.get(BundleProperty.REQUIRED, False) and prop.get(BundlePropertyConfig.ID, n) not in workflow.parser
            ]
            if not missing:  # every ID is there: resolve them, as MONAI Label will
                workflow.properties = props
                missing = workflow.check_properties()
    except Exception as e:
        return CheckResult(name, "properties", False, f"{config.relative_to(bundle)} as MONAI's inference workflow: {_err(e)}")
    if missing:
        return CheckResult(name, "properties", False, f"{config.relative_to(bundle)} lacks required properties {missing}")
    return CheckResult(name, "properties", True, f"inference workflow holds MONAI's required properties ({', '.join(sorted(apps))})")


def _check_committed_torchscript(bundle: Path, name: str, device: str, n: int, any_size: int) -> CheckResult | None:
    """``models/model.ts`` when the bundle ships one: it loads with ``torch.jit.load`` and gives the eager network's
    output on the declared input; ``None`` when there is no such file."""
    ts_file = bundle / "models" / "model.ts"
    if not ts_file.is_file():
        return None
    try:
        _, shape, dtype, _ = _declared_io(bundle, n, any_size)
        with isolated_bundle(bundle):
            net = _network_with_committed_weights(
                bundle, find_config(bundle, "inference"), bundle / "configs" / "metadata.json", device
            )
            ts = torch.jit.load(str(ts_file), map_location=device).eval()
            x = torch.rand(*shape, dtype=torch.float32 if dtype == torch.float16 else dtype, device=device)
            with torch.no_grad():
                ref, got = _tensors(net(x)), _tensors(ts(x))
        diff, problem = _output_difference(ref, got, "model.ts")
    except Exception as e:
        return CheckResult(name, "model.ts", False, f"{ts_file}: {_err(e)}")
    if problem is not None:
        return CheckResult(name, "model.ts", False, f"{ts_file}: {problem}")
    if not diff < TS_TOLERANCE:
        return CheckResult(name, "model.ts", False, f"{ts_file}: differs from models/model.pt, max |diff| = {diff:.3g}")
    return CheckResult(name, "model.ts", True, f"loads; max |model.ts - eager| = {diff:.2g}")


def verify_bundle(
    name_or_path: str | Path,
    *,
    check_export: bool = True,
    device: str = "cpu",
    n: int = 1,
    any_size: int = 16,
    extra_forward_args: dict | None = None,
) -> list[CheckResult]:
    """Run the Model Zoo checks on one bundle; every check is reported, none stops the others.

    Args:
        name_or_path: bundle name under :func:`bundles_root` or path to a bundle folder.
        check_export: also run the ``torchscript`` (and ``onnx``) export checks.
        device: device for the forward passes.
        n: value of ``n`` in declared spatial shapes such as ``"16*n"``.
        any_size: size used for ``"*"`` dimensions.
        extra_forward_args: extra keyword arguments of the network's ``forward``.

    Returns:
        one :class:`CheckResult` per check: ``layout``, ``metadata``, ``version``, ``properties`` (only for bundles
        that declare ``supported_apps``), ``net_in_out``, ``torchscript``,
        ``model.ts`` (only when the bundle ships ``models/model.ts``), ``onnx``
        (a single ``resolve`` failure when the bundle cannot be found).
    """
    try:
        bundle = resolve_bundle(name_or_path)
    except FileNotFoundError as e:
        return [CheckResult(str(name_or_path), "resolve", False, str(e))]
    name = bundle.name
    results = [_check_layout(bundle, name), _check_metadata(bundle, name), _check_version(bundle, name)]
    properties = _check_properties(bundle, name)
    if properties is not None:
        results.append(properties)
    results.append(_check_net_in_out(bundle, name, device, n, any_size, extra_forward_args))
    if check_export:
        results.append(_check_torchscript(bundle, name, device, n, any_size))
        committed_ts = _check_committed_torchscript(bundle, name, device, n, any_size)
        if committed_ts is not None:
            results.append(committed_ts)
        results.append(_check_onnx(bundle, name, n, any_size))
    else:
        results.append(CheckResult(name, "torchscript", True, "skipped (export checks off)"))
        results.append(CheckResult(name, "onnx", True, "skipped (export checks off)"))
    return results


# ---------------------------------------------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------------------------------------------


def format_results(results: Sequence[CheckResult], width: int = 100) -> str:
    """A plain text table: bundle, check, OK/FAIL, message (one line, cut to ``width`` characters)."""
    header = ("bundle", "check", "status", "message")
    rows = [
        (r.bundle, r.check, "OK" if r.ok else "FAIL", one_line(r.message, width or 10**9))
        for r in results
    ]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(3)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3]

    lines = [fmt(header), "  ".join("-" * w for w in widths) + "  " + "-" * 7]
    lines += [fmt(row) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def verify(
    bundles: Sequence[str | Path] | None = None,
    all: bool = False,  # noqa: A002 - CLI flag name
    *,
    check_export: bool = True,
    device: str = "cpu",
) -> int:
    """Verify the named bundles (or all under :func:`bundles_root` with ``all=True``) and print a report.

    Returns:
        0 when every check passed, 1 when any failed, 2 when nothing was asked for or found.
    """
    names: list[str | Path] = list(bundles or [])
    if all:
        found = [r["path"] for r in list_bundles()]
        names += [p for p in found if p not in names]
        if not found and not bundles:
            print(f"no bundles found under {bundles_root()}", file=sys.stderr)
            return 2
    if not names:
        print("nothing to verify: name a bundle or pass --all", file=sys.stderr)
        return 2
    results: list[CheckResult] = []
    for b in names:
        with captured_run_output():  # exporter progress and MONAI's notices; the report below says what matters
            results += verify_bundle(b, check_export=check_export, device=device)
    print(format_results(results))
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} check(s) failed:")
        for r in failed:
            print(f"- bundle {r.bundle}, check {r.check}: {r.message}")
        return 1
    print(f"\nall {len(results)} checks passed")
    return 0
