"""One round of the iterative label transfer: segment both visits of every pair with the current model, align
them, match their cells and transfer labels both ways; the transferred labels are the next training round's extra
data (Liu, Aguilera, Liu & Tam, DGM4MICCAI/DALI 2021, Fig. 1)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...io import PathLike, atomic_directory
from ...metrics.instance_overlap import match_instances
from ...metrics.mask_overlap import mask_dice
from ...transforms.cell_maps import CentroidSeededWatershed
from .alignment import affine_point_error, estimate_visit_affine
from .matching import cell_feature_blocks, match_cells
from .transfer import SIZE_STATISTICS, transfer_cell_labels

__all__ = ["TRANSFER_MODES", "ConeLabelTransferRound", "segment_visit"]

#: ``transfer``: the method; ``self_training``: each visit's own segmentation as its label (no matching), a control
TRANSFER_MODES = ("transfer", "self_training")


def segment_visit(network: torch.nn.Module, image: torch.Tensor, watershed: CentroidSeededWatershed,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels (H, W) int32, centres (N, 2) px, features (C, H, W))`` of one (1, H, W) image; cell ``k``'s centre
    is row ``k - 1``. Padded at the bottom / right to a multiple of 16 for the network and cropped back."""
    h, w = image.shape[-2:]
    x = torch.as_tensor(image, dtype=torch.float32, device=device).reshape(1, 1, h, w)
    x = F.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate")
    with torch.no_grad():
        logits, feats = network.forward_with_features(x)
    maps = torch.sigmoid(logits[0, :, :h, :w]).cpu().numpy()
    labels = np.asarray(watershed(maps))[0].astype(np.int32)
    ids = np.arange(1, int(labels.max()) + 1)
    centres = np.asarray(ndimage.center_of_mass(np.ones_like(labels), labels, ids)).reshape(-1, 2)
    return labels, centres, feats[0, :, :h, :w].cpu().numpy()


def _match_precision(refs: Sequence[np.ndarray], c1: np.ndarray, c2: np.ndarray, matches: np.ndarray) -> float:
    """Share of the matches whose two centres lie on the same true cell (the visits' true labels ``refs`` at them)."""
    if not len(matches):
        return float("nan")
    at = [ref[tuple(np.round(c[matches[:, k]]).astype(int).T)] for k, (ref, c) in enumerate(zip(refs, (c1, c2)))]
    return round(float(np.mean((at[0] == at[1]) & (at[0] > 0))), 4)


