"""Generic networks that MONAI lacks. The methods' own networks live in ``monai_ext.apps.<method>``.
"""

from __future__ import annotations

from .multiscale_unet import MultiScaleSumUNet

__all__ = ["MultiScaleSumUNet"]
