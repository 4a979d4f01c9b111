"""Finding the bundles of this repository and reading their metadata, without importing torch or MONAI (so that
``python -m monai_ext list`` and ``--help`` answer fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLES_ENV",
    "CONFIG_SUFFIXES",
    "bundle_dirs",
    "bundles_root",
    "find_config",
    "is_bundle_dir",
    "is_segmentation_bundle",
    "list_bundles",
    "one_line",
    "resolve_bundle",
    "segmentation_bundles",
]

#: environment variable that overrides :func:`bundles_root`
BUNDLES_ENV = "MONAI_EXT_BUNDLES"
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")



def bundles_root() -> Path:
    """The folder holding the bundles: ``$MONAI_EXT_BUNDLES`` if set, else ``<repository>/bundles``."""
    env = os.environ.get(BUNDLES_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "bundles"


def is_bundle_dir(path: Path) -> bool:
    """Whether ``path`` is a bundle folder (a folder with ``configs/``)."""
    return path.is_dir() and (path / "configs").is_dir()


def bundle_dirs(root: Path) -> list[Path]:
    """The bundle folders directly under ``root``, sorted by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if is_bundle_dir(p))


def find_config(bundle: Path, name: str) -> Path | None:
    """``bundle/configs/<name>.json|.yaml|.yml``, whichever exists first, else ``None``."""
    for suffix in CONFIG_SUFFIXES:
        p = Path(bundle) / "configs" / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def one_line(text: Any, width: int = 100) -> str:
    """``text`` on one line: its first sentence when that fits in ``width``, else cut with an ellipsis."""
    s = " ".join(str(text).split())
    if len(s) <= width:
        return s
    cut = s.find(". ")
    if 0 < cut < width:
        return s[: cut + 1]
    return s[: width - 3].rstrip() + "..."


def list_bundles(root: str | Path | None = None) -> list[dict]:
    """The bundles under ``root`` (default :func:`bundles_root`), sorted by folder name.

    Each row: ``name`` (folder name), ``version``, ``task``, ``description`` (one line) and ``path``.
    A bundle whose metadata cannot be read is listed with version ``"?"`` and the error as its task.
    """
    root_ = Path(root).expanduser().resolve() if root is not None else bundles_root()
    rows: list[dict] = []
    for path in bundle_dirs(root_):
        row = {"name": path.name, "version": "?", "task": "", "description": "", "path": str(path)}
        meta = path / "configs" / "metadata.json"
        try:
            with open(meta, encoding="utf-8") as f:
                m = json.load(f)
            if not isinstance(m, dict):
                raise ValueError("metadata is not a JSON object")
            row["version"] = str(m.get("version", "?"))
            row["task"] = one_line(m.get("task", ""))
            row["description"] = one_line(m.get("description", ""))
        except Exception as e:  # unreadable metadata: still list the bundle
            row["task"] = f"(cannot read {meta.name}: {type(e).__name__}: {one_line(e, 60)})"
        rows.append(row)
    return rows


def segmentation_bundles(root: str | Path | None = None) -> list[str]:
    """Bundles that MONAI Label can serve as segmentation tasks: an inference config, and an output
    declared with ``"format": "segmentation"`` in ``network_data_format``."""
    return [row["name"] for row in list_bundles(root) if is_segmentation_bundle(row["path"])]


def is_segmentation_bundle(bundle: str | Path) -> bool:
    """True if the bundle folder has an inference config and declares a ``"format": "segmentation"`` output
    in ``network_data_format`` (False when its metadata cannot be read)."""
    bundle = Path(bundle)
    try:
        meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    except (OSError, ValueError):
        return False
    outputs = (meta.get("network_data_format") or {}).get("outputs") or {}
    return bool(find_config(bundle, "inference")) and any(
        isinstance(o, dict) and o.get("format") == "segmentation" for o in outputs.values()
    )


def resolve_bundle(name_or_path: str | Path) -> Path:
    """The folder of a bundle given by name (under :func:`bundles_root`) or by path.

    Raises:
        FileNotFoundError: neither a bundle of that name nor a bundle folder (one with ``configs/``) at that path;
            the message lists the available bundle names.
    """
    root = bundles_root()
    s = str(name_or_path)
    candidates = []
    if s and os.sep not in s and (not os.altsep or os.altsep not in s) and s not in (".", ".."):
        candidates.append(root / s)
    candidates.append(Path(s).expanduser())
    for c in candidates:
        if is_bundle_dir(c):
            return c.resolve()
    names = [p.name for p in bundle_dirs(root)]
    available = ", ".join(names) if names else "(none)"
    raise FileNotFoundError(
        f"no bundle {s!r}: not a bundle name under {root} and not a bundle folder (one with configs/); "
        f"available bundles: {available}"
    )