class ConeLabelTransferRound:
    """Label the visit pairs for the next training round with the current model.

    Args:
        network: a trained :class:`ConeMapUNet` (weights loaded).
        loading: the transform of ``{"image": path}`` to the normalised (1, H, W) image (the bundle's ``image_loading``).
        device: where the network runs.
        mode: one of :data:`TRANSFER_MODES`.
        spacing: the cells' centre spacing in px (sets the alignment and matching scales).
        centroid_threshold, region_threshold, min_size: the watershed post-processing (as inference).
        feature_window: the side (px) of the feature block around a centre (the paper: 16 at a spacing of about
            32 px; 8 at this bundle's 12 px).
        gate, feature_weight, position_weight, topology_weight, match_reward: :func:`match_cells`.
        size_sd, min_free, size_statistics: :func:`transfer_cell_labels`.
        progress: print a line per pair.
    """

    def __init__(self, network: torch.nn.Module, loading: Callable, device: torch.device | str = "cpu",
                 mode: str = "transfer", spacing: float = 12.0, centroid_threshold: float = 0.5,
                 region_threshold: float | None = None, min_size: int = 4, feature_window: int = 8, gate: float = 1.0,
                 feature_weight: float = 1.0, position_weight: float = 1.0, topology_weight: float = 1.0,
                 match_reward: float = 2.0, size_sd: float = 2.0, min_free: float = 0.7,
                 size_statistics: str = "robust", progress: bool = True) -> None:
        if mode not in TRANSFER_MODES:
            raise ValueError(f"mode must be one of {TRANSFER_MODES}, got {mode!r}.")
        self.network, self.loading, self.device, self.mode = network, loading, device, mode
        self.spacing = float(spacing)
        self.watershed = CentroidSeededWatershed(centroid_threshold, region_threshold, min_size)
        self.feature_window = int(feature_window)
        self.match_args = {"spacing": self.spacing, "gate": gate, "feature_weight": feature_weight,
                           "position_weight": position_weight, "topology_weight": topology_weight,
                           "match_reward": match_reward}
        if size_statistics not in SIZE_STATISTICS:
            raise ValueError(f"size_statistics must be one of {SIZE_STATISTICS}, got {size_statistics!r}.")
        self.size_sd, self.min_free, self.progress = float(size_sd), float(min_free), progress
        self.size_statistics = size_statistics

    def _load(self, path: str) -> torch.Tensor:
        image = self.loading({"image": path})["image"]
        if image.ndim != 3 or image.shape[0] != 1:
            raise ValueError(f"{path}: a single-channel 2D image expected (grayscale AO image), got shape "
                             f"{tuple(image.shape)} after loading (channel first).")
        return image

    def run(self, pairs: Sequence[dict[str, str]], round_dir: PathLike, reference_dir: PathLike | None = None,
            record: dict | None = None) -> dict[str, Any]:
        """Label every pair and write ``round_dir/labels/<pair>_v1|_v2.nii.gz`` (int32 instance labels on the
        visit's grid) and ``round_dir/round.json`` (per pair and in total: cells, matches, replaced, removed and
        added cells, the alignment; with ``reference_dir`` (the visits' true labels) and ``record`` (the data set's
        ``dataset.json``: true affines) also how right they are). Every pair is checked before anything is
        written; the folder appears complete or not at all. A pair whose alignment is not reliable
        (:func:`estimate_visit_affine`) is left out of the round, said so and recorded.

        Raises:
            ValueError: no pairs, two visits of different sizes, an image that is not single-channel 2D, no pair
                aligned reliably.
            FileExistsError: ``round_dir`` exists.
        """
        if not pairs:
            raise ValueError("no visit pairs to label (dataset_dir/pairs is empty or missing).")
        out = Path(round_dir)
        if out.exists():
            raise FileExistsError(f"{out} exists; a round's folder is written once (remove it to redo the round).")
        images = {}
        for p in pairs:
            a, b = self._load(p["image1"]), self._load(p["image2"])
            if a.shape != b.shape:
                raise ValueError(f"pair {p['pair']}: the visits differ in size, {p['image1']} is "
                                 f"{tuple(a.shape[1:])} px and {p['image2']} is {tuple(b.shape[1:])} px; the label "
                                 "transfer needs both visits on grids of one size (crop or pad them to one).")
            images[p["pair"]] = (a, b)
        true_affines = {r["pair"]: np.asarray(r["affine_v1_to_v2"]) for r in (record or {}).get("pair_records", [])}
        self.network.eval()
        rows, written = [], {}
        t0 = time.perf_counter()
        for n, p in enumerate(pairs):
            (lab1, c1, f1), (lab2, c2, f2) = (segment_visit(self.network, im, self.watershed, self.device)
                                              for im in images[p["pair"]])
            row: dict[str, Any] = {"pair": p["pair"], "cells_v1": int(len(c1)), "cells_v2": int(len(c2))}
            refs = None if reference_dir is None else [
                np.asarray(nib.load(str(Path(reference_dir) / f"{p['pair']}_v{v}.nii.gz")).dataobj) for v in (1, 2)]
            if self.mode == "self_training":
                new1, new2 = lab1, lab2
            else:
                img1, img2 = (im[0].cpu().numpy() for im in images[p["pair"]])
                affine, align = estimate_visit_affine(c1, c2, img1, img2, self.spacing)
                row.update(align_method=align["method"], align_inliers=align["inliers"])
                if p["pair"] in true_affines:
                    row["align_error_px"] = round(affine_point_error(affine, true_affines[p["pair"]], img1.shape), 3)
                if not align["reliable"]:
                    row["skipped"] = "alignment not reliable"
                    rows.append(row)
                    print(f"label transfer: pair {p['pair']} left out of this round: only {align['inliers']} of "
                          f"{min(len(c1), len(c2))} cells align (the visits overlap too little, or differ by more "
                          "than the alignment's search)", flush=True)
                    continue
                matches, info = match_cells(c1, c2, cell_feature_blocks(f1, c1, self.feature_window),
                                            cell_feature_blocks(f2, c2, self.feature_window), affine, **self.match_args)
                labels_12 = matches + 1                     # cell index -> label
                new1, rec1 = transfer_cell_labels(lab1, lab2, labels_12, np.linalg.inv(affine), self.size_sd,
                                                  self.min_free, self.size_statistics)
                new2, rec2 = transfer_cell_labels(lab2, lab1, labels_12[:, ::-1], affine, self.size_sd,
                                                  self.min_free, self.size_statistics)
                row.update(matches=int(len(matches)), candidates=info["candidates"],
                           replaced=rec1["replaced"] + rec2["replaced"], removed=rec1["removed"] + rec2["removed"],
                           added=rec1["added"] + rec2["added"], energy=round(info["energy"], 3))
                if refs is not None:
                    row["match_precision"] = _match_precision(refs, c1, c2, matches)
            if refs is not None:
                for v, (before, after, ref) in enumerate(((lab1, new1, refs[0]), (lab2, new2, refs[1])), start=1):
                    cells = max(len(np.unique(ref)) - 1, 1)
                    row[f"dice_before_v{v}"] = round(mask_dice(before > 0, ref > 0, empty=1.0), 4)
                    row[f"dice_after_v{v}"] = round(mask_dice(after > 0, ref > 0, empty=1.0), 4)
                    row[f"recall_before_v{v}"] = round(len(match_instances(before, ref)) / cells, 4)
                    row[f"recall_after_v{v}"] = round(len(match_instances(after, ref)) / cells, 4)
            written[p["pair"]] = (new1, new2)
            rows.append(row)
            if self.progress:
                print(f"label transfer ({self.mode}) {n + 1}/{len(pairs)} {p['pair']}: "
                      + ", ".join(f"{k} {v}" for k, v in row.items() if k != "pair")
                      + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
        if not written:
            raise ValueError(f"no pair could be aligned reliably ({len(pairs)} tried): nothing to transfer; check that "
                             "the two visits of a pair show the same retina at the same scale.")
        summary = {"mode": self.mode, "pairs": len(written), "pairs_skipped": len(rows) - len(written)}
        for key in dict.fromkeys(k for r in rows for k in r):
            vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and "skipped" not in r]
            if vals and key != "pair":
                summary[key] = round(float(np.mean(vals)), 4)

        def fill(tmp: Path) -> None:
            (tmp / "labels").mkdir(parents=True)
            for p in pairs:
                for v, lab in enumerate(written.get(p["pair"], ()), start=1):
                    affine = nib.load(p[f"image{v}"]).affine
                    nib.save(nib.Nifti1Image(np.asarray(lab, np.int32), affine),
                             str(tmp / "labels" / f"{p['pair']}_v{v}.nii.gz"))
            (tmp / "round.json").write_text(json.dumps({"summary": summary, "pairs": rows}, indent=1) + "\n")

        if not atomic_directory(out, fill):
            raise FileExistsError(f"{out} appeared while this round was written; kept the other writer's.")
        return summary
