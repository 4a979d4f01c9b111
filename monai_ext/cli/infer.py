"""``python -m monai_ext infer BUNDLE INPUT OUTPUT``: a bundle's own ``inference.yaml`` on a scan, a DICOM series
folder or a folder of scans, through MONAI's bundle runner, with one progress line per scan and one clear line on
bad input (exit status 2, no traceback unless ``--debug``)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from monai.bundle import ConfigParser

from ..bundle_helpers import run_bundle
from ..io import find_images
from ..transforms import ScanInputError
from .catalog import find_config, resolve_bundle
from .quiet import captured_run_output

__all__ = ["BAD_INPUT_EXIT_CODE", "InferInputError", "infer", "input_error_message"]

#: exit status of ``infer`` on bad input (a missing, unreadable or unsuitable scan)
BAD_INPUT_EXIT_CODE = 2
_INPUT_ERRORS = (ScanInputError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


class InferInputError(ValueError):
    """The input of ``infer`` is unusable; the message names it and says what was expected."""


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def input_error_message(exc: BaseException) -> str | None:
    """The one-line message of the input error inside ``exc`` (MONAI wraps a transform's or a config expression's
    error in ``RuntimeError``s), or ``None`` when ``exc`` is not about the input."""
    for e in _chain(exc):
        if isinstance(e, (*_INPUT_ERRORS, InferInputError)):
            return re.sub(r"\s+", " ", str(e)).strip()
    return None


def _scans(config: Path, input_path: Path) -> list[str]:
    if not input_path.exists():
        raise InferInputError(f"{input_path}: not found (expected a scan file, a DICOM series folder or a folder of scans).")
    if "find_images" in config.read_text(encoding="utf-8"):
        return find_images(input_path)  # FileNotFoundError naming the folder when it holds no scan
    return [str(input_path)]  # the bundle's config reads the folder itself (e.g. ultrasound images)


def infer(
    bundle: str,
    input: str,
    output: str,
    device: str | None = None,
    quiet: bool = False,
    overrides: dict | None = None,
) -> list[dict]:
    """Run ``bundle``'s ``inference.yaml`` on every scan of ``input`` (one run per scan), writing into ``output``.

    ``overrides``: other config keys to set, each of which the inference config must have (e.g. ``hu_slope`` and
    ``hu_intercept`` of covid19_ct_fewshot_seg, for CT images not stored in HU; nested ids such as
    ``network_def#channels`` too).

    Returns one ``{"scan", "seconds", "outputs"}`` per scan. Raises :class:`InferInputError` (or the bundle's own
    :class:`~monai_ext.transforms.ScanInputError` / ``FileNotFoundError``) on bad input, before writing anything for
    that scan.
    """
    bundle_dir = resolve_bundle(bundle)
    config = find_config(bundle_dir, "inference")
    if config is None:
        raise InferInputError(f"bundle {bundle_dir.name} has no configs/inference.yaml.")
    content = ConfigParser.load_config_file(str(config))
    parsed = ConfigParser(content)  # knows nested ids such as "network_def#channels"
    unknown = sorted(k for k in (overrides or {}) if k not in parsed)
    if unknown:
        raise InferInputError(
            f"bundle {bundle_dir.name}: its {config.name} has no key(s) {', '.join(unknown)}, so the option(s) "
            f"{', '.join('--' + k for k in unknown)} do not apply to it."
        )
    if "dataset_dir" not in content:
        raise InferInputError(
            f"bundle {bundle_dir.name}: its inference takes no input (it generates); run "
            f"python -m monai.bundle run --config_file {config} --output_dir {output}"
        )
    input_path = Path(input).expanduser().resolve()
    out = Path(output).expanduser().resolve()
    scans = _scans(config, input_path)
    overrides = {**(overrides or {}), "output_dir": str(out)}
    if device:
        overrides["device"] = f"$torch.device('{device}')"
    results = []
    out_existed = out.exists()
    try:
        for k, scan in enumerate(scans, 1):
            results.append(_infer_one(bundle_dir, config, scan, out, overrides))
            if not quiet:
                r = results[-1]
                shown = r["outputs"][0] if len(r["outputs"]) == 1 else f"{len(r['outputs'])} files in {out}"
                print(f"[{k}/{len(scans)}] {scan} -> {shown} ({r['seconds']:.1f} s)", flush=True)
    except BaseException:
        if not out_existed and out.is_dir() and not any(p.is_file() for p in out.rglob("*")):
            shutil.rmtree(out, ignore_errors=True)  # leave nothing behind: no empty output folder either
        raise
    return results


def _infer_one(bundle_dir: Path, config: Path, scan: str, out: Path, overrides: dict) -> dict:
    before = set(out.rglob("*")) if out.exists() else set()
    t0 = time.perf_counter()
    with captured_run_output() as log:
        try:
            run_bundle(bundle_dir, config.name, dataset_dir=scan, **overrides)
        except BaseException as e:
            e.run_log = log.getvalue()  # shown by the command line with --debug
            raise
    written = sorted(str(p) for p in set(out.rglob("*")) - before if p.is_file())
    return {"scan": scan, "seconds": time.perf_counter() - t0, "outputs": written}
