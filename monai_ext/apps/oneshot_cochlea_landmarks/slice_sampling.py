"""Training and validation slices of the one-shot method: random oblique slices of the reference volume near its
structure of interest, and the three orthogonal slice stacks of a patch of the validation volume.

The paper samples 2D slices whose orientation is rotated by ``U(-1, 1) * dR`` and whose centre is moved by
``U(-1, 1) * dT`` about the centroid of the structure of interest (SOI); here each slice starts from one of the
three axis planes (the network is applied along X, Y and Z at inference) before that rotation. The random
transform draws the planes and resamples them with :class:`monai_ext.transforms.ObliquePlane`; every slice's plane
is recorded in ``meta["oblique_plane"]`` (``ObliquePlane(**record)`` replays it).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable
from scipy.spatial.transform import Rotation

from ...transforms.oblique_plane import ObliquePlane

__all__ = ["AXIS_PLANES", "OrthogonalSliceStacksd", "RandPerturbedPlanesd", "mask_centroid", "perturbed_planes"]

#: the slices normal to X, Y and Z (columns: slice rows, slice columns, normal; voxel axes); rows and columns run
#: along the remaining axes in increasing order, as ``volume.movedim(axis, 0)[k]`` slices them
AXIS_PLANES = (np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float64),
               np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float64),
               np.eye(3))


def mask_centroid(mask: NdarrayOrTensor, name: str = "mask") -> np.ndarray:
    """Voxel coordinates (3,) of the centroid of the non-zero voxels of ``mask`` (C, X, Y, Z) or (X, Y, Z);
    ``ValueError`` naming ``name`` when it is empty."""
    arr = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    arr = arr[0] if arr.ndim == 4 else arr
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a 3D mask (X, Y, Z) or (1, X, Y, Z), got shape {arr.shape}.")
    pts = np.argwhere(arr > 0)
    if not len(pts):
        raise ValueError(f"{name}: the structure-of-interest mask is empty; the one-shot method needs the "
                         "structure (e.g. the cochlea) marked in the reference and validation volumes.")
    return pts.mean(axis=0)


def perturbed_planes(rng: np.random.RandomState, n: int, center: Sequence[float], max_rotation_deg: float,
                     max_shift: float) -> list[dict[str, Any]]:
    """``n`` plane records (``rotation``, ``center``): an axis plane (uniform over X, Y, Z) rotated by Euler angles
    ``U(-1, 1) * max_rotation_deg``, centred ``U(-1, 1) * max_shift`` voxels per axis from ``center``."""
    planes = []
    for _ in range(int(n)):
        base = AXIS_PLANES[rng.randint(3)]
        tilt = Rotation.from_euler("xyz", rng.uniform(-1.0, 1.0, 3) * float(max_rotation_deg), degrees=True)
        planes.append({"rotation": tilt.as_matrix() @ base,
                       "center": np.asarray(center, dtype=np.float64) + rng.uniform(-1.0, 1.0, 3) * float(max_shift)})
    return planes


class RandPerturbedPlanesd(Randomizable, MapTransform):
    """``num_samples`` random oblique slices (C, S, S) of the ``keys`` volumes (C, X, Y, Z) about the centroid of
    ``center_key``'s mask: a list of dicts, as MONAI's ``RandCropByPosNegLabeld`` (the one-shot cochlea method's
    training samples). Images trilinear, masks (``nearest_keys``) nearest neighbour; ``max_shift`` in voxels.
    """

    def __init__(self, keys: KeysCollection, center_key: str, size: int = 48, num_samples: int = 16,
                 max_rotation_deg: float = 45.0, max_shift: float = 12.0, nearest_keys: KeysCollection = (),
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if int(size) < 2 or int(size) % 2 or int(num_samples) < 1 or max_rotation_deg < 0 or max_shift < 0:
            raise ValueError(f"size must be even >= 2, num_samples >= 1, max_rotation_deg and max_shift >= 0; got "
                             f"{size!r}, {num_samples!r}, {max_rotation_deg!r}, {max_shift!r}.")
        self.center_key, self.size, self.num_samples = center_key, int(size), int(num_samples)
        self.max_rotation_deg, self.max_shift = float(max_rotation_deg), float(max_shift)
        self.nearest_keys = set([nearest_keys] if isinstance(nearest_keys, str) else nearest_keys)
        self._planes: list[dict[str, Any]] = []

    def randomize(self, data: Any = None) -> None:
        """Draw the planes about the voxel ``data`` (the centroid)."""
        self._planes = perturbed_planes(self.R, self.num_samples, data, self.max_rotation_deg, self.max_shift)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> list[dict]:
        """The list of ``num_samples`` slice dicts (other keys are copied)."""
        self.randomize(mask_centroid(data[self.center_key], str(self.center_key)))
        out = []
        for plane in self._planes:
            d = dict(data)
            for key in self.key_iterator(d):
                mode = "nearest" if key in self.nearest_keys else "bilinear"
                d[key] = ObliquePlane(plane["rotation"], plane["center"], self.size, mode)(d[key])
            out.append(d)
        return out


class OrthogonalSliceStacksd(MapTransform):
    """The slices along X, Y and Z (3 x ``size`` dicts of (C, size, size)) of the cube of ``size`` voxels centred
    on the centroid of ``center_key``'s mask: the paper's validation data (early stopping on their loss)."""

    def __init__(self, keys: KeysCollection, center_key: str, size: int = 48, nearest_keys: KeysCollection = (),
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if int(size) < 2 or int(size) % 2:
            raise ValueError(f"size must be an even number >= 2, got {size!r}.")
        self.center_key, self.size = center_key, int(size)
        self.nearest_keys = set([nearest_keys] if isinstance(nearest_keys, str) else nearest_keys)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> list[dict]:
        """The list of 3 x ``size`` slice dicts."""
        center = mask_centroid(data[self.center_key], str(self.center_key))
        out = []
        for base in AXIS_PLANES:
            normal = base[:, 2]
            for k in range(self.size):
                c = center + (k - (self.size - 1) / 2.0) * normal
                d = dict(data)
                for key in self.key_iterator(d):
                    mode = "nearest" if key in self.nearest_keys else "bilinear"
                    d[key] = ObliquePlane(base, c, self.size, mode)(d[key])
                out.append(d)
        return out
