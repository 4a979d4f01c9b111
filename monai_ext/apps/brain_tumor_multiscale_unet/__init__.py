"""Brain-tumour segmentation in four MR contrasts with the multi-scale U-Net of Kayalibay et al. 2017 (paper 001):
the bundle's data lists. Bundle: ``bundles/brain_tumor_multiscale_unet``.
"""

from __future__ import annotations

from .datalist import MSD_BRAIN_LABEL_MAPPING, brain_tumor_datalist, brain_tumor_inference_datalist

__all__ = ["MSD_BRAIN_LABEL_MAPPING", "brain_tumor_datalist", "brain_tumor_inference_datalist"]
