"""monai_ext: research methods for medical imaging as MONAI bundles.

Importing this package imports every sub-package, so that after ``"$import monai_ext"`` a bundle
config names any public component by its short ``_target_`` (MONAI's ComponentLocator scans every
loaded module whose name starts with ``monai``).
"""

__version__ = "0.1.0"

from . import data, engines, handlers, losses, metrics, networks, transforms, utils  # noqa: F401,E402
