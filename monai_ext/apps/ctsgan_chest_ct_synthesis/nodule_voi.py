"""Volumes of interest (VOIs) around lung nodules and nodule-free lung, and inpainting training pairs.

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021, Sect. 3 and Appendix B) works on VOIs twice:

- its nodule injector / eraser (3D cGANs after Jin et al., MICCAI 2018) fill the masked centre of a VOI
  (injector, trained on LIDC nodules) or replace a nodule by healthy tissue (eraser, trained on
  nodule-injected NLST VOIs, where the nodule-free original is the target);
- its downstream nodule-detection classifier decides nodule / no nodule on a balanced set.

This module cuts such VOIs from CTs in Hounsfield units (phantoms or user scans with a nodule list) and
builds the training pairs. When no annotated pairs exist, the rule-based
:class:`~monai_ext.transforms.NoduleInsert` / :class:`~monai_ext.transforms.NoduleErase` make them.
Everything is reproducible from a seed. VOI sizes are in voxels of the CT grid; VOIs reaching outside the
CT are padded with air (-1024 HU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor

from ...phantoms.chest_ct import generate_chest_ct
from ...transforms.hu_window import hu_to_unit, unit_to_hu
from ...transforms.nodule_erase import NoduleErase
from ...transforms.nodule_geometry import lung_mask_from_hu
from ...transforms.nodule_insert import NoduleInsert
from .nodule_inpainting import NODULE_HU_WINDOW

__all__ = [
    "crop_voi",
    "nodule_voi_samples",
    "phantom_nodule_vois",
    "inserted_nodule_vois",
    "injector_pairs",
    "eraser_pairs",
    "balance_voi_samples",
    "central_region_mask",
    "sphere_mask",
    "ct_nodule_vois",
    "inpaint_ct_voi",
    "learned_voi_inserter",
]

AIR_HU = -1024.0


def _voi_affine_of(image: NdarrayOrTensor, affine: Any) -> np.ndarray:
    if affine is None and isinstance(image, MetaTensor):
        affine = image.affine
    if affine is None:
        raise ValueError("image: no affine; pass a MetaTensor or affine= (4x4 voxel-to-world, mm).")
    aff = np.asarray(torch.as_tensor(affine).cpu().numpy() if isinstance(affine, torch.Tensor) else affine, float)
    if aff.shape != (4, 4) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError(f"affine: expected a non-singular 4x4 voxel-to-world matrix, got shape {aff.shape}.")
    return aff


def _voi_as_volume(image: NdarrayOrTensor, name: str = "image") -> np.ndarray:
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise ValueError(f"{name}: expected a 3D CT (1, H, W, D) or (H, W, D) in HU, got shape {tuple(arr.shape)}.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo > -500.0 or hi - lo < 100.0:
        raise ValueError(f"{name}: values span [{lo:.4g}, {hi:.4g}]; expected CT in Hounsfield units (air below -500).")
    return arr


def _voi_size(voi_size: Sequence[int] | int) -> tuple[int, int, int]:
    size = (int(voi_size),) * 3 if np.isscalar(voi_size) else tuple(int(s) for s in voi_size)
    if len(size) != 3 or min(size) < 4:
        raise ValueError(f"voi_size={voi_size}: expected 3 sizes >= 4 voxels.")
    return size  # type: ignore[return-value]


def crop_voi(image: NdarrayOrTensor, centre_voxel: Sequence[float], voi_size: Sequence[int] | int = 32,
             pad_value: float = AIR_HU) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Crop a VOI of ``voi_size`` voxels whose centre voxel (``size // 2``) is the voxel nearest
    ``centre_voxel``. ``image`` is (1, H, W, D) or (H, W, D); returns ``(voi (1, *voi_size) float32, start)``
    with ``start`` the (possibly negative) index of the VOI's first voxel; outside the image: ``pad_value``."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"image: expected (1, H, W, D) or (H, W, D), got shape {tuple(arr.shape)}.")
    size = _voi_size(voi_size)
    start = tuple(int(np.rint(c)) - s // 2 for c, s in zip(centre_voxel, size))
    out = np.full(size, pad_value, np.float32)
    src, dst = [], []
    for st, s, n in zip(start, size, arr.shape):
        a, b = max(st, 0), min(st + s, n)
        if b <= a:
            raise ValueError(f"VOI centre {list(centre_voxel)} (voxel) is outside the image of shape {arr.shape}.")
        src.append(slice(a, b))
        dst.append(slice(a - st, b - st))
    out[tuple(dst)] = arr[tuple(src)]
    return out[None], start  # type: ignore[return-value]


def sphere_mask(voi_size: Sequence[int] | int, diameter_mm: float, spacing: Sequence[float],
                centre_voxel: Sequence[float] | None = None) -> np.ndarray:
    """(1, *voi_size) float32 ball of ``diameter_mm`` at ``centre_voxel`` (default the VOI centre voxel):
    the injector's target nodule mask."""
    size = _voi_size(voi_size)
    c = [s // 2 for s in size] if centre_voxel is None else list(centre_voxel)
    grids = np.meshgrid(*[(np.arange(n) - ci) * float(sp) for n, ci, sp in zip(size, c, spacing)], indexing="ij")
    r2 = sum(g * g for g in grids)
    return (r2 <= (0.5 * float(diameter_mm)) ** 2).astype(np.float32)[None]


def central_region_mask(voi_size: Sequence[int] | int, region_size: Sequence[int] | int) -> np.ndarray:
    """(1, *voi_size) float32 box of ``region_size`` voxels centred in the VOI: the region the inpainting
    networks replace (Jin et al. mask the central part of the VOI)."""
    size = _voi_size(voi_size)
    reg = (int(region_size),) * 3 if np.isscalar(region_size) else tuple(int(r) for r in region_size)
    if len(reg) != 3 or any(r < 1 or r > s for r, s in zip(reg, size)):
        raise ValueError(f"region_size={region_size}: expected 3 sizes in 1..{size}.")
    m = np.zeros(size, np.float32)
    m[tuple(slice(s // 2 - r // 2, s // 2 - r // 2 + r) for s, r in zip(size, reg))] = 1.0
    return m[None]


def _voi_lung_of(image: np.ndarray, lung_mask: NdarrayOrTensor | None, affine: np.ndarray) -> np.ndarray:
    if lung_mask is not None:
        lm = lung_mask.detach().cpu().numpy() if isinstance(lung_mask, torch.Tensor) else np.asarray(lung_mask)
        lm = lm[0] if lm.ndim == 4 else lm
        if lm.shape != image.shape[1:]:
            raise ValueError(f"lung_mask: shape {lm.shape} does not match the image grid {image.shape[1:]}.")
        return lm != 0

    return lung_mask_from_hu(image, pixdim=np.sqrt((affine[:3, :3] ** 2).sum(0)))


def nodule_voi_samples(
    image: NdarrayOrTensor,
    nodules: Sequence[Mapping[str, Any]],
    affine: Any = None,
    voi_size: Sequence[int] | int = 32,
    num_negatives: int | None = None,
    lung_mask: NdarrayOrTensor | None = None,
    jitter_voxels: int = 0,
    seed: int = 0,
    source: str = "real",
    case: Any = None,
) -> list[dict[str, Any]]:
    """VOIs around the nodules of one CT (label 1) and at random lung locations free of nodules (label 0).

    Args:
        image: CT in HU, (1, H, W, D) or (H, W, D), numpy/torch/MetaTensor.
        nodules: one mapping per nodule with ``centre_mm`` (world mm in the frame of ``affine``) and
            ``diameter_mm`` or ``radius_mm``.
        affine: 4x4 voxel-to-world; default: the MetaTensor's.
        voi_size: VOI size in voxels (e.g. 32 or (32, 32, 16)).
        num_negatives: nodule-free VOIs to draw (default: as many as nodules). Their centres lie in the lung
            and no nodule (sphere of its radius) overlaps their VOI.
        lung_mask: non-zero = lung; default :func:`~monai_ext.transforms.nodule_geometry.lung_mask_from_hu`.
        jitter_voxels: positives are centred up to this many voxels off the nodule (uniform per axis), so a
            classifier cannot just look at the VOI centre.
        seed: seed of negative locations and jitter.
        source, case: copied into every sample (provenance).

    Returns:
        list of dicts: ``image`` (1, *voi_size) float32 HU, ``label`` 0/1, ``centre_mm`` (VOI centre),
        ``nodule_centre_mm``, ``diameter_mm`` (0 for negatives), ``spacing`` (mm), ``source``, ``case``.
    """
    img = _voi_as_volume(image)
    aff = _voi_affine_of(image, affine)
    size = _voi_size(voi_size)
    spacing = np.sqrt((aff[:3, :3] ** 2).sum(0))
    inv = np.linalg.inv(aff)
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    centres, radii = [], []
    for i, nod in enumerate(nodules):
        if "centre_mm" not in nod or not ("diameter_mm" in nod or "radius_mm" in nod):
            raise ValueError(f"nodules[{i}]: expected keys 'centre_mm' and 'diameter_mm' or 'radius_mm', got {list(nod)}.")
        d = float(nod["diameter_mm"]) if "diameter_mm" in nod else 2.0 * float(nod["radius_mm"])
        cw = np.asarray(nod["centre_mm"], float)
        cv = (inv @ np.append(cw, 1.0))[:3]
        if np.any(cv < -0.5) or np.any(cv > np.asarray(img.shape[1:]) - 0.5):
            raise ValueError(f"nodules[{i}]: centre {cw.round(2).tolist()} mm is outside the image {img.shape[1:]}.")
        centres.append(cv)
        radii.append(0.5 * d / spacing)
        jit = rng.integers(-jitter_voxels, jitter_voxels + 1, 3) if jitter_voxels > 0 else np.zeros(3, int)
        vc = np.rint(cv) + jit
        voi, _ = crop_voi(img, vc, size)
        out.append({"image": voi, "label": 1, "centre_mm": (aff @ np.append(vc, 1.0))[:3].tolist(),
                    "nodule_centre_mm": cw.tolist(), "diameter_mm": d, "spacing": spacing.tolist(),
                    "source": source, "case": case})
    n_neg = len(nodules) if num_negatives is None else int(num_negatives)
    if n_neg > 0:
        lung = _voi_lung_of(img, lung_mask, aff)
        cand = np.argwhere(lung)
        if cand.size == 0:
            raise ValueError("image: no lung voxels found for negative VOIs; pass lung_mask.")
        half = np.asarray(size) / 2.0
        picked, tries = 0, 0
        while picked < n_neg and tries < 200 * n_neg:
            tries += 1
            vc = cand[rng.integers(len(cand))].astype(float)
            if any(np.all(np.abs(c - vc) < half + r + 1.0) for c, r in zip(centres, radii)):
                continue
            voi, _ = crop_voi(img, vc, size)
            out.append({"image": voi, "label": 0, "centre_mm": (aff @ np.append(vc, 1.0))[:3].tolist(),
                        "nodule_centre_mm": None, "diameter_mm": 0.0, "spacing": spacing.tolist(),
                        "source": source, "case": case})
            picked += 1
        if picked < n_neg:
            raise ValueError(f"image: found only {picked} of {n_neg} nodule-free lung locations for negative VOIs.")
    return out


def _voi_phantom(seed: int, shape: Sequence[int], spacing: Sequence[float], nodules: bool):
    case = generate_chest_ct(shape, spacing, seed=seed, lesions=False, nodules=nodules)
    lung = (case.label == 1) | (case.label == 2)
    return case, lung


def phantom_nodule_vois(
    num_cases: int,
    seed: int = 0,
    voi_size: Sequence[int] | int = 32,
    shape: Sequence[int] = (176, 128, 144),
    spacing: Sequence[float] = (2.0, 2.0, 2.0),
    nodules: bool = True,
    negatives_per_case: int | None = None,
    jitter_voxels: int = 0,
) -> list[dict[str, Any]]:
    """VOIs of ``num_cases`` chest-CT phantoms (``generate_chest_ct``, no COVID lesions): with
    ``nodules=True`` the phantoms' own solid nodules (the "real" nodules of the embedded data) and as many
    nodule-free lung VOIs per case; with ``nodules=False`` only nodule-free VOIs (``negatives_per_case``,
    default 4). Case ``i`` uses phantom seed ``seed * 1000 + i``."""
    if num_cases < 1:
        raise ValueError(f"num_cases={num_cases}: expected >= 1.")
    out: list[dict[str, Any]] = []
    for i in range(int(num_cases)):
        s = int(seed) * 1000 + i
        case, lung = _voi_phantom(s, shape, spacing, nodules)
        nods = case.info["nodules"] if nodules else []
        n_neg = negatives_per_case if negatives_per_case is not None else (len(nods) if nodules else 4)
        # negatives away from the pleura like the phantom nodules, so location is no shortcut
        out += nodule_voi_samples(case.image, nods, case.affine, voi_size, n_neg, _voi_erode(lung, 3), jitter_voxels, seed=s,
                                  source="real" if nodules else "nodule-free", case=s)
    return out


def _voi_random_diameter(rng: np.random.Generator, diameter_range: Sequence[float]) -> float:
    return float(rng.uniform(float(diameter_range[0]), float(diameter_range[1])))


def inserted_nodule_vois(
    num_cases: int,
    per_case: int = 4,
    seed: int = 0,
    voi_size: Sequence[int] | int = 32,
    shape: Sequence[int] = (176, 128, 144),
    spacing: Sequence[float] = (2.0, 2.0, 2.0),
    diameter_range: Sequence[float] = (4.0, 20.0),
    jitter_voxels: int = 0,
    inserter: Any = None,
    case_seeds: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Balanced synthetic VOIs: nodule-free phantoms ("NLST-style" scans, seeds ``seed * 1000 + 500 + i``)
    get ``per_case`` nodules each; positives are VOIs around them, negatives VOIs of the same scans before
    insertion at other lung locations (``per_case`` per case).

    ``inserter(image (1,H,W,D) float32 HU, lung bool (H,W,D), centre_voxel, diameter_mm, seed) -> image``
    puts one nodule in; default: the rule-based :class:`~monai_ext.transforms.NoduleInsert` (solid, round or
    lobulated, 4-20 mm). A learned injector plugs in with
    :func:`learned_voi_inserter`.

    ``case_seeds``: explicit phantom seeds instead (e.g. the seeds of :func:`phantom_nodule_vois` training
    subjects: the same anatomy rendered without its own nodules, to augment a small training set with
    inserted nodules without adding subjects); ``num_cases`` is then ignored."""

    rng = np.random.default_rng(int(seed) + 7)
    out: list[dict[str, Any]] = []
    size = _voi_size(voi_size)
    seeds = [int(seed) * 1000 + 500 + i for i in range(int(num_cases))] if case_seeds is None else [int(c) for c in case_seeds]
    for s in seeds:
        case, lung = _voi_phantom(s, shape, spacing, nodules=False)
        aff = case.affine
        negs = nodule_voi_samples(case.image, [], aff, size, per_case, _voi_erode(lung, 3), seed=s, source="nodule-free",
                                  case=s)
        img = case.image[None].copy()
        # nodule centres well inside the lung so the whole nodule is lung-surrounded, as for the phantom's own
        inner = np.argwhere(_voi_erode(lung, 3))
        nods = []
        for k in range(int(per_case)):
            cv = inner[rng.integers(len(inner))]
            d = _voi_random_diameter(rng, diameter_range)
            nseed = int(rng.integers(2**31))
            if inserter is None:
                t = NoduleInsert(cv.tolist(), d, nodule_type="solid",
                                 irregularity=("round", "lobulated")[int(rng.integers(2))], seed=nseed,
                                 solid_hu=float(rng.uniform(-50.0, 100.0)), centre_frame="voxel", pixdim=spacing,
                                 inplace=True)  # img is this function's own copy
                img = t(img, lung_mask=lung)
            else:
                img = inserter(img, lung, cv, d, nseed)
            nods.append({"centre_mm": (aff @ np.append(cv, 1.0))[:3].tolist(), "diameter_mm": d})
        pos = nodule_voi_samples(img, nods, aff, size, 0, lung, jitter_voxels, seed=s,
                                 source="inserted" if inserter is None else "learned-inserted", case=s)
        out += pos + negs
    return out


def _voi_erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy import ndimage

    er = ndimage.binary_erosion(mask, iterations=iterations)
    return er if er.any() else mask


def balance_voi_samples(samples: Sequence[Mapping[str, Any]], seed: int = 0, max_per_class: int | None = None) -> list:
    """Equal numbers of label 0 and 1 (the smaller class's count, or ``max_per_class``), shuffled by seed."""
    rng = np.random.default_rng(seed)
    pos = [s for s in samples if int(s["label"]) == 1]
    neg = [s for s in samples if int(s["label"]) == 0]
    n = min(len(pos), len(neg))
    if max_per_class is not None:
        n = min(n, int(max_per_class))
    if n == 0:
        raise ValueError(f"cannot balance: {len(pos)} positive and {len(neg)} negative VOIs.")
    pick = [pos[i] for i in rng.permutation(len(pos))[:n]] + [neg[i] for i in rng.permutation(len(neg))[:n]]
    return [pick[i] for i in rng.permutation(len(pick))]


def _voi_rule_insert(voi: np.ndarray, centre: Sequence[int], spacing: Sequence[float], rng: np.random.Generator,
                     diameter_range: Sequence[float]) -> tuple[np.ndarray, float]:
    """A rule-based :class:`~monai_ext.transforms.NoduleInsert` nodule of random diameter, shape, seed and solid
    HU at ``centre`` (voxels) of ``voi``; returns ``(voi with the nodule, diameter_mm)``."""

    d = _voi_random_diameter(rng, diameter_range)
    t = NoduleInsert(centre, d, irregularity=("round", "lobulated")[int(rng.integers(2))],
                     seed=int(rng.integers(2**31)), solid_hu=float(rng.uniform(-50.0, 100.0)),
                     centre_frame="voxel", pixdim=spacing, check_hu=False, copy=True)
    return t(voi), d


def injector_pairs(samples: Sequence[Mapping[str, Any]], region_size: Sequence[int] | int = 16, seed: int = 0,
                   diameter_range: Sequence[float] = (4.0, 20.0)) -> list[dict[str, Any]]:
    """Training pairs of the nodule injector, dicts with ``image`` (the target VOI with a nodule, HU),
    ``region`` (central box mask) and ``nodule_mask`` (ball of the nodule's diameter at the VOI centre).

    - positives (label 1, e.g. the phantoms' "real" nodules, centred: ``jitter_voxels=0``) are used as
      they are (the paper trains the injector on LIDC nodules);
    - negatives (nodule-free VOIs) get a rule-based :class:`~monai_ext.transforms.NoduleInsert` nodule of a
      random diameter in ``diameter_range`` at the centre, so pairs exist without annotated data.
    """
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        voi = np.asarray(s["image"], np.float32)
        size = voi.shape[1:]
        sp = s["spacing"]
        centre = [n // 2 for n in size]
        if int(s["label"]) == 1:
            d = float(s["diameter_mm"])
            target, kind = voi, "annotated"
        else:
            target, d = _voi_rule_insert(voi, centre, sp, rng, diameter_range)
            kind = "rule-inserted"
        out.append({"image": np.asarray(target, np.float32), "region": central_region_mask(size, region_size),
                    "nodule_mask": sphere_mask(size, d, sp), "diameter_mm": d, "pair": kind})
    return out


def eraser_pairs(samples: Sequence[Mapping[str, Any]], region_size: Sequence[int] | int = 16, seed: int = 0,
                 diameter_range: Sequence[float] = (4.0, 20.0)) -> list[dict[str, Any]]:
    """Training pairs of the nodule eraser, dicts with ``image`` (input VOI with a nodule, HU), ``target``
    (the same VOI without it) and ``region`` (central box mask).

    - negatives (nodule-free VOIs): a rule-based nodule is inserted and the original is the target (the
      paper trains the eraser on nodule-injected NLST);
    - positives (centred real nodules): the target is the rule-based :class:`~monai_ext.transforms.NoduleErase`
      of the nodule (its ball, ``diameter_mm``).
    """

    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        voi = np.asarray(s["image"], np.float32)
        size = voi.shape[1:]
        sp = s["spacing"]
        centre = [n // 2 for n in size]
        if int(s["label"]) == 1:
            d = min(max(float(s["diameter_mm"]), 3.0), 30.0)
            target = NoduleErase(centre, d, centre_frame="voxel", pixdim=sp, seed=int(rng.integers(2**31)),
                                 check_hu=False, copy=True)(voi)
            inp, kind = voi, "rule-erased"
        else:
            inp, d = _voi_rule_insert(voi, centre, sp, rng, diameter_range)
            target, kind = voi, "rule-inserted"
        out.append({"image": np.asarray(inp, np.float32), "target": np.asarray(target, np.float32),
                    "region": central_region_mask(size, region_size), "diameter_mm": d, "pair": kind})
    return out


def ct_nodule_vois(
    datalist: Sequence[Mapping[str, Any]],
    voi_size: Sequence[int] | int = 32,
    negatives_per_case: int | None = None,
    jitter_voxels: int = 0,
    seed: int = 0,
    pixdim: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """VOIs of user CT scans: ``datalist`` items as :func:`~monai_ext.apps.ctsgan_chest_ct_synthesis.ctsgan_datalist` gives them
    (``image`` a NIfTI file or DICOM folder in HU, ``nodules`` a list with ``centre_ras_mm`` or ``centre_mm``
    and ``diameter_mm``; empty for nodule-free scans). The scans are loaded by MONAI (RAS affine), optionally
    resampled to ``pixdim`` mm; positives around every nodule, ``negatives_per_case`` nodule-free lung VOIs
    (default: as many as nodules, 4 for a scan without nodules), lung from
    :func:`~monai_ext.transforms.nodule_geometry.lung_mask_from_hu`."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirst,
        LoadImage,
        Orientation,
        Spacing,
    )

    if not datalist:
        raise ValueError("datalist: empty; expected items with an 'image' path.")
    steps = [LoadImage(image_only=True), EnsureChannelFirst(), Orientation(axcodes="RAS")]
    if pixdim is not None:
        steps.append(Spacing(pixdim=tuple(float(p) for p in pixdim), mode="bilinear"))
    load = Compose(steps)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(datalist):
        img = load(item["image"])
        nods = []
        for nod in item.get("nodules", []) or []:
            c = nod.get("centre_ras_mm", nod.get("centre_mm"))
            if c is None or "diameter_mm" not in nod:
                raise ValueError(f"datalist[{i}] nodule {nod}: expected 'centre_ras_mm' (or 'centre_mm') and 'diameter_mm'.")
            nods.append({"centre_mm": c, "diameter_mm": float(nod["diameter_mm"])})
        n_neg = negatives_per_case if negatives_per_case is not None else (len(nods) if nods else 4)
        out += nodule_voi_samples(img, nods, None, voi_size, n_neg, None, jitter_voxels, seed=int(seed) * 1000 + i,
                                  source=str(item.get("source", "ct")), case=str(item["image"]))
    return out


def inpaint_ct_voi(
    generator: Any,
    image: NdarrayOrTensor,
    centre_voxel: Sequence[float],
    voi_size: Sequence[int] | int = 32,
    region_size: Sequence[int] | int = 16,
    diameter_mm: float | None = None,
    spacing: Sequence[float] | None = None,
    hu_range: Sequence[float] = NODULE_HU_WINDOW,
) -> np.ndarray:
    """Run a learned injector / eraser (:class:`~monai_ext.apps.ctsgan_chest_ct_synthesis.NoduleInpaintingGenerator`) on the VOI
    of ``image`` (CT in HU, (1, H, W, D) or (H, W, D)) centred at ``centre_voxel`` and paste its central
    region back. Returns a float32 copy of the image (same shape) that differs from it only inside the
    region (the part of it inside the image). The injector needs ``diameter_mm`` and ``spacing`` (mm) for
    its target nodule ball."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    out = np.array(arr, dtype=np.float32, copy=True)
    vol = out[0] if out.ndim == 4 else out
    if vol.ndim != 3:
        raise ValueError(f"image: expected (1, H, W, D) or (H, W, D), got shape {tuple(arr.shape)}.")
    size = _voi_size(voi_size)
    voi, start = crop_voi(vol, centre_voxel, size)
    region = central_region_mask(size, region_size)
    nodule = None
    if getattr(generator, "inject", False):
        if diameter_mm is None or spacing is None:
            raise ValueError("inpaint_ct_voi: the injector needs diameter_mm and spacing (mm).")
        nodule = torch.as_tensor(sphere_mask(size, diameter_mm, spacing))[None]

    p = next(generator.parameters())
    with torch.no_grad():
        x = hu_to_unit(torch.as_tensor(voi)[None].to(p), hu_range)
        r = torch.as_tensor(region)[None].to(p)
        y = generator(x, r, None if nodule is None else nodule.to(p))
        y = unit_to_hu(y, hu_range)[0, 0].float().cpu().numpy()
    box = np.argwhere(region[0] > 0.5)
    lo, hi = box.min(0), box.max(0) + 1
    src, dst = [], []
    for a, b, st, n in zip(lo, hi, start, vol.shape):
        ia, ib = max(st + a, 0), min(st + b, n)
        if ib <= ia:
            return out
        src.append(slice(ia - st, ib - st))
        dst.append(slice(ia, ib))
    vol[tuple(dst)] = y[tuple(src)]
    return out


def learned_voi_inserter(generator: Any, voi_size: Sequence[int] | int = 32, region_size: Sequence[int] | int = 16,
                         spacing: Sequence[float] = (2.0, 2.0, 2.0), hu_range: Sequence[float] = NODULE_HU_WINDOW):
    """An ``inserter`` for :func:`inserted_nodule_vois` from a trained injector
    (:class:`~monai_ext.apps.ctsgan_chest_ct_synthesis.NoduleInpaintingGenerator` ``mode="inject"``): ``inserter(image, lung,
    centre_voxel, diameter_mm, seed) -> image`` fills the central region of the VOI at ``centre_voxel``."""
    if not getattr(generator, "inject", False):
        raise ValueError("learned_voi_inserter: expected an injector (NoduleInpaintingGenerator(mode='inject')).")
    generator.eval()

    def insert(image, lung, centre_voxel, diameter_mm, seed):  # noqa: ARG001 - the generator is deterministic
        return inpaint_ct_voi(generator, image, centre_voxel, voi_size, region_size, diameter_mm, spacing, hu_range)

    return insert
