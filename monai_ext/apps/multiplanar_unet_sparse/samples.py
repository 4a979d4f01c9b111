"""The training and validation data of one sparse-annotation run (Laprade et al., DGM4MICCAI/DALI 2021).

With the run's seed, ``num_annotated`` (n_a) random planes of the training volumes are annotated (the label is kept
on them, every other voxel is -1, "not annotated"); ``num_training_planes`` (n_t) further random planes are known
as images but carry labels only where they cross the annotated planes. Both counts are over the whole training set
(as the paper's, whose training data is one volume cut into four), dealt to the volumes in turn: with 4 volumes
and n_a = 2, two volumes have one annotated plane each and two have none; the training planes are dealt to the
volumes that have annotated planes.

- the multi-planar U-Net (``model="mp"``) trains on the n_t training planes (sparse 2D samples) only, or, with
  n_t = 0, on the n_a annotated planes themselves (fully labelled 2D samples; the paper's rule);
- the 3D U-Net (``model="unet3d"``) trains on the sparse label volume. The crossing lines of the training planes
  lie on the annotated planes, so n_t adds no label for it: its data depend on n_a only.
- ``annotation="dense"``: every voxel labelled (the full-supervision reference): n_t fully labelled planes per
  volume for the MP U-Net, the full label volumes for the 3D U-Net.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.transforms import (
    AsDiscreted,
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Orientationd,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)

from ...bundle_helpers import check_best_model_schedule
from ...io import PathLike, atomic_write
from ...phantoms.seeds import derive_seed
from ...transforms import (
    CheckLabeld,
    CheckVolumed,
    LoadScand,
    ObliquePlaned,
    RandObliquePlaned,
    RandSparsePlaneAnnotationd,
)

__all__ = [
    "ANNOTATIONS",
    "IGNORE",
    "MODELS",
    "annotated_only",
    "check_sparse_switches",
    "load_volume",
    "planes_per_volume",
    "sparse_plane_samples",
    "sparse_training_data",
    "sparse_validation_volumes",
    "sparse_volume_samples",
    "sparse_volume_transforms",
]

MODELS = ("mp", "unet3d")
ANNOTATIONS = ("sparse", "dense")
#: the label value of voxels nobody annotated
IGNORE = -1.0
#: largest / smallest voxel size accepted without resampling
MAX_ANISOTROPY = 1.1


def check_sparse_switches(model: str, annotation: str, num_annotated: int, num_training_planes: int,
                          max_epochs: int | None = None, val_interval: int | None = None) -> None:
    """``ValueError`` naming the setting for an unknown model or annotation, n_a < 1 or n_t < 0, or (when given) a
    schedule with no validation, which would write no best model."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}.")
    if annotation not in ANNOTATIONS:
        raise ValueError(f"annotation must be one of {ANNOTATIONS}, got {annotation!r}.")
    for name, value, low in (("num_annotated", num_annotated, 1), ("num_training_planes", num_training_planes, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low} (planes over all training volumes), got {value!r}.")
    if annotation == "dense" and model == "mp" and num_training_planes < 1:
        raise ValueError("annotation=dense trains the MP U-Net on num_training_planes fully labelled planes per "
                         "volume: set num_training_planes >= 1.")
    if max_epochs is not None and val_interval is not None:
        check_best_model_schedule(max_epochs, val_interval)


def sparse_volume_transforms(pixdim: Sequence[float] | None = None, with_label: bool = True, track_meta: bool = False) -> list:
    """Load, check, reorient (RAS), resample to isotropic ``pixdim`` (``None``: keep the voxels, which must then be
    isotropic within 10 %) and scale the 0.5-99.5 percentiles of the image to [0, 1]; a label is checked to be on
    the image's grid and made binary (any value > 0.5, e.g. 1 or 255, is foreground). ``track_meta``: keep
    MetaTensors (for inverting the steps onto the input's grid), else plain tensors."""
    keys = ["image", "label"] if with_label else ["image"]
    steps = [
        LoadScand(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        CheckVolumed(keys="image", min_size=8, max_anisotropy=None if pixdim else MAX_ANISOTROPY),
    ]
    if with_label:
        steps.append(CheckLabeld(keys="label", image_key="image", check_integer=True,
                                 hint="Expected a binary mask (0 background, > 0 the structure)."))
    steps.append(Orientationd(keys=keys, axcodes="RAS"))
    if pixdim:
        steps.append(Spacingd(keys=keys, pixdim=list(pixdim), mode=["bilinear", "nearest"][: len(keys)]))
    steps.append(ScaleIntensityRangePercentilesd(keys="image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True))
    if with_label:
        steps.append(AsDiscreted(keys="label", threshold=0.5))
    steps.append(EnsureTyped(keys=keys, dtype=torch.float32, track_meta=track_meta))
    return steps


def load_volume(case: dict[str, Any], pixdim: Sequence[float] | None = None) -> dict[str, Any]:
    """One labelled case on the training grid: ``{"case", "image" (1, X, Y, Z) in [0, 1], "label" (1, X, Y, Z) 0/1}``."""
    d = Compose(sparse_volume_transforms(pixdim))({"image": case["image"], "label": case["label"]})
    return {"case": case.get("case", Path(case["image"]).name), "image": d["image"], "label": d["label"]}


def planes_per_volume(total: int, num_volumes: int) -> list[int]:
    """``total`` planes dealt to ``num_volumes`` volumes in turn (the first volumes get one more when it does not
    divide)."""
    return [total // num_volumes + (1 if i < total % num_volumes else 0) for i in range(num_volumes)]


def _annotate(volume: dict[str, Any], num_annotated: int, seed: int) -> dict[str, Any]:
    if num_annotated == 0:
        return {"label": torch.full_like(volume["label"], IGNORE), "annotation_planes": []}
    annotate = RandSparsePlaneAnnotationd("label", num_annotated, ignore_value=IGNORE).set_random_state(seed)
    return annotate({"label": volume["label"]})


def sparse_plane_samples(volumes: Sequence[dict[str, Any]], num_annotated: int, num_training_planes: int, seed: int,
                         annotation: str = "sparse", plane_size: int | None = None, center_range: float = 0.5,
                         sparse_volumes: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The 2D samples of the MP U-Net: ``num_training_planes`` random planes (labels only where they cross the
    annotated planes of their volume, -1 elsewhere; with ``annotation="dense"`` complete); with
    ``num_training_planes = 0`` the ``num_annotated`` annotated planes themselves (labels complete). The annotation
    is :func:`sparse_volume_samples` of the same arguments (``sparse_volumes``: that result, when already made);
    training planes are dealt over the volumes that have annotated planes. Items ``{"image", "label"}``
    (1, H, W) float32 plus ``"kind"`` (``annotated`` | ``training``), ``"case"`` and ``"plane"`` (the plane record,
    for replay)."""
    if sparse_volumes is None:
        sparse_volumes = sparse_volume_samples(volumes, num_annotated, seed, annotation)
    samples = []
    # training planes go to the volumes that have annotated planes (as in the paper's one training volume, where
    # every training plane can cross one); dense: to every volume
    with_planes = [i for i, sv in enumerate(sparse_volumes) if annotation == "dense" or sv["planes"]]
    n_train = [0] * len(volumes)
    for i, n in zip(with_planes, planes_per_volume(num_training_planes, len(with_planes))):
        n_train[i] = n
    for i, (vol, sv) in enumerate(zip(volumes, sparse_volumes)):
        size = plane_size or int(max(vol["image"].shape[1:]))
        full = {"image": vol["image"], "label": vol["label"]}
        for plane in sv["planes"] if num_training_planes == 0 else []:
            d = ObliquePlaned(["image", "label"], plane["rotation"], plane["center"], size,
                              mode=["bilinear", "nearest"], padding_value=[0.0, IGNORE])(full)
            samples.append({"image": d["image"], "label": d["label"], "kind": "annotated", "case": vol["case"],
                            "plane": plane})
        source = {"image": vol["image"], "label": sv["label"]}
        sampler = RandObliquePlaned(["image", "label"], size, center_range=center_range, mode=["bilinear", "nearest"],
                                    padding_value=[0.0, IGNORE]).set_random_state(derive_seed(seed, 2, i))
        for _ in range(n_train[i]):
            d = sampler(source)
            samples.append({"image": d["image"], "label": d["label"], "kind": "training", "case": vol["case"],
                            "plane": sampler.last_params})
    return samples


def sparse_volume_samples(volumes: Sequence[dict[str, Any]], num_annotated: int, seed: int,
                          annotation: str = "sparse") -> list[dict[str, Any]]:
    """The annotation of a run and the 3D U-Net's samples: per volume ``{"image", "label" (sparse: -1 off the
    annotated planes; dense: the label), "weight" (1 where annotated, a small floor elsewhere, for crops that hold
    annotations), "case", "planes" (the annotated planes)}``, ``num_annotated`` planes dealt over the volumes by
    :func:`planes_per_volume`."""
    out = []
    n_ann = planes_per_volume(num_annotated, len(volumes))
    for i, vol in enumerate(volumes):
        if annotation == "dense":
            label, planes = vol["label"], []
        else:
            sparse = _annotate(vol, n_ann[i], derive_seed(seed, 1, i))
            label, planes = sparse["label"], sparse["annotation_planes"]
        weight = (label >= 0).float() + 1e-3
        out.append({"image": vol["image"], "label": label, "weight": weight, "case": vol["case"], "planes": planes})
    return out


def _labelled_fraction(samples: Sequence[dict[str, Any]]) -> tuple[int, int]:
    labelled = sum(int((s["label"] >= 0).sum()) for s in samples)
    total = sum(int(s["label"].numel()) for s in samples)
    return labelled, total


def sparse_training_data(cases: Sequence[dict[str, Any]], model: str, annotation: str, num_annotated: int,
                         num_training_planes: int, seed: int, pixdim: Sequence[float] | None = None,
                         plane_size: int | None = None, report_path: PathLike | None = None) -> list[dict[str, Any]]:
    """Load the training ``cases`` and build the run's samples (:func:`sparse_plane_samples` for ``mp``,
    :func:`sparse_volume_samples` for ``unet3d``); ``report_path``: a JSON file with what the annotator labelled
    (annotated voxels of the volumes, labelled pixels of the planes)."""
    check_sparse_switches(model, annotation, num_annotated, num_training_planes)
    volumes = [load_volume(c, pixdim) for c in cases]
    vol_samples = sparse_volume_samples(volumes, num_annotated, seed, annotation)
    voxels_labelled, voxels = _labelled_fraction(vol_samples)
    report = {"model": model, "annotation": annotation, "num_annotated": num_annotated,
              "num_training_planes": num_training_planes, "seed": seed, "volumes": len(volumes),
              "annotated_voxels": voxels_labelled, "annotated_voxel_fraction": voxels_labelled / max(voxels, 1)}
    if model == "unet3d":
        samples = vol_samples
    else:
        samples = sparse_plane_samples(volumes, num_annotated, num_training_planes, seed, annotation, plane_size,
                                       sparse_volumes=vol_samples)
        px, total = _labelled_fraction(samples)
        report.update(planes=len(samples), labelled_plane_pixels=px, labelled_plane_pixel_fraction=px / max(total, 1))
    print(f"multiplanar_unet_sparse: {model} on {len(volumes)} volume(s), {annotation} annotation, n_a={num_annotated}, "
          f"n_t={num_training_planes}: {len(samples)} training samples, "
          f"{100 * report['annotated_voxel_fraction']:.2f} % of the voxels annotated", flush=True)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(report_path, lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    return samples


def sparse_validation_volumes(cases: Sequence[dict[str, Any]], num_annotated: int, seed: int,
                              pixdim: Sequence[float] | None = None, annotation: str = "sparse") -> list[dict[str, Any]]:
    """The validation volumes, annotated on half as many planes as the training set (at least one per volume; the
    paper's rule), so that choosing the checkpoint needs few labels: ``{"image", "label"}`` with -1 off the planes
    (``annotation="dense"``: the full labels)."""
    volumes = [load_volume(c, pixdim) for c in cases]
    if annotation == "dense":
        return [{"image": v["image"], "label": v["label"]} for v in volumes]
    total = max(len(volumes), num_annotated // 2)
    return [{"image": v["image"], "label": s["label"]}
            for v, s in zip(volumes, sparse_volume_samples(volumes, total, derive_seed(seed, 3)))]


def annotated_only(batch: Sequence[dict[str, Any]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(preds, labels)`` of a decollated batch with the voxels nobody annotated set to 0 in both (label -1), so a
    Dice metric scores the annotated voxels only (an ``output_transform`` for MONAI's ``MeanDice``)."""
    preds, labels = [], []
    for d in batch:
        label = torch.as_tensor(d["label"])
        pred = torch.as_tensor(d["pred"])[..., : label.shape[-3], : label.shape[-2], : label.shape[-1]]
        known = (label >= 0).to(pred.dtype)
        preds.append(pred * known)
        labels.append(label.clamp(min=0).to(pred.dtype))
    return preds, labels
