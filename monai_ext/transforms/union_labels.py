"""Label re-encoding over the union of several data sets' classes, for one network trained on all of them.

FS-Net (DGM4MICCAI/DALI 2021) trains one segmentation network on data sets with different label sets: background
is shared and every data set's classes get their own indices after those of the data sets before it. With class
counts ``(2, 3)`` (a target with blood pool and myocardium, an auxiliary set with left ventricle, myocardium and
right ventricle), data set 0's labels 1, 2 stay 1, 2 and data set 1's labels 1, 2, 3 become 3, 4, 5. The mapping is
MONAI's :py:class:`monai.transforms.MapLabelValue`; a label value outside a data set's declared classes is an error
(MapLabelValue would keep it and it would land in another data set's class).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapLabelValue, MapTransform, Transform
from monai.utils import TransformBackends

from .dataset_channel_coding import check_dataset_index, dataset_index_entry
from .input_checks import CheckLabel

__all__ = [
    "UnionLabelEncode", "UnionLabelEncoded", "UnionLabelEncodeD", "UnionLabelEncodeDict", "dataset_union_labels",
    "union_label_offsets",
]


def union_label_offsets(class_counts: Sequence[int]) -> list[int]:
    """Union index of each data set's first foreground class: ``1 + sum(class_counts[:m])``.

    Raises ``ValueError`` when ``class_counts`` is empty or holds a count < 1."""
    counts = list(class_counts)
    if not counts or any(isinstance(k, bool) or int(k) != k or k < 1 for k in counts):
        raise ValueError(f"class_counts must be a non-empty list of integers >= 1 (foreground classes per data set), "
                         f"got {class_counts!r}.")
    return [1 + sum(int(k) for k in counts[:m]) for m in range(len(counts))]


def dataset_union_labels(class_counts: Sequence[int], dataset_index: int) -> list[int]:
    """Union label values of data set ``dataset_index``, in its own label order: background (0), then its classes
    (its label ``j`` is entry ``j``); e.g. ``[0, 3, 4, 5]`` for data set 1 of class counts ``(2, 3)``."""
    o = union_label_offsets(class_counts)[check_dataset_index(dataset_index, len(class_counts))]
    return [0, *range(o, o + int(class_counts[dataset_index]))]


class UnionLabelEncode(Transform):
    """Map a data set's label map (1, *spatial) with values ``0..K_m`` to the union label space.

    Args:
        class_counts: foreground classes ``K_m`` of each data set, in data set order.

    Input and output: (1, *spatial), numpy or torch (MapLabelValue keeps the type; a ``MetaTensor`` keeps its
    metadata), integer class indices.

    Raises:
        ScanInputError: a value outside ``0..K_m`` (the message names the label file, the values and the union).
        ValueError: ``dataset_index`` out of range.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, class_counts: Sequence[int]) -> None:
        self.offsets = union_label_offsets(class_counts)
        self.class_counts = [int(k) for k in class_counts]
        self.mappers = [
            MapLabelValue(orig_labels=list(range(1, k + 1)), target_labels=dataset_union_labels(self.class_counts, m)[1:])
            for m, k in enumerate(self.class_counts)
        ]
        self.checkers = [
            CheckLabel(num_classes=k + 1, hint=f"Data set {m} declares {k} foreground class(es); the union of "
                       f"class counts {self.class_counts} gives it union labels {o}..{o + k - 1}: is this label file "
                       "listed under the right data set, with the labels its dataset.json declares?")
            for m, (k, o) in enumerate(zip(self.class_counts, self.offsets))
        ]

    def __call__(self, label: NdarrayOrTensor, dataset_index: int) -> NdarrayOrTensor:
        """``label`` of data set ``dataset_index`` in union indices."""
        m = check_dataset_index(dataset_index, len(self.class_counts))
        self.checkers[m](label)
        return self.mappers[m](label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(class_counts={self.class_counts})"


class UnionLabelEncoded(MapTransform):
    """Dictionary-based :py:class:`UnionLabelEncode`, by the data set index in ``data[dataset_key]``.

    Args:
        keys: keys of the label maps.
        class_counts: see :py:class:`UnionLabelEncode`.
        dataset_key: key of the data set index.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = UnionLabelEncode.backend

    def __init__(self, keys: KeysCollection, class_counts: Sequence[int], dataset_key: str = "dataset",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.encoder = UnionLabelEncode(class_counts)
        self.dataset_key = dataset_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Encode every ``keys`` entry of ``data``; returns a new dict."""
        d = dict(data)
        index = dataset_index_entry(d, self.dataset_key, type(self).__name__)
        for key in self.key_iterator(d):
            d[key] = self.encoder(d[key], index)
        return d


UnionLabelEncodeD = UnionLabelEncodeDict = UnionLabelEncoded
