"""Iterative label transfer between two visits for cell segmentation in adaptive-optics retinal images (Liu,
Aguilera, Liu & Tam, "Automated iterative label transfer improves segmentation of noisy cells in adaptive optics
retinal images", DGM4MICCAI/DALI 2021; seeds/002): the two-output U-Net, the visit alignment, the cell graph
matching, the label transfer, a round of it and the chain of rounds, the data list and the paper's scores. Generic
pieces live by kind: :mod:`monai_ext.phantoms.ao_cone_mosaic`, :mod:`monai_ext.transforms.cell_maps`,
:mod:`monai_ext.metrics.instance_overlap`. Bundle: ``bundles/ao_cone_label_transfer``.
"""

from __future__ import annotations

from .alignment import affine_point_error, estimate_visit_affine, rotation_about_centre
from .datalist import cone_datalist, cone_pairs, pseudo_label_items
from .iteration import CHAIN_MODES, iterate_label_transfer
from .matching import (
    CellGraphMatching,
    candidate_pairs,
    cell_feature_blocks,
    match_cells,
    matching_energy,
    topology_pairs,
)
from .network import ConeMapUNet
from .robustness import CONE_PERTURBATIONS, cone_perturbation_check
from .study import ROUND_TABLE_SCORES, rounds_report
from .scoring import CONE_SCORES, cone_image_scores, score_cone_segmentation
from .transfer import SIZE_STATISTICS, transfer_cell_labels, warp_instance_labels
from .transfer_round import TRANSFER_MODES, ConeLabelTransferRound, segment_visit

__all__ = [
    "CHAIN_MODES",
    "CONE_PERTURBATIONS",
    "CONE_SCORES",
    "ROUND_TABLE_SCORES",
    "SIZE_STATISTICS",
    "TRANSFER_MODES",
    "CellGraphMatching",
    "ConeLabelTransferRound",
    "ConeMapUNet",
    "affine_point_error",
    "candidate_pairs",
    "cell_feature_blocks",
    "cone_datalist",
    "cone_image_scores",
    "cone_pairs",
    "estimate_visit_affine",
    "iterate_label_transfer",
    "match_cells",
    "matching_energy",
    "cone_perturbation_check",
    "pseudo_label_items",
    "rotation_about_centre",
    "rounds_report",
    "score_cone_segmentation",
    "segment_visit",
    "topology_pairs",
    "transfer_cell_labels",
    "warp_instance_labels",
]
