"""The one-shot landmark pipeline (Algorithm 1 of the one-shot cochlea paper) on one target volume: find the
structure of interest (:func:`iterative_centroid`), align its principal axes with the reference's
(:func:`inertia_rotation`), register the reference to the target with diffeomorphic demons
(:func:`demons_displacement`) and carry the reference landmarks over.

Methods (``method``), the paper's and its ablations:

- ``auto``: the whole pipeline;
- ``rigid``: translation and rotation, no demons;
- ``translation``: the translation step only (landmarks = the reference's, moved with the structure's centre);
- ``naive``: demons from the reference's position without localisation (the paper's "registration without
  localisation", its baseline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage as ndi

from ...io import voxel_to_world, world_to_voxel
from ...metrics.surface_dice import spacing_from_affine
from .alignment import cube_coordinates, inertia_axes, inertia_rotation, resample_rigid, search_rotation_about_axis
from .localization import crop_cube, iterative_centroid
from .registration import demons_displacement, displacement_at
from .slice_sampling import mask_centroid

__all__ = ["LOCATOR_METHODS", "OneShotLandmarkLocator", "check_locator_method"]

LOCATOR_METHODS = ("auto", "rigid", "translation", "naive")


def check_locator_method(method: str) -> str:
    """``method`` if it is one of :data:`LOCATOR_METHODS`, else ``ValueError`` listing them."""
    if method not in LOCATOR_METHODS:
        raise ValueError(f"method must be one of {LOCATOR_METHODS}, got {method!r}.")
    return method


class OneShotLandmarkLocator:
    """Places the reference's landmarks in target volumes.

    Args:
        network: the trained slice network (logits; see ``ShallowSliceUNet``), in eval mode on its device.
        reference_image: (1, X, Y, Z) MetaTensor, intensities scaled as the network's training data.
        reference_mask: (1, X, Y, Z) structure of interest of the reference (non-zero inside).
        reference_landmarks: ``{name: (3,) world mm}`` on the reference.
        method: one of :data:`LOCATOR_METHODS`.
        cube_size: voxels of the cube the network sees (the training slices' size).
        registration_size: voxels of the cube registered by demons (about the structure plus context).
        tolerance_mm, max_iterations: the localisation's stopping rule (the paper: 1 mm).
        demons_iterations: iterations per demons level, coarsest first.
        demons_smoothing: Gaussian regularisation of the demons field (voxels).
        rotation_search_deg: after the inertia alignment, try rotations about the structure's axis in steps of
            this many degrees, both ways up (:func:`search_rotation_about_axis`; not in the paper); 0: the paper's
            inertia alignment with its four sign flips only.
        search_margin_mm: the rotation search compares the volumes within this distance of the reference mask.

    Targets must have the reference's orientation and voxel size (the bundle's transforms resample them).
    """

    def __init__(self, network: torch.nn.Module, reference_image: MetaTensor, reference_mask: MetaTensor,
                 reference_landmarks: Mapping[str, Any], method: str = "auto", cube_size: int = 48,
                 registration_size: int = 64, tolerance_mm: float = 1.0, max_iterations: int = 10,
                 demons_iterations: Sequence[int] = (60, 30), demons_smoothing: float = 1.5,
                 rotation_search_deg: float = 0.0, search_margin_mm: float = 2.0) -> None:
        self.method = check_locator_method(method)
        for name, img in (("reference_image", reference_image), ("reference_mask", reference_mask)):
            if not isinstance(img, MetaTensor) or img.ndim != 4 or img.shape[0] != 1:
                raise ValueError(f"{name} must be a (1, X, Y, Z) MetaTensor with its affine, got "
                                 f"{type(img).__name__} of shape {tuple(getattr(img, 'shape', ()))}.")
        if tuple(reference_mask.shape) != tuple(reference_image.shape):
            raise ValueError(f"reference_mask {tuple(reference_mask.shape)} and reference_image "
                             f"{tuple(reference_image.shape)} must share their grid.")
        if not reference_landmarks:
            raise ValueError("reference_landmarks is empty: the reference needs at least one landmark.")
        self.network = network
        self.ref_image = reference_image[0].float().cpu()
        self.ref_affine = np.asarray(reference_image.affine, dtype=np.float64)
        self.spacing = np.asarray(spacing_from_affine(reference_image.affine))
        if np.ptp(self.spacing) > 0.01 * self.spacing.min():
            raise ValueError(f"the reference's voxels are {self.spacing.round(4).tolist()} mm: the rotation steps need "
                             "isotropic voxels; resample to one voxel size (the bundle's `spacing`).")
        self.ref_center = mask_centroid(reference_mask, "reference_mask")
        self.names = list(reference_landmarks)
        self.ref_points = world_to_voxel(np.stack([np.asarray(reference_landmarks[n], dtype=np.float64)
                                                   for n in self.names]), self.ref_affine)
        self.cube_size, self.registration_size = int(cube_size), int(registration_size)
        self.tolerance_mm, self.max_iterations = float(tolerance_mm), int(max_iterations)
        self.demons_iterations, self.demons_smoothing = tuple(int(i) for i in demons_iterations), float(demons_smoothing)
        self.ref_mask_cube = crop_cube(reference_mask[0].float().cpu(), self.ref_center, self.cube_size)
        self.ref_cube = crop_cube(self.ref_image, self.ref_center, self.cube_size)
        self.ref_registration_cube = crop_cube(self.ref_image, self.ref_center, self.registration_size)
        self.registration_corner = cube_coordinates(self.ref_center, self.registration_size)[0]
        if float(rotation_search_deg) < 0:
            raise ValueError(f"rotation_search_deg must be >= 0 (0: no search), got {rotation_search_deg!r}.")
        self.rotation_search_deg = float(rotation_search_deg)
        margin = max(1, int(round(float(search_margin_mm) / float(self.spacing.min()))))
        self.search_weights = torch.as_tensor(ndi.binary_dilation(self.ref_mask_cube.numpy() > 0.5, iterations=margin),
                                              dtype=torch.float32)
        self.structure_axis = inertia_axes(self.ref_mask_cube, self.spacing)[:, 0]

    def __call__(self, image: MetaTensor) -> dict[str, Any]:
        """``{"landmarks": {name: [x, y, z] world mm}, "center_voxel", "converged", "iterations", "structure_score",
        "rotation"}`` for the target ``image`` (1, X, Y, Z) MetaTensor. ``structure_score``: the highest fused
        probability in the last cube (near 1 where the network found the structure; None for ``naive``)."""
        if not isinstance(image, MetaTensor) or image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"the target must be a (1, X, Y, Z) MetaTensor with its affine, got "
                             f"{type(image).__name__} of shape {tuple(getattr(image, 'shape', ()))}.")
        spacing = np.asarray(spacing_from_affine(image.affine))
        if not np.allclose(spacing, self.spacing, rtol=1e-3):
            raise ValueError(f"{image.meta.get('filename_or_obj', 'target')}: voxel size {spacing.round(4).tolist()} mm, "
                             f"the reference's {self.spacing.round(4).tolist()} mm: resample it first (Spacingd).")
        volume = image[0].float().cpu()
        rotation, center, search = np.eye(3), self.ref_center.copy(), None
        if self.method != "naive":
            search = iterative_centroid(self.network, volume, self.ref_center, self.cube_size, spacing,
                                        self.tolerance_mm, self.max_iterations)
            center = search.center
            if self.method in ("auto", "rigid") and float(search.probabilities.sum()) > 0:
                rotation, _ = inertia_rotation(self.ref_mask_cube, search.probabilities, spacing, self.ref_cube, volume,
                                               self.ref_center, center)
                if self.rotation_search_deg > 0:
                    rotation, _ = search_rotation_about_axis(rotation, self.structure_axis, self.ref_cube,
                                                             self.search_weights, volume, self.ref_center, center,
                                                             self.rotation_search_deg)
        points = self.ref_points.copy()
        if self.method in ("auto", "naive"):
            moving = resample_rigid(volume, rotation, self.ref_center, center, self.registration_size)
            field = demons_displacement(self.ref_registration_cube, moving, self.demons_iterations,
                                        self.demons_smoothing)
            points = points + displacement_at(field, points - self.registration_corner)
        target_voxels = (points - self.ref_center) @ rotation.T + center
        world = voxel_to_world(target_voxels, np.asarray(image.affine, dtype=np.float64))
        return {
            "landmarks": {n: world[i].tolist() for i, n in enumerate(self.names)},
            "center_voxel": np.asarray(center).tolist(),
            "converged": None if search is None else bool(search.converged),
            "iterations": 0 if search is None else len(search.path) - 1,
            "structure_score": None if search is None else float(search.probabilities.max()),
            "rotation": rotation.tolist(),
        }
