"""The patches of the CaCL bundle: a folder of RGB patches with a labels CSV, split by slide, with the test split
balanced as the paper's (half of the test patches show the pattern).

When ``dataset_dir`` is missing or empty, the embedded default is generated there first: synthetic IHC duodenum
patches (:func:`monai_ext.phantoms.synthesize_ihc_dataset`).
"""

from __future__ import annotations

import random
from typing import Any

from ...datalists.labelled_patches import check_rgb_patches, labelled_patch_datalist, patch_images
from ...io import PathLike, ensure_dataset
from ...phantoms.ihc_duodenum import synthesize_ihc_dataset

__all__ = ["cacl_datalist", "check_rgb_patches", "evaluation_items", "patch_images"]  # the last two: datalists


def cacl_datalist(dataset_dir: PathLike, labels_csv: str = "labels.csv", val_fraction: float = 0.125,
                  test_fraction: float = 0.3, split_seed: int = 0, balance_test: bool = True,
                  synth_slides: int = 32, synth_patches: int = 24, synth_seed: int = 0) -> dict[str, Any]:
    """``{"training", "validation", "testing"}`` lists of ``{"image", "label", ["mask"], "slide"}`` items
    (:func:`monai_ext.datalists.labelled_patch_datalist`). ``balance_test``: keep as many negative test patches as
    positive ones (a seeded draw; the paper: half of the test patches on the brush border), so that an empty mask
    scores 0.5 Dice and not the share of negative patches."""
    root = ensure_dataset(
        dataset_dir, lambda d: synthesize_ihc_dataset(d, slides=synth_slides, patches_per_slide=synth_patches,
                                                      seed=synth_seed),
        f"{synth_slides} x {synth_patches} synthetic IHC duodenum patches (seed {synth_seed})",
    ).resolve()
    split = labelled_patch_datalist(root, labels_csv, val_fraction, test_fraction, split_seed)
    check_rgb_patches([i["image"] for part in split.values() for i in part])
    if balance_test:
        test = split["testing"]
        pos = [i for i in test if i["label"] == 1]
        neg = [i for i in test if i["label"] == 0]
        if len(neg) > len(pos):
            keep = {id(i) for i in random.Random(int(split_seed)).sample(neg, len(pos))}
            split["testing"] = [i for i in test if i["label"] == 1 or id(i) in keep]
    return split


def evaluation_items(items: list[dict[str, Any]], where: str = "testing") -> list[dict[str, Any]]:
    """The items with their reference masks under ``label`` (what MONAI's evaluators score against) and the image
    label under ``class``. Raises ``ValueError`` naming the patches without a mask (a negative patch needs an
    all-zero mask file)."""
    missing = [i["image"] for i in items if not i.get("mask")]
    if missing:
        raise ValueError(f"{where}: {len(missing)} patch(es) without a mask, e.g. {missing[:3]}; evaluation needs a mask "
                         "for every patch (mask column of the labels CSV; an all-zero mask for a negative patch).")
    return [{"image": i["image"], "label": i["mask"], "class": i["label"], "slide": i["slide"]} for i in items]
