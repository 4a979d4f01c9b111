"""Map the label values of another data set to a bundle's classes: listed values to their target, all others to 0.

MONAI's :py:class:`monai.transforms.MapLabelValue` keeps values it is not told about, so a label map of another
data set (e.g. TotalSegmentator's 117 structures) would keep every structure the mapping does not name.
:py:class:`MapLabels` sets every value the mapping does not list to ``default`` (background) instead, and also
takes a stack of binary masks, one structure per channel (several mask files loaded together).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from ..io import number_from_json_key
from .input_checks import ScanInputError, filename_of

__all__ = ["MapLabels", "MapLabelsd", "MapLabelsD", "MapLabelsDict"]


class MapLabels(Transform):
    """Map label values by ``mapping`` (``{source value: target value}``); values not listed become ``default``.

    Input, channel first:

    - a label map, shape (1, H, W[, D]): each voxel's value is looked up in ``mapping``;
    - a stack of N > 1 binary masks, shape (N, H, W[, D]), e.g. one file per structure loaded together: the
      masks first become one map, a voxel set in channel ``i`` getting the value ``i + 1`` (the last channel
      set wins where masks overlap), so ``mapping`` keys are 1..N in channel order. A single binary mask,
      (1, ...), is the same as a map holding the value 1.

    Output: shape (1, H, W[, D]), same array type and device as the input (a ``MetaTensor`` keeps its
    metadata), dtype ``dtype`` (the input's when ``None``).

    Args:
        mapping: ``{source value: target value}``; ``None`` leaves the values unchanged (only a mask stack is
            combined). Keys that are strings of numbers (e.g. from JSON) are read as numbers.
        default: the value of every voxel whose value ``mapping`` does not list (background).
        dtype: output dtype, ``None`` for the input's.
        strict: a value that ``mapping`` does not list is an error (:py:class:`ScanInputError` naming the file
            and the values) instead of becoming ``default``: for data sets whose label values are all known, so
            that a label of another data set or a corrupt one is not silently read as background.

    Example: TotalSegmentator's combined label map (v2 classes) to left (1) and right (2) lung::

        MapLabels({10: 1, 11: 1, 12: 2, 13: 2, 14: 2})(label)   # every other structure -> 0
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        mapping: Mapping | None,
        default: float = 0,
        dtype: DtypeLike | torch.dtype | None = None,
        strict: bool = False,
    ) -> None:
        if mapping is not None and not isinstance(mapping, Mapping):
            raise TypeError(f"mapping must be a dict {{source value: target value}} or None, got {mapping!r}.")
        self.mapping = None if mapping is None else {number_from_json_key(k): number_from_json_key(v) for k, v in mapping.items()}
        self.default = default
        self.dtype = dtype
        self.strict = bool(strict)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first label map (1, H, W[, D]) or stack of binary masks (N, H, W[, D]).

        Returns:
            the mapped label map, (1, H, W[, D]).
        """
        t = convert_to_tensor(img, track_meta=False)
        if t.ndim < 2:
            raise ValueError(f"expected a channel-first label (C, H, W[, D]), got shape {tuple(t.shape)}.")
        if t.shape[0] > 1:  # one binary mask per channel -> values 1..N
            values = torch.zeros((1, *t.shape[1:]), dtype=torch.int32, device=t.device)
            for i in range(t.shape[0]):
                values[0][t[i] > 0] = i + 1
            t = values
        if self.mapping is None:
            out = t
        else:
            if self.strict:
                self._check_known(t, img)
            out = torch.full_like(t, self.default)
            for src, dst in self.mapping.items():
                out[t == src] = dst
        result, *_ = convert_to_dst_type(out, img, dtype=self.dtype if self.dtype is not None else img.dtype)
        return result

    def _check_known(self, t: torch.Tensor, img: NdarrayOrTensor) -> None:
        present = torch.unique(t)
        known = torch.as_tensor(list(self.mapping), dtype=present.dtype, device=present.device)
        unknown = present[~torch.isin(present, known)]
        if unknown.numel():
            name = filename_of(img) or "label array (no filename_or_obj in its metadata)"
            shown = ", ".join(f"{v:g}" for v in unknown.tolist()[:10])
            raise ScanInputError(
                f"{name}: label values [{shown}] are not among the known values {sorted(self.mapping)} of this "
                f"data set (values present: {[float(v) for v in present.tolist()[:20]]}); expected a label of the "
                "data set's layout.",
                filename=name,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mapping={self.mapping}, default={self.default}, strict={self.strict})"


class MapLabelsd(MapTransform):
    """Dictionary-based :py:class:`MapLabels`: maps ``data[key]`` for each key (label maps or mask stacks).

    Args:
        keys: keys of the labels to map.
        mapping, default, dtype, strict: see :py:class:`MapLabels`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = MapLabels.backend

    def __init__(
        self,
        keys: KeysCollection,
        mapping: Mapping | None,
        default: float = 0,
        dtype: DtypeLike | torch.dtype | None = None,
        strict: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mapper = MapLabels(mapping, default=default, dtype=dtype, strict=strict)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Map every ``keys`` entry of ``data``; returns a new dict (the input's labels are not changed)."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.mapper(d[key])
        return d



MapLabelsD = MapLabelsDict = MapLabelsd
