"""Data of the aneurysm bundle: the ADAM-layout data-set list split into training, validation and test cases (the
synthetic TOF-MRA set generated first when ``dataset_dir`` is empty), and the training patch set that redraws its
patch centres every epoch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.utils import convert_to_numpy

from ...datalists import adam_aneurysm_datalist, split_cases
from ...io import PathLike, ensure_dataset, find_images
from ...phantoms import synthesize_tof_mra_dataset
from ...transforms import VesselGuidedPatchSamples, crop_around

__all__ = ["AneurysmPatchDataset", "aneurysm_datalist", "aneurysm_inference_items"]


def aneurysm_datalist(dataset_dir: PathLike, num_val: int = 4, num_test: int = 8, split_seed: int = 0,
                      synth_cases: int = 30, synth_seed: int = 0, generate: bool = True) -> dict[str, Any]:
    """``{"train", "validation", "test"}`` lists of ``{"case", "image", "points"}`` items (``points``: the two-point
    annotations (N, 2, 3) in world mm) of the ADAM-layout folder ``dataset_dir``
    (:func:`monai_ext.datalists.adam_aneurysm_datalist`); when it is missing or empty, ``synth_cases`` synthetic
    TOF-MRA volumes (:func:`monai_ext.phantoms.synthesize_tof_mra_dataset`, seed ``synth_seed``) are written there
    first. The split (:func:`monai_ext.datalists.split_cases`) depends on ``split_seed`` only."""
    root = ensure_dataset(dataset_dir, lambda d: synthesize_tof_mra_dataset(d, cases=synth_cases, seed=synth_seed),
                          f"{synth_cases} synthetic TOF-MRA volumes with aneurysms", enabled=generate)
    cases = [{"case": c["case"], "image": c["image"], "points": c["points"]} for c in adam_aneurysm_datalist(root)["cases"]]
    split = split_cases(cases, num_val, num_test, split_seed, root)
    return {"train": split["training"], "validation": split["validation"], "test": split["testing"]}


class AneurysmPatchDataset(torch.utils.data.Dataset):
    """The training patches of Assis et al. (DGM4MICCAI / DALI 2021) over loaded volumes: per volume the centres of
    :class:`~monai_ext.transforms.VesselGuidedPatchSamples` (``num_duplicates`` per aneurysm, ``num_bright`` vessel
    and ``num_mid`` brain negatives), cropped lazily (``crop_size`` voxels, zero-padded at the border); positives go
    through ``positive_transform`` (each duplicate its own warp), then every patch through ``transform``.

    The length is fixed: when a volume has no room for all its negatives (``min_distance``), drawn negatives are
    repeated to fill up. :meth:`resample` draws new centres (call it at every epoch: :meth:`attach`).

    Args:
        volumes: loaded samples with ``image`` and ``label`` (1, H, W, D) (numpy or torch, as the transforms give).
        sampler: draws the centres.
        crop_size: voxels per axis of the crop handed to the transforms (the final patch size comes from
            ``transform``, e.g. a rotation then a centre crop).
        seed: seed of the centre draws.
    """

    def __init__(self, volumes: Sequence[dict[str, Any]], sampler: VesselGuidedPatchSamples,
                 crop_size: Sequence[int] | int, transform: Callable[[dict], Any] | None = None,
                 positive_transform: Callable[[dict], dict] | None = None, seed: int = 0) -> None:
        if not volumes:
            raise ValueError("AneurysmPatchDataset: no training volumes.")
        self.volumes = [{k: convert_to_numpy(v, dtype=np.float32) for k, v in vol.items() if k in ("image", "label")}
                        for vol in volumes]
        self.sampler = sampler.set_random_state(seed)
        self.crop_size = tuple(int(c) for c in np.broadcast_to(np.asarray(crop_size), (3,)))
        self.transform, self.positive_transform = transform, positive_transform
        self.patches: list[tuple[int, np.ndarray, bool]] = []
        self.counts: dict[str, int] = {}
        self.resample()

    def resample(self) -> None:
        """Draw new patch centres for every volume (same length as before)."""
        patches: list[tuple[int, np.ndarray, bool]] = []
        counts = {"positive": 0, "bright": 0, "mid": 0, "repeated": 0}
        wanted = self.sampler.num_bright + self.sampler.num_mid
        for i, vol in enumerate(self.volumes):
            centres = self.sampler.draw_centers(vol["image"], vol["label"])
            c = self.sampler.last_counts
            n_pos = c["positive"]
            negs = list(centres[n_pos:])
            if negs and len(negs) < wanted:
                counts["repeated"] += wanted - len(negs)
                negs += [negs[j] for j in self.sampler.R.randint(0, len(negs), wanted - len(negs))]
            patches += [(i, p, True) for p in centres[:n_pos]] + [(i, p, False) for p in negs]
            for k in ("positive", "bright", "mid"):
                counts[k] += c[k]
        if self.patches and len(patches) != len(self.patches):
            raise RuntimeError(f"AneurysmPatchDataset: {len(patches)} patches drawn, {len(self.patches)} before "
                               "(a volume without room for any negative).")
        self.patches, self.counts = patches, counts

    def attach(self, engine: Engine) -> None:
        """Redraw the centres when each epoch but the first starts."""
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.resample() if e.state.epoch > 1 else None)

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, index: int) -> Any:
        vi, centre, positive = self.patches[index]
        vol = self.volumes[vi]
        sample: dict[str, Any] = {k: crop_around(v, centre, self.crop_size) for k, v in vol.items()}
        sample["positive"] = int(positive)
        if positive and self.positive_transform is not None:
            sample = self.positive_transform(sample)
        return sample if self.transform is None else self.transform(sample)


def aneurysm_inference_items(input_dir: PathLike) -> list[dict[str, str]]:
    """The volumes an inference run reads from ``input_dir``: in the ADAM layout (case folders holding
    ``orig/TOF.nii.gz``) every case's ``orig/TOF.nii.gz``; otherwise :func:`monai_ext.io.find_images` (NIfTI files in
    the folder, DICOM series folders, or the one file / series given). Returns ``[{"image": path}]``."""
    root = Path(input_dir).expanduser()
    if root.is_dir():
        adam = sorted(p / "orig" / "TOF.nii.gz" for p in root.iterdir()
                      if p.is_dir() and (p / "orig" / "TOF.nii.gz").is_file())
        if adam:
            return [{"image": str(p.resolve())} for p in adam]
    return [{"image": p} for p in find_images(root)]
