"""Brain-aneurysm detection in TOF-MRA with a data strategy (Assis et al., "An Efficient Data Strategy for the
Detection of Brain Aneurysms from MRA with Deep Learning", DGM4MICCAI / DALI 2021; seeds/002): a plain 3D U-Net on
small patches, with two-point sphere labels, positive patches duplicated under random lattice-spline warps, negatives
split between vessel and brain voxels, and tiled inference that keeps the tile centres. Generic pieces:
``transforms.TwoPointSphereLabeld``, ``VesselGuidedPatchSamplesd``, ``RandLatticeSplineDeformd``,
``ComponentDetectionsd``; ``inferers.CentralCropTilingInferer``; ``metrics.ADAMDetectionMetric``,
``CohenKappaMetric``, ``froc_candidates``; ``handlers.DetectionsWriter``; ``phantoms.tof_mra``;
``datalists.adam_aneurysm``. Bundle: ``bundles/aneurysm_tof_mra_detection``.
"""

from __future__ import annotations

from .data import AneurysmPatchDataset, aneurysm_datalist, aneurysm_inference_items
from .evaluation import evaluate_aneurysm_detection, tile_confusion

__all__ = [
    "AneurysmPatchDataset",
    "aneurysm_datalist",
    "aneurysm_inference_items",
    "evaluate_aneurysm_detection",
    "tile_confusion",
]
