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

    Two whole objects that touch form one component too (both lungs joined at the anterior junction), and a
    larger one can hold more than ``min_fraction`` of it (a right lung of 61 % of both lungs). With ``side_axis``
    such a component is left as predicted when its labels lie side by side along that axis: the central
    (5th-95th percentile) extents of the majority and the runner-up label overlap along it by at most
    ``max_side_overlap`` of the narrower extent. A part of one lung labelled with the other side lies within
    that lung's left-right extent and is still relabelled.

    Args:
        labels: the label values of the group (e.g. ``(1, 2)``: left and right lung).
        min_fraction: share of the component the majority label needs, in (0.5, 1].
        connectivity: 1 (faces), 2 or 3 (corners) in 3D, as ``scipy.ndimage.generate_binary_structure``.
        side_axis: ``None`` (vote on every component), a spatial axis index, or ``"lr"``: the array axis
            closest to the world x (left-right) axis of the input MetaTensor's affine.
        max_side_overlap: with ``side_axis``, the largest overlap (fraction of the narrower extent, in [0, 1))
            at which two labels count as side by side.

    Shapes: a label map (1, *spatial) or one-hot / probabilities (C, *spatial), channel first (one-hot is
    argmaxed, relabelled and one-hot again). Numpy or torch, any device (computed on the CPU); returns the
    same type, shape and device.
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(
        self,
        labels: Sequence[int] = (1, 2),
        min_fraction: float = 0.6,
        connectivity: int = 1,
        side_axis: int | str | None = None,
        max_side_overlap: float = 0.2,
    ) -> None:
        if len(labels) < 2:
            raise ValueError(f"labels must hold at least two values, got {labels}.")
        if not 0.5 < float(min_fraction) <= 1.0:
            raise ValueError(f"min_fraction must be in (0.5, 1], got {min_fraction}.")
        if side_axis is not None and side_axis != "lr" and not isinstance(side_axis, int):
            raise ValueError(f"side_axis must be None, 'lr' or a spatial axis index, got {side_axis!r}.")
        if not 0.0 <= float(max_side_overlap) < 1.0:
            raise ValueError(f"max_side_overlap must be in [0, 1), got {max_side_overlap}.")
        self.labels = tuple(int(v) for v in labels)
        self.min_fraction = float(min_fraction)
        self.connectivity = int(connectivity)
        self.side_axis = side_axis
        self.max_side_overlap = float(max_side_overlap)

    def relabel(self, label_map: np.ndarray, side_axis: int | None = None) -> np.ndarray:
        """The relabelled copy of an integer label map (spatial shape, no channel). ``side_axis``: the spatial
        axis index of the side-by-side test (default: the one given at construction, when it is an index)."""
        axis = side_axis if side_axis is not None else (self.side_axis if isinstance(self.side_axis, int) else None)
        if axis is not None and not 0 <= axis < label_map.ndim:
            raise ValueError(f"side_axis {axis} is not an axis of a {label_map.ndim}D label map.")
        out = label_map.copy()
        group = np.isin(label_map, self.labels)
        box = ndimage.find_objects(group.astype(np.uint8))  # work on the group's bounding box only
        if not box or box[0] is None:
            return out
        box = box[0]
        self._relabel_box(label_map[box], group[box], out[box], axis)
        return out

    def _relabel_box(self, label_map: np.ndarray, group: np.ndarray, out: np.ndarray, axis: int | None) -> None:
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
        if axis is not None:
            mixed = np.flatnonzero(decided[1:] & (share < 1.0)) + 1  # decided components holding two labels
            for c in mixed:
                if self._side_by_side(label_map, comp == c, counts[:, c - 1], axis):
                    decided[c] = False
        change = group & decided[comp]
        out[change] = target[comp[change]]

    def _side_by_side(self, label_map: np.ndarray, in_comp: np.ndarray, counts: np.ndarray, axis: int) -> bool:
        """Whether the two largest labels of one component lie side by side along ``axis``."""
        first, second = np.argsort(counts)[::-1][:2]
        extents = []
        for k in (first, second):
            coords = np.nonzero(in_comp & (label_map == self.labels[k]))[axis]
            extents.append(np.percentile(coords, [5.0, 95.0]))
        (lo1, hi1), (lo2, hi2) = extents
        overlap = max(0.0, min(hi1, hi2) - max(lo1, lo2))
        narrower = max(min(hi1 - lo1, hi2 - lo2), 1.0)
        return overlap <= self.max_side_overlap * narrower

    def _lr_axis(self, img: NdarrayOrTensor) -> int:
        affine = getattr(img, "affine", None)
        if affine is None:
            raise ValueError("ComponentMajorityLabel(side_axis='lr') needs a MetaTensor with an affine; got "
                             f"{type(img).__name__}. Give the axis index instead.")
        rot = convert_to_numpy(affine)[:3, : img.ndim - 1]
        return int(np.abs(rot[0]).argmax())

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``img`` (1, *spatial) label map or (C, *spatial) one-hot, relabelled."""
        axis = self._lr_axis(img) if self.side_axis == "lr" else None
        arr = convert_to_numpy(img)
        if arr.shape[0] == 1:
            out = self.relabel(np.rint(arr[0]).astype(np.int64), axis)[None].astype(arr.dtype)
        else:
            lab = self.relabel(arr.argmax(0), axis)
            out = (np.arange(arr.shape[0]).reshape((-1,) + (1,) * lab.ndim) == lab[None]).astype(arr.dtype)
        result, *_ = convert_to_dst_type(out, img, dtype=img.dtype)
        return result


class ComponentMajorityLabeld(MapTransform):
    """Dictionary-based :class:`ComponentMajorityLabel`."""

    backend = ComponentMajorityLabel.backend

    def __init__(
        self,
        keys: KeysCollection,
        labels: Sequence[int] = (1, 2),
        min_fraction: float = 0.6,
        connectivity: int = 1,
        side_axis: int | str | None = None,
        max_side_overlap: float = 0.2,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ComponentMajorityLabel(labels, min_fraction, connectivity, side_axis, max_side_overlap)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Relabel every ``keys`` entry; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


ComponentMajorityLabelD = ComponentMajorityLabelDict = ComponentMajorityLabeld
