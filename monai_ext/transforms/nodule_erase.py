"""Erase a lung nodule from a CT in Hounsfield units (rule-based nodule eraser).

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021, Sect. 3 and Appendix B) removes the LIDC nodules with a
3D cGAN "nodule eraser" before training, so the GAN learns nodule-free scans. Here the eraser is a rule:
the nodule region (its mask dilated by the soft edge) is filled with a harmonic (Laplace) interpolation
of the surrounding voxels, which continues the vessels that cross the region smoothly, plus spatially
correlated noise that brings the region's standard deviation to that of the surrounding lung. The label
is cleared and what was erased is recorded (``meta["nodules_erased"]``).

- :class:`NoduleErase`: array version (mask, or label + value, or centre + diameter);
- :class:`NoduleErased`: dictionary version; by default erases the nodules recorded in
  ``meta["nodules"]`` by :class:`~monai_ext.transforms.nodule_insert.NoduleInsert`.

Like the injector it leaves the input image unchanged (it works on a copy, made once) unless
``inplace=True``; then it reads and writes only a crop around the nodule of the input itself. (In the array
version ``label`` / ``nodule_mask`` are outputs and are always written in place; the dictionary version
copies them too unless ``inplace=True``.)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends
from scipy import ndimage

from .nodule_geometry import (
    DIAMETER_RANGE_MM,
    NoduleGeometry,
    bounding_box,
    check_hu_range,
    correlated_noise,
    crop_box,
    distance_mm,
    fill_and_shell,
    geometry_from_meta,
    image_geometry,
    in_image,
    smooth_fill,
)
from .nodule_insert import (
    LUNG_HU,
    append_record,
    check_copy_args,
    copy_image,
    maybe_copy,
    plain_array,
    spatial_crop,
    to_numpy,
    write_region,
)

__all__ = ["NoduleErase", "NoduleErased", "NoduleEraseD", "NoduleEraseDict"]


def _mask_bbox(mask: NdarrayOrTensor, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """Bounding box of the non-zero voxels (one pass over the mask); ``None`` when empty."""
    m = mask[0] if mask.ndim == len(shape) + 1 else mask
    out = []
    for a in range(len(shape)):
        other = tuple(i for i in range(len(shape)) if i != a)
        if isinstance(m, torch.Tensor):
            hit = torch.nonzero(torch.amax((m != 0).to(torch.uint8), dim=other)).flatten().cpu().numpy()
        else:
            hit = np.flatnonzero(np.any(m != 0, axis=other))
        if hit.size == 0:
            return None
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


class NoduleErase(Transform):
    """Replace a nodule in a CT volume (C=1, H, W, D) or slice (C=1, H, W), in HU, by lung parenchyma.

    Which voxels: the nodule mask (``mask``, or ``label == label_value``, or ``nodule_mask != 0``); with a
    ``centre`` only the connected component of it nearest the centre within ``extent_mm`` (default
    ``diameter_mm``/2 + 50 %) is erased, and with a centre and no mask the ball of ``diameter_mm``. The
    region filled is that mask plus every voxel within ``dilate_mm`` of it (the soft edge of the nodule).

    Fill: harmonic interpolation of the voxels around the region (vessels crossing it stay continuous, as
    smooth tubes), plus correlated noise seeded by ``seed`` whose level makes the region's standard
    deviation equal to that of the surrounding lung shell (``shell_mm`` thick; its air-filled voxels, below
    -400 HU and inside ``lung_mask`` when given, so vessels do not brighten the fill).

    Labels: ``label`` voxels of the erased mask with value ``label_value`` get ``background_value`` (default:
    the most common other label value around the nodule, e.g. the lung label, or 0); ``nodule_mask`` gets 0.

    Args:
        centre: world mm in the frame of the image's affine (``centre_frame="world"``) or voxel indices.
        diameter_mm: nodule diameter (3-30 mm); needed with ``centre`` when no mask is given.
        extent_mm: search radius around ``centre`` for the mask (mm).
        dilate_mm: soft-edge margin filled around the mask (mm).
        shell_mm: thickness of the lung shell whose statistics the fill matches (mm).
        seed: seed of the noise texture.
        pixdim: voxel size in mm for plain arrays.
        check_hu: reject images that do not look like CT in HU.
        copy: kept for compatibility: copy the image (the default now, unless ``inplace=True``).
        inplace: fill the region in ``img`` itself instead of in a copy of it (no copy of the volume: only a
            crop around the nodule is read and written). Default: ``img`` is left unchanged.

    Call ``t(img, mask=None, label=None, label_value=None, lung_mask=None, nodule_mask=None)``: ``img``
    (1, *spatial) numpy array or torch tensor in HU; ``mask`` / ``label`` / ``nodule_mask`` / ``lung_mask``
    (1, *spatial) or (*spatial) on its grid. Returns the image, a copy unless ``inplace=True`` (MetaTensor:
    record appended to ``meta["nodules_erased"]``); ``label`` / ``nodule_mask`` are outputs, cleared in
    place. :meth:`erase` returns ``(image, record)``. Without a ``centre`` the whole mask is erased (one
    pass over it to find its bounding box).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        centre: Sequence[float] | None = None,
        diameter_mm: float | None = None,
        extent_mm: float | None = None,
        centre_frame: str = "world",
        dilate_mm: float = 1.5,
        shell_mm: float = 6.0,
        seed: int = 0,
        background_value: int | None = None,
        pixdim: Sequence[float] | float | None = None,
        check_hu: bool = True,
        copy: bool = False,
        inplace: bool = False,
    ) -> None:
        check_copy_args(copy, inplace)
        if diameter_mm is not None and not DIAMETER_RANGE_MM[0] <= float(diameter_mm) <= DIAMETER_RANGE_MM[1]:
            raise ValueError(f"diameter_mm={diameter_mm}: expected {DIAMETER_RANGE_MM[0]:g}-{DIAMETER_RANGE_MM[1]:g} mm.")
        if centre_frame not in ("world", "voxel"):
            raise ValueError(f"centre_frame={centre_frame!r}: expected 'world' or 'voxel'.")
        if dilate_mm < 0 or shell_mm <= 0:
            raise ValueError(f"dilate_mm={dilate_mm} must be >= 0 and shell_mm={shell_mm} > 0.")
        self.centre = None if centre is None else [float(c) for c in centre]
        self.diameter_mm = None if diameter_mm is None else float(diameter_mm)
        self.extent_mm = None if extent_mm is None else float(extent_mm)
        self.centre_frame = centre_frame
        self.dilate_mm, self.shell_mm = float(dilate_mm), float(shell_mm)
        self.seed = int(seed)
        self.background_value = background_value
        self.pixdim = pixdim
        self.check_hu = check_hu
        self.copy = copy
        self.inplace = inplace

    def __call__(
        self,
        img: NdarrayOrTensor,
        mask: NdarrayOrTensor | None = None,
        label: NdarrayOrTensor | None = None,
        label_value: int | None = None,
        lung_mask: NdarrayOrTensor | None = None,
        nodule_mask: NdarrayOrTensor | None = None,
    ) -> NdarrayOrTensor:
        """Erase the nodule; returns the image (see the class docstring for the arguments)."""
        return self.erase(img, mask, label, label_value, lung_mask, nodule_mask)[0]

    def _source(self, mask, label, label_value, nodule_mask):
        if mask is not None:
            return mask, "mask", None
        if label is not None and label_value is not None:
            return label, "label", label_value
        if nodule_mask is not None:
            return nodule_mask, "nodule_mask", None
        return None, "ball", None

    def erase(
        self,
        img: NdarrayOrTensor,
        mask: NdarrayOrTensor | None = None,
        label: NdarrayOrTensor | None = None,
        label_value: int | None = None,
        lung_mask: NdarrayOrTensor | None = None,
        nodule_mask: NdarrayOrTensor | None = None,
        geometry: NoduleGeometry | None = None,
        name: str = "image",
    ) -> tuple[NdarrayOrTensor, dict[str, Any]]:
        """Erase the nodule; returns ``(image, record)``: the image is a copy of ``img`` unless
        ``inplace=True``; ``label`` / ``nodule_mask`` are cleared in place. ``geometry``: the image's
        geometry when already known; ``name``: the image's name in error messages."""
        geo = geometry if geometry is not None else image_geometry(img, self.pixdim, name)
        if self.check_hu:
            check_hu_range(img, name)
        src, src_name, src_value = self._source(mask, label, label_value, nodule_mask)
        margin = self.dilate_mm + max(self.shell_mm, 2.0 * float(geo.spacing.max())) + float(geo.spacing.max())

        pad = np.ceil(margin / geo.spacing).astype(int)
        if self.centre is not None:
            if len(self.centre) != geo.ndim:
                raise ValueError(f"centre={self.centre}: expected {geo.ndim} coordinates for a {geo.ndim}D image.")
            cvox = geo.to_voxel(self.centre) if self.centre_frame == "world" else np.asarray(self.centre, float)
            if not in_image(cvox, geo):
                raise ValueError(
                    f"{name}: erase centre {self.centre} ({self.centre_frame}) is outside the image (shape {geo.shape})."
                )
            if src is None and self.diameter_mm is None:
                raise ValueError(f"{name}: erasing at a centre needs diameter_mm or a mask / label / nodule_mask.")
            extent = self.extent_mm or 1.5 * (self.diameter_mm or 20.0) / 2.0
            search_r = extent + float(geo.spacing.max())
            for _ in range(4):  # grow the search box while the nodule reaches its border
                search = crop_box(cvox, search_r, geo)
                found = self._find_region(src, src_name, src_value, search, cvox, geo, extent, name)
                rb = bounding_box(found)
                touches = any((r.start == 0 and s.start > 0) or (r.stop == s.stop - s.start and s.stop < n)
                              for r, s, n in zip(rb, search, geo.shape))
                if not touches:
                    break
                search_r *= 2.0
            glob = tuple(slice(s.start + r.start, s.start + r.stop) for s, r in zip(search, rb))
            box = tuple(slice(max(g.start - p, 0), min(g.stop + p, n)) for g, p, n in zip(glob, pad, geo.shape))
            region = np.zeros(tuple(b.stop - b.start for b in box), bool)
            region[tuple(slice(g.start - b.start, g.stop - b.start) for g, b in zip(glob, box))] = found[rb]
        else:
            if src is None:
                raise ValueError(
                    f"{name}: nothing to erase: give a centre (+ diameter_mm) or a mask / label with label_value."
                )
            sel = (src == src_value) if src_value is not None else src
            box0 = _mask_bbox(sel, geo.shape)
            if box0 is None:
                raise ValueError(f"{name}: the {src_name} to erase is empty.")
            box = tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(box0, pad, geo.shape))
            region = to_numpy(spatial_crop(plain_array(src), box, src_name, geo.shape))
            region = (region == src_value) if src_value is not None else region != 0

        if self.copy or not self.inplace:
            img = copy_image(img)
        t = plain_array(img)
        view = t[(0,) + box]
        crop = to_numpy(view).astype(float)

        shell_mm = max(self.shell_mm, 2.0 * float(geo.spacing.max()))
        fill, shell = fill_and_shell(region, geo.spacing, self.dilate_mm, shell_mm)
        lung_crop = None
        if lung_mask is not None:
            lung_crop = to_numpy(spatial_crop(lung_mask, box, "lung_mask", geo.shape)) != 0
        # the air-filled parenchyma around the region: a lung mask also holds vessels and airway walls, which
        # would pull the fill towards soft tissue (tens of HU brighter than the lung it replaces)
        lung_shell = shell & (crop < LUNG_HU)
        if lung_crop is not None:
            air_in_lung = lung_shell & lung_crop
            lung_shell = air_in_lung if air_in_lung.sum() >= 8 else shell & lung_crop
        ref = crop[lung_shell] if lung_shell.sum() >= 8 else crop[shell]
        shell_mean = float(ref.mean()) if ref.size else float(crop[~fill].mean())
        shell_std = float(ref.std()) if ref.size else 0.0

        filled = smooth_fill(crop, fill, geo.spacing)
        smooth_var = float(filled[fill].var())
        noise_std = float(np.sqrt(max(shell_std**2 - smooth_var, 0.0)))
        fb = bounding_box(fill)
        noise = correlated_noise(crop[fb].shape, geo.spacing, 1.0, self.seed)
        nf = noise[fill[fb]] - noise[fill[fb]].mean()
        h = filled[fill] - filled[fill].mean()
        if float(h @ h) > 0:  # uncorrelated with the smooth part, so the variances add up exactly
            nf = nf - (float(nf @ h) / float(h @ h)) * h
        if nf.size > 1 and nf.std() > 0:
            nf = nf / nf.std()
        # keep the interpolated shape (vessel continuity) but give the region the surrounding lung's mean
        values = filled[fill] - float(filled[fill].mean()) + shell_mean + noise_std * nf
        write_region(view, fill, values)

        background = self.background_value
        if label is not None:
            lab_view = spatial_crop(plain_array(label), box, "label", geo.shape)
            lab = to_numpy(lab_view)
            clear = region & (lab == label_value) if label_value is not None else region & (lab != 0)
            if background is None:
                around = lab[shell & ~region]
                if label_value is not None:
                    around = around[around != label_value]
                vals, counts = np.unique(around, return_counts=True)
                background = int(vals[np.argmax(counts)]) if vals.size else 0
            write_region(lab_view, clear, np.full(int(clear.sum()), float(background)))
        if nodule_mask is not None:
            nm_view = spatial_crop(plain_array(nodule_mask), box, "nodule_mask", geo.shape)
            write_region(nm_view, region, np.zeros(int(region.sum())))

        idx = np.argwhere(region) + np.array([s.start for s in box])
        centroid = idx.mean(0)
        voxel_mm3 = float(abs(np.linalg.det(geo.lin)))
        size = float(region.sum()) * voxel_mm3
        eq_d = (6.0 * size / np.pi) ** (1 / 3) if geo.ndim == 3 else (4.0 * size / np.pi) ** 0.5
        record = {
            "centre_mm": [float(c) for c in geo.to_world(centroid)],
            "centre_voxel": [float(c) for c in centroid],
            "frame": geo.frame,
            "equivalent_diameter_mm": float(eq_d),
            "voxels": int(region.sum()),
            "filled_voxels": int(fill.sum()),
            "source": src_name,
            "label_value": None if label_value is None else int(label_value),
            "background_value": background,
            "surround_mean_hu": shell_mean,
            "surround_std_hu": shell_std,
            "noise_std_hu": noise_std,
            "seed": self.seed,
        }
        if isinstance(img, MetaTensor):
            img.meta["nodules_erased"] = list(img.meta.get("nodules_erased", [])) + [record]
        return img, record

    def _find_region(self, src, src_name, src_value, box, cvox, geo: NoduleGeometry, extent: float, name: str) -> np.ndarray:
        """Nodule voxels in ``box``: the mask component nearest the centre, or the ball of ``diameter_mm``."""
        if src is None:
            region = distance_mm(box, cvox, geo) <= self.diameter_mm / 2.0
            if not region.any():
                region[tuple(int(np.clip(np.rint(c) - s.start, 0, s.stop - s.start - 1)) for c, s in zip(cvox, box))] = True
            return region
        region = to_numpy(spatial_crop(plain_array(src), box, src_name, geo.shape))
        region = (region == src_value) if src_value is not None else region != 0
        found = self._nearest_component(region, box, cvox, geo, extent)
        if found is None:
            raise ValueError(
                f"{name}: no {src_name} voxels{'' if src_value is None else f' == {src_value}'} within "
                f"{extent:.1f} mm of the centre {self.centre}; expected a nodule there."
            )
        return found

    def _nearest_component(self, region: np.ndarray, box, cvox, geo: NoduleGeometry, extent: float) -> np.ndarray | None:
        comp, n = ndimage.label(region, structure=np.ones((3,) * region.ndim, bool))
        if n == 0:
            return None
        idx = np.nonzero(region)  # distances of the mask voxels only
        offsets = np.stack([i + s.start - c for i, s, c in zip(idx, box, cvox)])
        dist = np.sqrt(np.sum((geo.lin @ offsets) ** 2, axis=0))
        best = np.full(n + 1, np.inf)
        np.minimum.at(best, comp[idx], dist)
        k = int(np.argmin(best))
        if best[k] > extent:
            return None
        return comp == k


