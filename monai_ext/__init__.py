"""monai_ext: research methods for medical imaging as MONAI bundles.

Importing this package imports every sub-package, so that after ``"$import monai_ext"`` a bundle config names
any public component by its short ``_target_`` (MONAI's ComponentLocator scans every loaded module whose name
starts with ``monai``). The layers, bottom to top, are described in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

__version__ = "0.2.0"

from . import (  # noqa: E402
    apps,
    bundle_helpers,
    datalists,
    engines,
    handlers,
    io,
    losses,
    metrics,
    networks,
    phantoms,
    transforms,
)

__all__ = [
    "apps",
    "bundle_helpers",
    "datalists",
    "engines",
    "handlers",
    "io",
    "losses",
    "metrics",
    "networks",
    "phantoms",
    "transforms",
]
