"""How the trained segmenter and the visit alignment hold up on images unlike the training ones: the test visits
rescaled (other cell spacings), cropped to odd sizes, stored as 8- or 16-bit integers, with more noise; and pairs
rotated further than the phantom's 3 degrees. Nothing real of this kind is available offline (docs/README.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityRangePercentilesd
from scipy import ndimage

from ...bundle_helpers import load_weights
from ...io import PathLike, atomic_write
from ...phantoms.ao_cone_mosaic import generate_cone_pair
from ...transforms.cell_maps import CentroidSeededWatershed
from .alignment import affine_point_error, estimate_visit_affine, rotation_about_centre
from .network import ConeMapUNet
from .scoring import cone_image_scores
from .transfer_round import segment_visit

__all__ = ["CONE_PERTURBATIONS", "cone_perturbation_check"]


def _zoom(factor: float) -> Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]:
    return lambda img, lab, rng: (ndimage.zoom(img, factor, order=1), ndimage.zoom(lab, factor, order=0))


#: name -> (image, labels, rng) -> (image, labels); the image as stored (float in [0, 1] for the phantom)
CONE_PERTURBATIONS: dict[str, Callable] = {
    "as is": lambda img, lab, rng: (img, lab),
    "8-bit": lambda img, lab, rng: (np.round(img * 255).astype(np.uint8), lab),
    "16-bit x 4000": lambda img, lab, rng: (np.round(img * 4000).astype(np.uint16), lab),
    "crop 100 x 77": lambda img, lab, rng: (img[11:111, 20:97], lab[11:111, 20:97]),
    "cells 10 px apart": _zoom(10 / 12),
    "cells 15 px apart": _zoom(15 / 12),
    "noise sd 0.05": lambda img, lab, rng: (img + rng.normal(0, 0.05, img.shape).astype(np.float32), lab),
    "gamma 0.6": lambda img, lab, rng: (np.clip(img, 0, 1) ** 0.6, lab),
}


def cone_perturbation_check(ckpt_path: PathLike, dataset_dir: PathLike, output_file: PathLike,
                       features: Sequence[int] = (16, 32, 64, 128, 128, 16), rotations: Sequence[float] = (3, 10, 20),
                       seed: int = 0) -> dict[str, Any]:
    """Score the model ``ckpt_path`` on the test visits of ``dataset_dir`` under each of :data:`CONE_PERTURBATIONS` (Dice
    and detection recall, noisy and clean visits apart), and the alignment (RANSAC on the model's cell centres) on
    phantom pairs rotated by ``rotations`` degrees; writes ``output_file`` (JSON) and returns it."""
    net = load_weights(ConeMapUNet(features=features), ckpt_path).eval()
    loading = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"),
                       ScaleIntensityRangePercentilesd("image", 0.5, 99.5, 0.0, 1.0, clip=True)])
    watershed = CentroidSeededWatershed(0.5, None, 4)
    record = json.loads((Path(dataset_dir) / "dataset.json").read_text())
    n_noisy = int(record["test_noisy"])
    images = sorted((Path(dataset_dir) / "test" / "images").glob("*.nii.gz"))
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"segmentation": {}, "alignment": {}}
    tmp = Path(output_file).with_suffix(".tmp.nii.gz")
    visits = [(np.asarray(nib.load(str(path)).dataobj),
               np.asarray(nib.load(str(path).replace("/images/", "/labels/")).dataobj)) for path in images]
    for name, perturb in CONE_PERTURBATIONS.items():
        scores: dict[str, list[float]] = {"dice_noisy": [], "dice_clean": [], "recall_noisy": [], "recall_clean": []}
        for k, (image, labels) in enumerate(visits):
            img, lab = perturb(image, labels, rng)
            nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp))
            pred, _, _ = segment_visit(net, loading({"image": str(tmp)})["image"], watershed)
            s = cone_image_scores(pred, lab)
            kind = "noisy" if k < n_noisy else "clean"
            scores[f"dice_{kind}"].append(s["dice"])
            scores[f"recall_{kind}"].append(s["detection_recall"])
        out["segmentation"][name] = {k: round(float(np.mean(v)), 4) for k, v in scores.items() if v}
        print(f"perturbation {name}: {out['segmentation'][name]}", flush=True)
    tmp.unlink(missing_ok=True)
    for deg in rotations:
        errors = []
        for i in range(5):
            pair = generate_cone_pair(1000 + i)
            rot = rotation_about_centre(deg, pair["images"][1].shape)
            inv = np.linalg.inv(rot)
            moved = ndimage.affine_transform(pair["images"][1], inv[:2, :2], offset=inv[:2, 2], order=1)
            turned = [torch.as_tensor(v[None]) for v in (pair["images"][0], moved)]
            (_, c1, _), (_, c2, _) = (segment_visit(net, v, watershed) for v in turned)
            est, _ = estimate_visit_affine(c1, c2, pair["images"][0], moved)
            errors.append(affine_point_error(est, rot @ pair["affine"], (128, 128)))
        out["alignment"][f"{deg:g} deg"] = {"mean_error_px": round(float(np.mean(errors)), 3),
                                            "max_error_px": round(float(np.max(errors)), 3)}
        print(f"alignment, pairs rotated {deg:g} degrees more: {out['alignment'][f'{deg:g} deg']}", flush=True)
    atomic_write(Path(output_file), lambda p: p.write_text(json.dumps(out, indent=1) + "\n"))
    return out
