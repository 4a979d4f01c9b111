"""monai_ext: research methods for medical imaging as MONAI bundles.

Importing this package imports every sub-package, so that after ``"$import monai_ext"`` a bundle config names
any public component by its short ``_target_`` (MONAI's ComponentLocator scans every loaded module whose name
starts with ``monai``). The layers, bottom to top, are described in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

__version__ = "0.2.0"

import sys

__all__ = [
    "apps",
    "bundle_helpers",
    "datalists",
    "engines",
    "handlers",
    "import_components",
    "inferers",
    "io",
    "losses",
    "metrics",
    "networks",
    "phantoms",
    "transforms",
]


def import_components() -> None:
    """Import every layer but ``cli``: what a bundle config's ``"$import monai_ext"`` relies on to name components
    by their short ``_target_``. Runs on ``import monai_ext``, except under ``python -m monai_ext``."""
    from . import (  # noqa: F401
        apps,
        bundle_helpers,
        datalists,
        engines,
        handlers,
        inferers,
        io,
        losses,
        metrics,
        networks,
        phantoms,
        transforms,
    )


# `python -m monai_ext ...` imports this package before it runs the command line, with sys.argv[0] == "-m" (only
# while the package given to -m is imported). There the command line imports the layers itself when a command
# needs them, so that `--help` and `list` do not pay for importing torch and MONAI. Every other import, including
# a bundle config's "$import monai_ext" under `python -m monai.bundle`, imports everything.
if sys.argv[:1] != ["-m"]:
    import_components()
