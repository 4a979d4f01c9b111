"""The training-mask corruptions of the label-noise study (Vorontsov & Kadoury, DGM4MICCAI 2021) by name.

``noise`` and ``level`` (two top-level keys of the bundle's train.yaml) pick one:

================ ===================================================== ====================== ===========
noise            what happens to the training masks                    level                  bias
================ ===================================================== ====================== ===========
``clean``        nothing                                               unused                 none
``warp``         B-spline warp, 3 x 3 control grid, offsets N(0, s^2)  s in pixels            unbiased
``shift``        every mask moved by n pixels along +x (to the right)  n in pixels            biased
``crop_left``    the left part of every tumour removed                 unused                 biased
``crop_rand05``  a random box of 0.5-1 x each tumour's extent removed  unused                 partly
``crop_rand0``   a random box of 0-1 x each tumour's extent removed    unused                 nearly none
``morph_random`` eroded or dilated by a radius uniform in [-r, r] px   r, largest radius (px) unbiased
``dilate``       dilated by a radius uniform in [1, r] px              r                      biased
``erode``        eroded by a radius uniform in [1, r] px               r                      biased
``permute``      a fraction of the training images gets another's mask fraction in [0, 1]     -
``discard``      the same fraction loses its mask (unlabelled)         fraction in [0, 1]     -
================ ===================================================== ====================== ===========

Warp, shift, crops, erosion and dilation are drawn afresh every time a mask is loaded (every epoch), on the fly
(:func:`corruption_transforms`, MONAI dictionary transforms of :mod:`monai_ext.transforms`); permutation and
discarding are fixed before training (:func:`corrupt_training_list`, seeded), as in the paper.
"""

from __future__ import annotations

import json
import random
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.transforms import MapTransform

from ...transforms import MaskShiftd, RandBSplineMaskWarpd, RandMaskCropd, RandMaskMorphologyd

__all__ = ["AUGMENTATIONS", "MODELS", "NOISE_MODES", "RECORD_KEY", "LabelCorruptionRecordd", "augmentation_transforms", "check_noise", "check_study_switches", "corrupt_training_list", "corruption_transforms"]

NOISE_MODES: tuple[str, ...] = (
    "clean", "warp", "shift", "crop_left", "crop_rand05", "crop_rand0", "morph_random", "dilate", "erode", "permute", "discard",
)
MODELS: tuple[str, ...] = ("seg", "ae", "mt")
AUGMENTATIONS: tuple[str, ...] = ("none", "intensity")
#: the item key where :class:`LabelCorruptionRecordd` puts the corruption records (a JSON string)
RECORD_KEY = "label_corruption"
_RECORD_FIELDS = ("mask_warp", "mask_shift", "mask_crop", "mask_morphology")
_CROP_MODES = {"crop_left": "left", "crop_rand05": "rand_0.5", "crop_rand0": "rand_0"}


def check_noise(noise: str, level: float) -> tuple[str, float]:
    """``(noise, level)`` checked: a known noise and a level in its range; ``ValueError`` naming the problem."""
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {list(NOISE_MODES)}, got {noise!r}.")
    level = float(level)
    if level < 0:
        raise ValueError(f"level of noise {noise!r} must be >= 0, got {level!r}.")
    if noise in ("permute", "discard") and level > 1:
        raise ValueError(f"level of noise {noise!r} is the fraction of training masks, in [0, 1]; got {level!r}.")
    if noise in ("shift", "morph_random", "dilate", "erode") and level != int(level):
        raise ValueError(f"level of noise {noise!r} is a whole number of pixels, got {level!r}.")
    if noise in ("morph_random", "dilate", "erode") and level < 1:
        raise ValueError(f"level of noise {noise!r} is the largest radius in pixels, >= 1; got {level!r}.")
    return noise, level


