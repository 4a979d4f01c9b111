"""One-shot 3D landmark detection (the cochlea CT paper, an extra paper of DGM4MICCAI/DALI 2021; seeds/002): a shallow
2D U-Net trained on oblique slices of one annotated reference volume finds the structure of interest in a new
volume (slice-wise along X, Y and Z, fused, iterated to its centroid), its principal axes give the rotation, and
diffeomorphic demons (ITK) carry the reference's landmarks over. Generic pieces: ``monai_ext.metrics.
LandmarkErrorMetric``, the landmark files of ``monai_ext.io`` (3D Slicer markups in world mm) and
``monai_ext.phantoms.temporal_bone_ct``. Bundle: ``bundles/oneshot_cochlea_landmarks``.
"""

from __future__ import annotations

from .alignment import (
    SIGN_FLIPS,
    cube_coordinates,
    inertia_axes,
    inertia_rotation,
    resample_rigid,
    search_rotation_about_axis,
)
from .data import CheckResampledSized, oneshot_datalist, target_items
from .localization import CentroidSearch, crop_cube, fused_slice_probabilities, iterative_centroid
from .locator import LOCATOR_METHODS, OneShotLandmarkLocator, check_locator_method
from .network import ShallowSliceUNet
from .robustness import PERTURBATIONS, perturb_volume, robustness_probe
from .registration import demons_displacement, displacement_at
from .slice_sampling import AXIS_PLANES, OrthogonalSliceStacksd, RandPerturbedPlanesd, mask_centroid, perturbed_planes
from .workflow import build_locator, locate_landmarks

__all__ = [
    "AXIS_PLANES",
    "CentroidSearch",
    "CheckResampledSized",
    "LOCATOR_METHODS",
    "OneShotLandmarkLocator",
    "PERTURBATIONS",
    "OrthogonalSliceStacksd",
    "RandPerturbedPlanesd",
    "SIGN_FLIPS",
    "ShallowSliceUNet",
    "build_locator",
    "check_locator_method",
    "crop_cube",
    "cube_coordinates",
    "demons_displacement",
    "displacement_at",
    "fused_slice_probabilities",
    "inertia_axes",
    "inertia_rotation",
    "iterative_centroid",
    "locate_landmarks",
    "mask_centroid",
    "oneshot_datalist",
    "perturb_volume",
    "perturbed_planes",
    "resample_rigid",
    "robustness_probe",
    "search_rotation_about_axis",
    "target_items",
]
