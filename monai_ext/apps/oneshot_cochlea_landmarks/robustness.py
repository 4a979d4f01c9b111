"""How the one-shot pipeline holds up on volumes that differ from the reference's acquisition: each test volume is
perturbed as scans come (a truncated field of view, more noise, a softer reconstruction kernel, coarser or
anisotropic voxels, a DICOM series instead of NIfTI), loaded through the bundle's own transforms and located; the
errors against the true landmarks (moved with the volume: they are in world mm) are summarised per perturbation."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage as ndi

from ...bundle_helpers import bundle_config_parser
from ...io import PathLike, atomic_write, read_landmarks
from ...metrics.landmark_error import LandmarkErrorMetric
from ...metrics.surface_dice import spacing_from_affine
from ...phantoms.dicom_series import write_dicom_series

__all__ = ["PERTURBATIONS", "perturb_volume", "robustness_probe"]

PERTURBATIONS = ("as_is", "fov_cut_30pct", "noise_60hu", "soft_kernel", "voxels_0.5mm", "slices_0.75mm", "dicom")


def perturb_volume(hu: np.ndarray, affine: np.ndarray, kind: str, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The volume ``hu`` (X, Y, Z, HU) and its affine after the perturbation ``kind`` (one of
    :data:`PERTURBATIONS`; ``dicom`` returns it unchanged, the caller writes it as a series)."""
    spacing = np.asarray(spacing_from_affine(affine))
    if kind in ("as_is", "dicom"):
        return hu, affine
    if kind == "fov_cut_30pct":  # the first 30 % along x missing: the field of view starts elsewhere
        cut = int(round(0.3 * hu.shape[0]))
        shifted = affine.copy()
        shifted[:3, 3] = affine[:3, 3] + affine[:3, 0] * cut
        return hu[cut:], shifted
    if kind == "noise_60hu":
        return hu + rng.normal(0.0, 60.0, size=hu.shape), affine
    if kind == "soft_kernel":
        return ndi.gaussian_filter(hu.astype(np.float64), 0.5 / spacing), affine
    target = {"voxels_0.5mm": np.array([0.5, 0.5, 0.5]), "slices_0.75mm": np.array([spacing[0], spacing[1], 0.75])}[kind]
    out = ndi.zoom(ndi.gaussian_filter(hu.astype(np.float64), np.maximum(target / spacing - 1.0, 0) * 0.5),
                   spacing / target, order=1)
    # ndi.zoom maps the first and last voxel centres onto the new first and last: the actual voxel size follows
    actual = (np.asarray(hu.shape) - 1.0) / (np.asarray(out.shape) - 1.0)
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] * actual
    return out, scaled


def robustness_probe(bundle_dir: PathLike, dataset_dir: PathLike, checkpoint: PathLike, output_file: PathLike,
                     cases: int = 10, kinds: Sequence[str] = PERTURBATIONS, method: str = "auto",
                     overrides: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Mean / max error (mm), failure rate and lowest structure score per perturbation over the first ``cases`` test volumes of
    ``dataset_dir``, with the bundle's ``inference.yaml`` settings (plus ``overrides``); written to
    ``output_file`` (JSON) and returned."""
    unknown = set(kinds) - set(PERTURBATIONS)
    if unknown:
        raise ValueError(f"unknown perturbations {sorted(unknown)}; choose from {PERTURBATIONS}.")
    cfg = bundle_config_parser(Path(bundle_dir) / "configs" / "inference.yaml",
                               dict(overrides or {}, dataset_dir=str(dataset_dir), checkpoint=str(checkpoint),
                                    method=method))
    locator, loading = cfg.get_parsed_content("locator"), cfg.get_parsed_content("volume_loading")
    items = [t for t in cfg.get_parsed_content("datalist")["test"] if "landmarks" in t][: int(cases)]
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            metric, scores = LandmarkErrorMetric(locator.names, 2.0), []
            t0 = time.perf_counter()
            for i, item in enumerate(items):
                nii = nib.load(item["image"])
                hu, affine = perturb_volume(np.asarray(nii.dataobj, dtype=np.float64), nii.affine, kind, rng)
                path = Path(tmp) / f"{kind}_{i}"
                if kind == "dicom":
                    write_dicom_series(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), affine, path)
                else:
                    path = path.with_suffix(".nii.gz")
                    nib.save(nib.Nifti1Image(hu.astype(np.float32), affine), str(path))
                out = locator(loading({"image": str(path)})["image"])
                scores.append(out["structure_score"])
                truth = read_landmarks(item["landmarks"])
                metric(torch.tensor([[out["landmarks"][n] for n in locator.names]]),
                       torch.tensor(np.stack([truth[n] for n in locator.names]))[None])
            summary = metric.aggregate()
            results[kind] = {k: summary[k] for k in ("mean", "max", "failure_rate", "cases")}
            if scores[0] is not None:
                results[kind]["structure_score_min"] = float(min(scores))
            print(f"{kind}: mean {summary['mean']:.3f} mm, max {summary['max']:.3f} mm, failures "
                  f"{summary['failure_rate']:.2f}, lowest structure score {results[kind].get('structure_score_min')} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    results["method"] = method
    atomic_write(output_file, lambda p: Path(p).write_text(json.dumps(results, indent=1) + "\n"))
    return results
