"""The VAE augmentation bundle's study steps, called by its studies (``configs/study*.yaml``):

- :func:`score_brain_classifier`: one trained classifier re-scored on many new synthetic test subjects (the
  protocol's 100 test subjects per class give one run's balanced accuracy a standard error of about 3 points);
- :func:`check_generated_images`: are the generated images valid images (geometry, intensities, distance to
  the nearest real training image)?
- :func:`real_vs_generated_grid`: a PNG of real and generated images per class and sampler.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.transforms import LoadImage

from ...bundle_helpers import bundle_config_parser
from ...io import atomic_write
from ...phantoms import synthesize_brain_ad_dataset
from .dataset import brain_ad_split_lists, class_items
from .rhvae import load_rhvae
from .samplers import generate_images

__all__ = ["score_brain_classifier", "check_generated_images", "real_vs_generated_grid", "prepare_brain_ad_benchmark",
           "labelled_grid_png", "balanced_accuracy"]


def _vae_write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=1) + "\n"))


def balanced_accuracy(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean over the classes present in ``label`` of the share of that class predicted as itself (recall)."""
    return float(np.mean([np.mean(pred[label == c] == c) for c in np.unique(label)]))


def score_brain_classifier(
    model: str,
    out: str,
    dataset_dir: str,
    config_file: str,
    test_per_class: int = 900,
    skip_first: int = 100,
    data_seed: int = 0,
    config_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Balanced accuracy of one trained classifier (``model``, a ``model.pt`` of ``train.yaml``) on
    ``test_per_class`` test subjects per class of the embedded benchmark with the data seed the classifiers
    were trained on, test indices from ``skip_first`` on: subjects that no classifier, RHVAE or checkpoint
    selection saw (the protocol's own are indices ``0 .. skip_first - 1``; with ``skip_first`` 0 this
    reproduces the protocol's test numbers). The subjects are rendered into ``dataset_dir`` when it holds no
    ``dataset.json``. ``config_file`` is the bundle's ``train.yaml`` (network and preprocessing), with
    ``config_overrides`` (the run's). Writes ``out`` (JSON) and returns it."""
    total = int(skip_first) + int(test_per_class)
    data_dir = Path(dataset_dir)
    if not (data_dir / "dataset.json").is_file():
        print(f"rendering {total} test subjects per class into {data_dir} ...", flush=True)
        synthesize_brain_ad_dataset(data_dir, train_per_class=1, val_per_class=1, test_per_class=total, dim=2,
                                    seed=data_seed, progress=False)
    per_class: dict[int, list[dict]] = {}
    for e in brain_ad_split_lists(data_dir, synthesize_if_missing=False)["test"]:  # absolute paths, in index order
        per_class.setdefault(e["label"], []).append(e)
    if any(len(v[skip_first:total]) < test_per_class for v in per_class.values()):
        raise ValueError(f"{data_dir} holds fewer than {total} test subjects per class; delete it to re-render.")
    items = [e for c in sorted(per_class) for e in per_class[c][skip_first:total]]
    cfg = bundle_config_parser(config_file, config_overrides)
    pre = cfg.get_parsed_content("preprocessing")
    images = torch.stack([pre({"image": e["image"]})["image"] for e in items])
    labels = np.asarray([e["label"] for e in items])
    if not Path(model).is_file():
        raise FileNotFoundError(f"{model}: no trained classifier; run configs/train.yaml first.")
    net = cfg.get_parsed_content("network_def", instantiate=True, lazy=False)
    state = torch.load(str(model), map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"] if "model" in state else state)
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(images[i:i + 256]).argmax(1) for i in range(0, len(images), 256)]).numpy()
    res = {"model": str(model), "test_data": str(data_dir), "test_subjects_per_class": int(test_per_class),
           "skip_first": int(skip_first), "balanced_accuracy": balanced_accuracy(pred, labels)}
    _vae_write_json(out, res)
    return res


def _load_nifti(paths: Sequence[Path]) -> tuple[np.ndarray, list[tuple], list[tuple], list[np.ndarray], list[str]]:
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


def _image_summary(arr, shapes, zooms, affines, dtypes, ref_affine, nearest) -> dict:
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


def check_generated_images(dataset_dir: str, generated: str | Sequence[str], out: str) -> dict[str, Any]:
    """Compare every generated NIfTI under the cache folders ``generated`` (``gen_cache_dir`` of
    ``train.yaml``: ``class<c>_<sampler>_<hash>/gen_*.nii.gz``, or folders holding them) with the real training
    images of its class in ``dataset_dir``: shape, voxel size, affine, dtype, intensity range and percentiles,
    fraction of pixels above 0.05, and the RMS distance of each image to its nearest real training image (for
    real images: to the nearest *other* real image). Writes ``out`` (JSON: one record per real class and per
    cache folder) and returns it."""
    train = brain_ad_split_lists(dataset_dir, synthesize_if_missing=False)["training"]
    folders: list[Path] = []
    for g in map(Path, [generated] if isinstance(generated, (str, os.PathLike)) else generated):
        if not g.is_dir():
            raise FileNotFoundError(f"{g}: not a folder of generated images.")
        folders += [g] if any(g.glob("gen_*.nii.gz")) else sorted(d for d in g.iterdir() if any(d.glob("gen_*.nii.gz")))
    if not folders:
        raise FileNotFoundError(f"no gen_*.nii.gz under {generated}.")
    report, real = {}, {}
    for c in sorted({int(e["label"]) for e in train}):
        arr, shapes, zooms, affines, dtypes = _load_nifti([Path(e["image"]) for e in class_items(train, c)])
        real[c] = (arr, affines[0])
        report[f"class{c}_real"] = _image_summary(arr, shapes, zooms, affines, dtypes, affines[0], _nearest_rms(arr, arr, True))
    for f in folders:
        c = int(f.name.split("_")[0].removeprefix("class"))
        if c not in real:
            raise ValueError(f"{f}: class {c} has no real training images in {dataset_dir}.")
        arr, shapes, zooms, affines, dtypes = _load_nifti(sorted(f.glob("gen_*.nii.gz")))
        report[f.name] = _image_summary(arr, shapes, zooms, affines, dtypes, real[c][1], _nearest_rms(arr, real[c][0]))
        print(f"{f.name}: {report[f.name]['n']} images, range [{report[f.name]['min']:.3f}, {report[f.name]['max']:.3f}], "
              f"RMS to nearest real {report[f.name]['rms_to_nearest_real_mean']:.3f}", flush=True)
    _vae_write_json(out, report)
    return report


def real_vs_generated_grid(dataset_dir: str, generators: Mapping[Any, Any], out: str, per_row: int = 8,
                           seed: int = 123, class_names: Sequence[str] = ("CN", "AD")) -> str:
    """A gray PNG: for each class, one row of ``per_row`` real training images, then one row of prior samples
    and one of manifold (HMC) samples (generation ``seed``) of the class's RHVAE in ``generators``
    (``{class: checkpoint}``; of a list, the first). Writes ``out`` and returns its path."""
    dl = brain_ad_split_lists(dataset_dir)
    classes = sorted(int(c) for c in generators)
    gens = {int(c): (g[0] if isinstance(g, (list, tuple)) else g) for c, g in generators.items()}
    real = [[np.asarray(LoadImage(image_only=True)(d["image"])) for d in class_items(dl["training"], c)[:per_row]] for c in classes]
    generated = {}
    for name in ("prior", "hmc"):
        generated["manifold" if name == "hmc" else name] = [
            generate_images(load_rhvae(gens[c]), per_row, name, seed=seed)[0][:, 0].numpy() for c in classes]
    rows = []
    for k, reals in enumerate(real):
        rows.append((f"{class_names[classes[k]]} real", list(reals)))
        for name, per_class in generated.items():
            rows.append((f"{class_names[classes[k]]} {name}", list(per_class[k])))
    return labelled_grid_png(rows, out)


def labelled_grid_png(rows: Sequence[tuple[str, Sequence[np.ndarray]]], out: str | Path, zoom: int = 1,
                      group_size: int | None = None) -> str:
    """Write a gray PNG of image rows, each with its label in a left margin: ``rows`` of ``(label, images)``,
    2D images in [0, 1] of one size, 2 px apart, each pixel ``zoom`` x ``zoom``; with ``group_size``, 4 more
    pixels after every ``group_size`` images of a row. Returns the path."""
    from PIL import Image, ImageDraw

    h, w = (n * zoom for n in np.shape(rows[0][1][0]))
    ncol = max(len(images) for _, images in rows)
    groups = -(-ncol // group_size) if group_size else 0
    margin = 110
    canvas = np.full((len(rows) * (h + 2), margin + ncol * (w + 2) + 4 * groups), 255, dtype=np.uint8)
    for r, (_, images) in enumerate(rows):
        for k, im in enumerate(images):
            y, x = r * (h + 2), margin + k * (w + 2) + (4 * (k // group_size) if group_size else 0)
            canvas[y : y + h, x : x + w] = (np.kron(np.clip(im, 0, 1), np.ones((zoom, zoom))) * 255).astype(np.uint8)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for r, (text, _) in enumerate(rows):
        draw.text((4, r * (h + 2) + h // 2 - 5), text, fill=0)
    atomic_write(out, lambda p: img.save(p, format="PNG"))
    return str(out)


def prepare_brain_ad_benchmark(
    data: str,
    training_dir: str,
    evaluation_dir: str,
    train_per_class: Sequence[int] = (220, 70),
    val_per_class: Sequence[int] = (300, 120),
    test_per_class: Sequence[int] = (660, 180),
    disease_scale: float = 1.0,
    data_seed: int = 0,
) -> Path:
    """Compose one AD-vs-CN benchmark definition in ``data`` (a ``dataset.json`` with absolute paths): its
    training subjects rendered into ``training_dir`` and its validation and test subjects into
    ``evaluation_dir``, each rendered only when that folder has no ``dataset.json`` yet. Counts are
    ``[CN, AD]`` (default: the paper's OASIS training split, 220 / 70, with validation and test 10 times the
    paper's 30 / 12 and 66 / 18 for checkpoint selection and test power). Benchmarks of several training sizes
    share one evaluation folder, and a subject's image depends only on (data seed, split, class, index), so a
    larger training set holds the smaller one's subjects."""
    out = Path(data) / "dataset.json"
    if out.is_file():
        return out
    train_root, eval_root = Path(training_dir), Path(evaluation_dir)
    if not (train_root / "dataset.json").is_file():
        print(f"rendering {list(train_per_class)} CN/AD training subjects (disease scale {disease_scale}) into {train_root} ...", flush=True)
        synthesize_brain_ad_dataset(train_root, train_per_class=list(train_per_class), val_per_class=0, test_per_class=0,
                                    seed=data_seed, disease_scale=disease_scale)
    if not (eval_root / "dataset.json").is_file():
        print(f"rendering {list(val_per_class)} / {list(test_per_class)} CN/AD validation / test subjects into {eval_root} ...", flush=True)
        synthesize_brain_ad_dataset(eval_root, train_per_class=1, val_per_class=list(val_per_class),
                                    test_per_class=list(test_per_class), seed=data_seed, disease_scale=disease_scale)
    train_lists = brain_ad_split_lists(train_root, synthesize_if_missing=False)
    eval_lists = brain_ad_split_lists(eval_root, synthesize_if_missing=False)
    gen = [json.loads((r / "dataset.json").read_text())["generator"] for r in (train_root, eval_root)]
    if any(g.get("disease_scale", 1.0) != float(disease_scale) or g["seed"] != int(data_seed) for g in gen):
        raise ValueError(f"{train_root} / {eval_root}: rendered with another disease scale or data seed than asked "
                         f"({disease_scale}, {data_seed}): {gen}; delete them to render again.")
    definition = {
        "name": "synthetic AD-vs-CN brain benchmark, OASIS split shape",
        "labels": {"0": "CN", "1": "AD"},
        "generator": {"seed": int(data_seed), "disease_scale": float(disease_scale), "train_per_class": list(train_per_class),
                      "val_per_class": list(val_per_class), "test_per_class": list(test_per_class),
                      "training_dir": str(train_root), "evaluation_dir": str(eval_root)},
        "training": train_lists["training"], "validation": eval_lists["validation"], "test": eval_lists["test"],
    }  # fmt: skip
    _vae_write_json(out, definition)
    return out
