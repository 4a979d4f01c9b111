"""Small helpers shared by the bundles and the command line."""

from __future__ import annotations

from pathlib import Path


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is an existing file, else raise ``FileNotFoundError`` saying what it should hold."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not found; expected {what}.")
    return p
