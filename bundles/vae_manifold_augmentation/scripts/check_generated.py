"""Are the generated images valid images? Compares every generated NIfTI under one or more cache folders (the
``gen_cache_dir`` of train.yaml / run_protocol.py: ``class<c>_<sampler>_<hash>/gen_*.nii.gz``) with the real
training images of its class: shape, voxel size, affine, dtype, intensity range and percentiles, fraction of
pixels above 0.05, and the RMS distance of each image to its nearest real training image (for real images: to
the nearest *other* real image). Writes one JSON record per real class and per cache folder.

    python bundles/vae_manifold_augmentation/scripts/check_generated.py --dataset_dir /tmp/vae_da/data/brain_ad \
        --generated /tmp/vae_da/generated --out bundles/vae_manifold_augmentation/docs/generated_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

BUNDLE = Path(__file__).resolve().parents[1]


def _load(paths: list[Path]) -> tuple[np.ndarray, list[tuple], list[tuple], list[np.ndarray], list[str]]:
    arrays, shapes, zooms, affines, dtypes = [], [], [], [], []
    for p in paths:
        img = nib.load(str(p))
        a = np.asanyarray(img.dataobj)
        arrays.append(np.asarray(a, dtype=np.float64).squeeze())
        shapes.append(tuple(int(s) for s in a.shape))
        zooms.append(tuple(round(float(z), 4) for z in img.header.get_zooms()))
        affines.append(np.asarray(img.affine))
        dtypes.append(str(a.dtype))
    return np.stack(arrays), shapes, zooms, affines, dtypes


def _nearest_rms(x: np.ndarray, ref: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    a, b = x.reshape(len(x), -1), ref.reshape(len(ref), -1)
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2.0 * a @ b.T
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.maximum(d2.min(1), 0.0) / a.shape[1])


def _summary(arr, shapes, zooms, affines, dtypes, ref_affine, nearest) -> dict:
    return {
        "n": int(len(arr)),
        "shape": sorted(set(shapes)),
        "zooms": sorted(set(zooms)),
        "affines_equal_to_real": bool(all(np.allclose(a, ref_affine, atol=1e-5) for a in affines)),
        "dtype": sorted(set(dtypes)),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
        "p01": float(np.percentile(arr, 1)),
        "p99": float(np.percentile(arr, 99)),
        "frac_gt_0_05": float((arr > 0.05).mean()),
        "rms_to_nearest_real_mean": float(nearest.mean()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset_dir", required=True, help="folder with dataset.json (the real images)")
    p.add_argument("--generated", nargs="+", required=True, help="cache folders, or folders holding them")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    sys.path.insert(0, str(BUNDLE.parents[1]))
    from monai_ext.apps.vae_manifold_augmentation import (
        brain_ad_split_lists,
        class_items,
    )

    train = brain_ad_split_lists(args.dataset_dir, synthesize_if_missing=False)["training"]
    folders = []
    for g in map(Path, args.generated):
        if not g.is_dir():
            raise FileNotFoundError(f"{g}: not a folder of generated images.")
        folders += [g] if any(g.glob("gen_*.nii.gz")) else sorted(d for d in g.iterdir() if any(d.glob("gen_*.nii.gz")))
    if not folders:
        raise FileNotFoundError(f"no gen_*.nii.gz under {args.generated}.")
    report, real = {}, {}
    for c in sorted({int(e["label"]) for e in train}):
        arr, shapes, zooms, affines, dtypes = _load([Path(e["image"]) for e in class_items(train, c)])
        real[c] = (arr, affines[0])
        report[f"class{c}_real"] = _summary(arr, shapes, zooms, affines, dtypes, affines[0], _nearest_rms(arr, arr, True))
    for f in folders:
        c = int(f.name.split("_")[0].removeprefix("class"))
        if c not in real:
            raise ValueError(f"{f}: class {c} has no real training images in {args.dataset_dir}.")
        arr, shapes, zooms, affines, dtypes = _load(sorted(f.glob("gen_*.nii.gz")))
        report[f.name] = _summary(arr, shapes, zooms, affines, dtypes, real[c][1], _nearest_rms(arr, real[c][0]))
        print(f"{f.name}: {report[f.name]['n']} images, range [{report[f.name]['min']:.3f}, {report[f.name]['max']:.3f}], "
              f"RMS to nearest real {report[f.name]['rms_to_nearest_real_mean']:.3f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