class NoduleErased(MapTransform):
    """Dictionary-based :class:`NoduleErase`.

    What is erased, in order of precedence:

    1. ``centre`` given: the nodule there (mask from ``label_key`` == ``label_value``, or ``nodule_mask_key``,
       or the ball of ``diameter_mm``);
    2. ``erase_recorded``: every nodule listed in the image's ``meta["nodules"]`` (written by
       :class:`~monai_ext.transforms.nodule_insert.NoduleInsert`), each at its recorded centre with its
       recorded label value; the list is emptied;
    3. otherwise every voxel of ``label_key == label_value`` or of ``nodule_mask_key``.

    Records go to ``meta["nodules_erased"]`` (MetaTensor meta, or ``data[f"{key}_{meta_key_postfix}"]``).
    Image, label and nodule mask are copied once (the input arrays stay unchanged) unless ``inplace=True``;
    ``copy=True`` is kept for compatibility (copying is the default now). Other keyword arguments go to
    :class:`NoduleErase`.
    """

    backend = NoduleErase.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str | None = None,
        nodule_mask_key: str | None = None,
        lung_key: str | None = None,
        centre: Sequence[float] | None = None,
        diameter_mm: float | None = None,
        label_value: int | None = None,
        erase_recorded: bool = True,
        meta_key_postfix: str = "meta_dict",
        copy: bool = False,
        allow_missing_keys: bool = False,
        inplace: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        check_copy_args(copy, inplace)
        self.label_key, self.nodule_mask_key, self.lung_key = label_key, nodule_mask_key, lung_key
        self.centre, self.diameter_mm, self.label_value = centre, diameter_mm, label_value
        self.erase_recorded = erase_recorded
        self.meta_key_postfix = meta_key_postfix
        self.copy = copy
        self.inplace = inplace
        self.kwargs = {**kwargs, "inplace": True}  # the erasers work on the copies made here
        NoduleErase(centre, diameter_mm, **self.kwargs)  # validate arguments now

    def _meta(self, d: dict, key: Hashable) -> dict | None:
        img = d[key]
        return img.meta if isinstance(img, MetaTensor) else d.get(f"{key}_{self.meta_key_postfix}")

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Erase the nodules from every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        if self.copy or not self.inplace:
            maybe_copy(d, [*self.key_iterator(d), self.label_key, self.nodule_mask_key])
        for key in self.key_iterator(d):
            meta = self._meta(d, key)
            geo = geometry_from_meta(d[key], meta, self.kwargs.get("pixdim"), f"{key!r}")
            label = d.get(self.label_key) if self.label_key else None
            nmask = d.get(self.nodule_mask_key) if self.nodule_mask_key else None
            lung = d.get(self.lung_key) if self.lung_key else None
            jobs: list[tuple[NoduleErase, int | None]] = []
            recorded = list(meta.get("nodules", [])) if isinstance(meta, dict) else []
            if self.centre is not None:
                jobs.append((NoduleErase(self.centre, self.diameter_mm, **self.kwargs), self.label_value))
            elif self.erase_recorded and recorded:
                for rec in recorded:
                    kw = dict(self.kwargs)
                    kw.setdefault("extent_mm", float(rec.get("extent_mm", rec["diameter_mm"] / 2.0)) + 1.0)
                    kw.setdefault("seed", int(rec.get("seed", 0)))
                    jobs.append((NoduleErase(rec["centre_mm"], rec["diameter_mm"], **kw), rec.get("label_value")))
            else:
                jobs.append((NoduleErase(None, None, **self.kwargs), self.label_value))
            for eraser, value in jobs:
                use_label = label if (label is not None and value is not None) else None
                img, record = eraser.erase(
                    d[key], label=use_label, label_value=value if use_label is not None else None,
                    lung_mask=lung, nodule_mask=nmask, geometry=geo, name=f"{key!r}",
                )
                d[key] = img
                append_record(d, key, self.meta_key_postfix, record, "nodules_erased")
            if self.centre is None and self.erase_recorded and recorded:
                meta = self._meta(d, key)
                meta["nodules"] = []
        return d


NoduleEraseD = NoduleEraseDict = NoduleErased