def check_study_switches(noise: str, level: float, model: str) -> None:
    """The train config's ``noise``, ``level`` and ``model`` checked together (``ValueError`` naming the key)."""
    check_noise(noise, level)
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)} (seg: soft Dice; ae: + input reconstruction; mt: + mean "
                         f"teacher), got {model!r}.")


class LabelCorruptionRecordd(MapTransform):
    """Moves the corruption records (``meta["mask_warp"]``, ``["mask_shift"]``, ``["mask_crop"]``,
    ``["mask_morphology"]``) of ``data[key]``
    into ``data["label_corruption"]`` as one JSON string ``{key: {field: [records]}}``.

    The records stay with the item (replayable: ``MaskCrop(**record)`` etc.), but as a string: a crop record holds
    one box per tumour, and lists of different lengths cannot be collated into a batch of meta data.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        records: dict[str, Any] = {}
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", None)
            if meta is None:
                continue
            found = {f: meta.pop(f) for f in _RECORD_FIELDS if f in meta}
            if found:
                records[str(key)] = found
        d[RECORD_KEY] = json.dumps(records)
        return d


def corruption_transforms(noise: str, level: float, keys: Sequence[str] | str = "label") -> list:
    """The on-the-fly corruption of the training masks in ``keys`` followed by :class:`LabelCorruptionRecordd` (for
    clean / permute / discard only the latter: every item then has ``"label_corruption"``, so batches collate)."""
    noise, level = check_noise(noise, level)
    record = LabelCorruptionRecordd(keys=keys)
    if noise == "warp":
        return [RandBSplineMaskWarpd(keys=keys, prob=1.0, sigma=level, grid_size=3), record]
    if noise == "shift":
        return [MaskShiftd(keys=keys, shift=(int(level), 0)), record]
    if noise in _CROP_MODES:
        return [RandMaskCropd(keys=keys, prob=1.0, mode=_CROP_MODES[noise]), record]
    if noise in ("morph_random", "dilate", "erode"):
        mode = "random" if noise == "morph_random" else noise
        return [RandMaskMorphologyd(keys=keys, prob=1.0, max_radius=int(level), mode=mode), record]
    return [record]


def augmentation_transforms(augmentation: str, intensity: Sequence) -> list:
    """The train config's image augmentation by name: ``none`` -> [], ``intensity`` -> ``intensity`` (the config's
    list of image-only transforms); anything else is a ``ValueError`` naming the choices."""
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {list(AUGMENTATIONS)}, got {augmentation!r}.")
    return list(intensity) if augmentation == "intensity" else []


def corrupt_training_list(
    items: Sequence[dict[str, Any]], noise: str, level: float, seed: int = 0, keep_unlabelled: bool = True
) -> list[dict[str, Any]]:
    """The training items after permuting or discarding ``level`` (a fraction) of their masks; others unchanged.

    ``permute``: ``round(level * n)`` items drawn with ``seed`` swap masks among themselves in one random cycle (none
    keeps its own, neighbours in the list are not paired); ``"label_source"`` names the image each mask was drawn on (every item has it). ``discard``: the drawn items get
    ``"labelled": False`` (kept as unlabelled images for the semi-supervised models, dropped with
    ``keep_unlabelled=False``). New dicts; the input list is not changed.
    """
    noise, level = check_noise(noise, level)
    out = [dict(i, labelled=bool(i.get("labelled", True)), label_source=i["image"]) for i in items]
    if noise not in ("permute", "discard") or level == 0:
        return out
    labelled = [k for k, i in enumerate(out) if i["labelled"]]
    rng = random.Random(int(seed))
    chosen = rng.sample(labelled, int(round(level * len(labelled))))   # random order: the cycle pairs unrelated images
    if noise == "discard":
        for k in chosen:
            out[k]["labelled"] = False
        return out if keep_unlabelled else [i for i in out if i["labelled"]]
    if len(chosen) >= 2:
        for src, dst in zip(chosen, chosen[1:] + chosen[:1]):
            out[dst]["label"] = items[src]["label"]
            out[dst]["label_source"] = items[src]["image"]
    return out
