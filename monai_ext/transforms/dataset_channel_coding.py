"""Dataset channel coding: each data set of a jointly trained network gets its own input-channel slot.

FS-Net (DGM4MICCAI/DALI 2021, "data expansion by joint multi-dataset training") feeds images of several data sets
to one network; each data set's image goes into its own channel slot and every other slot is zero, so the network
knows where an image comes from without a separate input. With ``num_datasets`` data sets of ``C`` channels each,
the coded image has ``num_datasets * C`` channels, slot ``m`` = channels ``m*C .. m*C + C - 1``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .input_checks import ScanInputError, filename_of

__all__ = [
    "check_dataset_index", "dataset_index_entry", "DatasetChannelCoding", "DatasetChannelCodingd", "DatasetChannelCodingD", "DatasetChannelCodingDict",
]


def check_dataset_index(value: object, num_datasets: int) -> int:
    """``value`` (an integer, or a one-element array or tensor) as an ``int`` in ``0..num_datasets-1``; else
    ``ValueError``."""
    index = value.item() if hasattr(value, "item") else value
    if isinstance(index, bool) or int(index) != index or not 0 <= int(index) < num_datasets:
        raise ValueError(f"dataset index must be an integer in 0..{num_datasets - 1}, got {value!r}.")
    return int(index)


def dataset_index_entry(data: Mapping[Hashable, object], dataset_key: str, owner: str) -> object:
    """``data[dataset_key]``, the item's data set index; ``KeyError`` naming ``owner`` and the item's keys when the
    entry is missing."""
    if dataset_key not in data:
        raise KeyError(f"{owner}: no '{dataset_key}' entry (the data set index) in the item; "
                       f"keys: {sorted(map(str, data))}.")
    return data[dataset_key]


class DatasetChannelCoding(Transform):
    """Put a channel-first image into data set ``dataset_index``'s channel slot; the other slots are zero.

    Args:
        num_datasets: number of data sets trained together (>= 1).
        channels_per_dataset: channels of each data set's image (1 for one MR contrast).

    Input (C, *spatial) with ``C == channels_per_dataset``, numpy or torch, any device; output
    (num_datasets * C, *spatial) of the same type, dtype and device (a ``MetaTensor`` keeps its metadata).

    Raises:
        ScanInputError: the image has another number of channels (the message names the file).
        ValueError: ``dataset_index`` is not in ``0..num_datasets-1``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_datasets: int, channels_per_dataset: int = 1) -> None:
        for name, v in (("num_datasets", num_datasets), ("channels_per_dataset", channels_per_dataset)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"DatasetChannelCoding: {name} must be an integer >= 1, got {v!r}.")
        self.num_datasets = int(num_datasets)
        self.channels = int(channels_per_dataset)

    def __call__(self, img: NdarrayOrTensor, dataset_index: int) -> NdarrayOrTensor:
        """Coded copy of ``img`` for data set ``dataset_index``."""
        m = check_dataset_index(dataset_index, self.num_datasets)
        if img.ndim < 2 or img.shape[0] != self.channels:
            where = filename_of(img) or "image"
            raise ScanInputError(
                f"{where}: expected {self.channels} channel(s) per data set, channel first ({self.channels}, ...), "
                f"found shape {tuple(img.shape)}.", filename=filename_of(img))
        t = convert_to_tensor(img, track_meta=False)
        out = torch.zeros((self.num_datasets * self.channels, *t.shape[1:]), dtype=t.dtype, device=t.device)
        out[m * self.channels:(m + 1) * self.channels] = t
        return convert_to_dst_type(out, img)[0]


class DatasetChannelCodingd(MapTransform):
    """Dictionary-based :py:class:`DatasetChannelCoding`: codes ``data[key]`` by the data set index in
    ``data[dataset_key]`` (an integer, e.g. the ``"dataset"`` entry of a joint dataset list).

    Args:
        keys: keys of the images to code.
        num_datasets, channels_per_dataset: see :py:class:`DatasetChannelCoding`.
        dataset_key: key of the data set index.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = DatasetChannelCoding.backend

    def __init__(self, keys: KeysCollection, num_datasets: int, channels_per_dataset: int = 1,
                 dataset_key: str = "dataset", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.coder = DatasetChannelCoding(num_datasets, channels_per_dataset)
        self.dataset_key = dataset_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Code every ``keys`` entry of ``data``; returns a new dict."""
        d = dict(data)
        index = dataset_index_entry(d, self.dataset_key, type(self).__name__)
        for key in self.key_iterator(d):
            d[key] = self.coder(d[key], index)
        return d


DatasetChannelCodingD = DatasetChannelCodingDict = DatasetChannelCodingd
