"""End-to-end demos: synthetic data -> training on the bundle runner -> evaluation -> real CT."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from ..bundle_helpers import run_bundle, shared_data_dir

__all__ = ["read_metric_summary", "describe_label_volume", "save_overlay_png", "run_demo"]

CLASS_NAMES = ("left lung", "right lung", "infection")


def read_metric_summary(eval_dir: str | Path, metric: str) -> dict[str, float]:
    """Mean per class from the ``<metric>_summary.csv`` that MONAI's MetricsSaver writes."""
    path = Path(eval_dir) / f"{metric}_summary.csv"
    with open(path) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    mean_col = header.index("mean")
    return {r[0]: float(r[mean_col]) for r in body if r and r[0] != "mean"}


def describe_label_volume(label_path: str | Path, image_path: str | Path) -> dict[str, float]:
    """Volume (ml) per class of a label NIfTI that must share its image's grid."""
    import nibabel as nib

    lab_img, img = nib.load(str(label_path)), nib.load(str(image_path))
    if lab_img.shape != img.shape or not np.allclose(lab_img.affine, img.affine, atol=1e-3):
        raise ValueError(f"{label_path}: geometry {lab_img.shape} differs from its image {image_path} {img.shape}")
    lab = np.asarray(lab_img.dataobj)
    voxel_ml = float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0
    return {name: float((lab == i + 1).sum() * voxel_ml) for i, name in enumerate(CLASS_NAMES)}


def save_overlay_png(label_path: str | Path, image_path: str | Path, out_png: str | Path, n_slices: int = 6) -> Path:
    """Axial slices (lung window) with the labels in colour: left lung blue, right lung green, infection red.

    The slices are spread over the labelled range, so a person can see at a glance whether stomach or
    bowel gas was taken for lung. Radiological convention: the patient's right on the viewer's left,
    anterior up.
    """
    import nibabel as nib
    from PIL import Image

    hu = np.asarray(nib.as_closest_canonical(nib.load(str(image_path))).dataobj).astype(np.float32)
    lab = np.asarray(nib.as_closest_canonical(nib.load(str(label_path))).dataobj)
    zs = np.flatnonzero(lab.any(axis=(0, 1))) if lab.any() else np.arange(hu.shape[2])
    picks = np.unique(np.linspace(max(zs.min() - 6, 0), zs.max(), n_slices).round().astype(int))
    grey = (np.clip((hu + 1000.0) / 1400.0, 0, 1) * 255).astype(np.float32)
    tiles = []
    for z in picks:
        rgb = np.repeat(grey[:, :, z, None], 3, axis=2)
        for k, colour in {1: (0, 0, 255), 2: (0, 255, 0), 3: (255, 0, 0)}.items():
            m = lab[:, :, z] == k
            rgb[m] = 0.55 * rgb[m] + 0.45 * np.array(colour, np.float32)
        tiles.append(rgb[::-1, ::-1].transpose(1, 0, 2))  # RAS array -> rows anterior first, columns right first
    image = np.concatenate(tiles, axis=1).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(image)).resize((image.shape[1] * 2, image.shape[0] * 2)).save(out_png)
    return Path(out_png)


def run_demo(
    bundle: str = "covid19_ct_fewshot_seg",
    work_dir: str = "demo_output",
    cases: int = 12,
    seed: int = 0,
    fold: int = 0,
    time_limit_sec: float = 480.0,
    max_epochs: int = 100,
    real_ct: str | None = None,
    augmentation: str = "none",
    **train_overrides,
) -> dict:
    """Generate phantoms, train the bundle on 4 of them for at most ``time_limit_sec`` (plus the last
    epoch and validation), evaluate per-class Dice/NSD on the held-out phantoms, segment the real CT
    (``real_ct`` or ``../shared/data/ct/*.nii.gz`` when present) and print a table.

    ``augmentation`` defaults to ``"none"``: in a run of a few minutes the stacked BigAug transforms
    slow convergence more than they help on phantoms (``train.yaml`` itself defaults to ``"bigaug"``).
    Further keyword arguments are passed to ``train.yaml`` as overrides (e.g. ``learning_rate=0.002``).

    Writes ``bundles/<bundle>/models/model.pt`` and everything else under ``work_dir``.
    """
    from ..phantoms.chest_ct_dataset import synthesize_dataset
    from .zoo import resolve_bundle

    if bundle != "covid19_ct_fewshot_seg":
        raise ValueError(f"no demo for bundle {bundle!r}; bundles with a demo: covid19_ct_fewshot_seg")
    bundle_dir = resolve_bundle(bundle)
    work = Path(work_dir).resolve()
    data_dir, eval_dir, real_dir = work / "data", work / "eval", work / "real_ct"
    t0 = time.perf_counter()

    print(f"[1/4] synthetic chest-CT phantoms: {cases} cases -> {data_dir}")
    if not (data_dir / "datalist_fewshot_5fold.json").is_file():
        synthesize_dataset(data_dir, cases=cases, seed=seed)

    print(f"[2/4] training on 4 phantoms (fold {fold}) for at most {time_limit_sec:.0f} s on the bundle runner")
    run_bundle(
        bundle_dir,
        ["train.yaml"],
        dataset_dir=str(data_dir),
        fold=fold,
        max_epochs=max_epochs,
        time_limit_sec=time_limit_sec,
        augmentation=augmentation,
        log_dir=str(work / "logs"),
        **train_overrides,
    )

    print(f"[3/4] evaluating on the held-out phantoms -> {eval_dir}")
    run_bundle(
        bundle_dir,
        ["train.yaml", "evaluate.yaml"],
        dataset_dir=str(data_dir),
        fold=fold,
        eval_dir=str(eval_dir),
        log_dir=str(work / "logs"),
    )
    dice = read_metric_summary(eval_dir, "val_mean_dice")
    nsd = read_metric_summary(eval_dir, "val_mean_nsd")

    real = Path(real_ct) if real_ct else None
    if real is None and (shared := shared_data_dir()) is not None:
        real = next(iter(sorted((shared / "ct").glob("*.nii*"))), None)
    real_stats = None
    if real is not None and real.exists():
        print(f"[4/4] segmenting the real CT {real} -> {real_dir}")
        run_bundle(bundle_dir, ["inference.yaml"], dataset_dir=str(real), output_dir=str(real_dir))
        seg = next(real_dir.glob("*_seg.nii.gz"))
        real_stats = describe_label_volume(seg, real)
        png = save_overlay_png(seg, real, work / "real_ct_overlay.png")
    else:
        print("[4/4] no real CT found (../shared/data/ct/); skipped")

    keys = list(dice)
    names = list(CLASS_NAMES) if len(keys) == len(CLASS_NAMES) else keys
    print("\nHeld-out synthetic cases (original resolution), mean over cases:")
    print(f"{'class':<12} {'Dice':>7} {'NSD':>7}")
    for name, k in zip(names, keys):
        print(f"{name:<12} {dice[k]:>7.3f} {nsd.get(k, float('nan')):>7.3f}")
    if real_stats:
        print(f"\nReal CT {real.name} (ml): " + ", ".join(f"{k} {v:.1f}" for k, v in real_stats.items()))
        print(f"look at {png}: left lung blue, right lung green, infection red; gas below the diaphragm must stay grey")
    print(f"\nweights: {bundle_dir / 'models' / 'model.pt'}   total time {time.perf_counter() - t0:.0f} s")
    return {"dice": dict(zip(names, dice.values())), "nsd": dict(zip(names, nsd.values())), "real_ct": real_stats}
