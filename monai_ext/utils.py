"""Small helpers shared by the bundles and the command line."""

from __future__ import annotations

from pathlib import Path


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is an existing file, else raise ``FileNotFoundError`` saying what it should hold."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not found; expected {what}.")
    return p


def locate_bundle_root(name: str) -> str:
    """Default ``bundle_root`` of a bundle config, so that it runs from where users start it.

    - inside the bundle folder (``configs/metadata.json`` here, the Model Zoo way): ``"."``;
    - at the top of this repository (``bundles/<name>/configs`` below the working directory):
      that folder, so ``python -m monai.bundle run --config_file bundles/<name>/configs/train.yaml``
      writes into the bundle and not into the repository root;
    - otherwise ``"."``. An explicit ``--bundle_root`` always wins (MONAI Label passes one).
    """
    here = Path.cwd()
    if (here / "configs" / "metadata.json").is_file():
        return "."
    candidate = here / "bundles" / name
    if (candidate / "configs").is_dir():
        return str(candidate)
    return "."
