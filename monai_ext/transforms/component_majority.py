"""One label per connected object: relabel each component of a group of labels to its majority label."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = [
    "ComponentMajorityLabel",
    "ComponentMajorityLabeld",
    "ComponentMajorityLabelD",
    "ComponentMajorityLabelDict",
]


class ComponentMajorityLabel(Transform):
    """Give every connected component of a group of labels the label most of its voxels have.

    A model can label one object with two labels of a group, e.g. part of the left lung as right lung when
    the field of view shows one side only. Each connected component of the union of ``labels`` is set to
    its majority label when that label holds at least ``min_fraction`` of the component's voxels; a
    component where two labels are closer to even (e.g. both lungs touching at the anterior junction) is
    left as it is. Voxels of other labels (e.g. infection inside a lung) are not changed and do not vote.

    Args:
        labels: the label values of the group (e.g. ``(1, 2)``: left and right lung).
        min_fraction: share of the component the majority label needs, in (0.5, 1].
        connectivity: 1 (faces), 2 or 3 (corners) in 3D, as ``scipy.ndimage.generate_binary_structure``.

    Shapes: a label map (1, *spatial) or one-hot / probabilities (C, *spatial), channel first (one-hot is
    argmaxed, relabelled and one-hot again). Numpy or torch, any device (computed on the CPU); returns the
    same type, shape and device.
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, labels: Sequence[int] = (1, 2), min_fraction: float = 0.6, connectivity: int = 1) -> None:
        if len(labels) < 2:
            raise ValueError(f"labels must hold at least two values, got {labels}.")
        if not 0.5 < float(min_fraction) <= 1.0:
            raise ValueError(f"min_fraction must be in (0.5, 1], got {min_fraction}.")
        self.labels = tuple(int(v) for v in labels)
        self.min_fraction = float(min_fraction)
        self.connectivity = int(connectivity)

    def relabel(self, label_map: np.ndarray) -> np.ndarray:
        """The relabelled copy of an integer label map (spatial shape, no channel)."""
        out = label_map.copy()
        group = np.isin(label_map, self.labels)
        box = ndimage.find_objects(group.astype(np.uint8))  # work on the group's bounding box only
        if not box or box[0] is None:
            return out
        box = box[0]
        self._relabel_box(label_map[box], group[box], out[box])
        return out

    def _relabel_box(self, label_map: np.ndarray, group: np.ndarray, out: np.ndarray) -> None:
        """Relabel ``out`` (a view of the output on ``label_map``'s box) in place."""
        struct = ndimage.generate_binary_structure(label_map.ndim, self.connectivity)
        comp, n = ndimage.label(group, struct)
        idx = np.arange(1, n + 1)
        counts = np.stack([ndimage.sum_labels(label_map == v, comp, idx) for v in self.labels])  # (L, n)
        total = counts.sum(0)
        best = counts.argmax(0)
        share = counts[best, np.arange(n)] / np.maximum(total, 1)
        target = np.zeros(n + 1, label_map.dtype)
        target[1:] = np.asarray(self.labels, label_map.dtype)[best]
        decided = np.zeros(n + 1, bool)
        decided[1:] = share >= self.min_fraction
        change = group & decided[comp]
        out[change] = target[comp[change]]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``img`` (1, *spatial) label map or (C, *spatial) one-hot, relabelled."""
        arr = convert_to_numpy(img)
        if arr.shape[0] == 1:
            out = self.relabel(np.rint(arr[0]).astype(np.int64))[None].astype(arr.dtype)
        else:
            lab = self.relabel(arr.argmax(0))
            out = (np.arange(arr.shape[0]).reshape((-1,) + (1,) * lab.ndim) == lab[None]).astype(arr.dtype)
        result, *_ = convert_to_dst_type(out, img, dtype=img.dtype)
        return result


class ComponentMajorityLabeld(MapTransform):
    """Dictionary-based :class:`ComponentMajorityLabel`."""

    backend = ComponentMajorityLabel.backend

    def __init__(
        self, keys: KeysCollection, labels: Sequence[int] = (1, 2), min_fraction: float = 0.6, connectivity: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ComponentMajorityLabel(labels, min_fraction, connectivity)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Relabel every ``keys`` entry; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


ComponentMajorityLabelD = ComponentMajorityLabelDict = ComponentMajorityLabeld
