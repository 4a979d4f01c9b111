"""Package a bundle as the zip that the MONAI Model Zoo distributes.

The zip holds one folder named after the bundle (``<name>/configs``, ``models``, ``docs``, ``LICENSE`` and
``scripts`` when present), which is what ``monai.bundle.download(url=...)`` extracts and what
``monai.bundle.load(name, bundle_dir=...)`` then reads. Run outputs kept inside a bundle folder after
local training (``data/``, ``eval/``, ``logs/``, ``models/*_final.pt``) stay out. When ``models/model.pt``
exists, a TorchScript ``models/model.ts`` exported from it (MONAI's ``ckpt_export``) is added, so that
``load(..., load_ts_module=True)`` works without parsing any config.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from ..io import atomic_write
from .catalog import find_config, resolve_bundle
from .zoo import (
    export_torchscript,
    isolated_bundle,
    verify_bundle,
)

INCLUDED_DIRS = ("configs", "docs", "models", "scripts")
INCLUDED_FILES = ("LICENSE",)
EXCLUDED_SUFFIXES = (".pyc",)
EXCLUDED_NAMES = ("__pycache__", ".ipynb_checkpoints", "mlruns", ".DS_Store")


class BundlePackageError(RuntimeError):
    """The bundle cannot be packaged (a Model Zoo check failed, or files are missing)."""


def _bundle_files(bundle: Path) -> list[Path]:
    files: list[Path] = []
    for d in INCLUDED_DIRS:
        root = bundle / d
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            rel_parts = path.relative_to(bundle).parts
            if not path.is_file() or any(p in EXCLUDED_NAMES for p in rel_parts):
                continue
            if path.suffix in EXCLUDED_SUFFIXES:
                continue
            if d == "models" and path.stem.endswith("_final"):  # last-epoch weights of a local run
                continue
            files.append(path)
    files += [bundle / f for f in INCLUDED_FILES if (bundle / f).is_file()]
    return files


def package_bundle(bundle: str | Path, out_dir: str | Path = ".", verify: bool = True, torchscript: bool = True) -> Path:
    """Write ``<out_dir>/<name>.zip`` and return its path.

    The file is named after the folder inside it because ``monai.bundle.load_bundle_config(zip)`` looks for
    ``<zip stem>/configs/metadata.json``; the version is in the metadata.

    Args:
        bundle: bundle name (under ``bundles/``) or path to a bundle folder.
        out_dir: folder for the zip (created if needed).
        verify: run the Model Zoo checks first (:func:`monai_ext.cli.zoo.verify_bundle`) and refuse to package
            a bundle that fails any of them.
        torchscript: add ``models/model.ts`` exported from ``models/model.pt`` (skipped without weights).

    Raises:
        BundlePackageError: a check failed or the bundle lacks ``configs/metadata.json``; no zip is written.
    """
    path = resolve_bundle(bundle)
    name = path.name
    meta_file = path / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise BundlePackageError(f"bundle {name!r}: {meta_file} not found; a bundle needs configs/metadata.json")
    if verify:
        failed = [r for r in verify_bundle(path) if not r.ok]
        if failed:
            lines = "\n".join(f"- check {r.check}: {r.message}" for r in failed)
            raise BundlePackageError(f"bundle {name!r} fails {len(failed)} Model Zoo check(s); not packaged:\n{lines}")
    json.loads(meta_file.read_text())  # a corrupt metadata.json fails here even with verify=False
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.zip"

    with tempfile.TemporaryDirectory(prefix="monai_ext_package_") as tmp:
        tmp_dir = Path(tmp)
        extra: dict[str, Path] = {}
        config_file = find_config(path, "inference")
        has_weights = (path / "models" / "model.pt").is_file()
        if torchscript and has_weights and config_file is not None and not (path / "models" / "model.ts").exists():
            ts_file = tmp_dir / "model.ts"
            with isolated_bundle(path):
                export_torchscript(path, config_file, meta_file, ts_file, tmp_dir)
            extra["models/model.ts"] = ts_file

        def write_zip(partial: Path) -> None:
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for f in _bundle_files(path):
                    zf.write(f, f"{name}/{f.relative_to(path).as_posix()}")
                for arc, f in extra.items():
                    zf.write(f, f"{name}/{arc}")

        atomic_write(target, write_zip)
    return target


__all__ = ["BundlePackageError", "package_bundle"]
