"""Insert a synthetic lung nodule into a CT in Hounsfield units (rule-based nodule injector).

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021, Sect. 3 and Appendix B) balances nodule-detection data
by injecting nodules into nodule-free scans and erasing them from scans with nodules, with two 3D cGANs
working on volumes of interest that are pasted back into the scan. This module replaces the injector
by an analytic rule, so it needs no training data and every insertion is reproducible from a few numbers:

- :class:`NoduleInsert`: the deterministic transform; it takes the full parameter set (centre in world
  mm, diameter, type, shape, seed, intensities) and paints one nodule;
- :class:`NoduleInsertd`: its dictionary version (image, label, nodule mask, lung mask keys);
- :class:`RandNoduleInsert`: samples the parameters (centre inside a lung mask, away from the pleura;
  diameter; type; shape; a texture seed) and hands them to :class:`NoduleInsert`;
- :class:`RandNoduleInsertd`: its dictionary version.

Each insertion appends its parameters to the image's meta data (``meta["nodules"]``, a list of dicts);
``NoduleInsert.from_record(record)`` re-applies one exactly.

The input image is not changed: it is copied once, and the nodule is painted into the copy. With
``inplace=True`` the nodule is painted into the input itself and only a crop around the nodule is read and
written, so the cost does not depend on the volume size. (In the array versions ``label`` /
``nodule_mask`` are outputs and are always written in place; the dictionary versions copy them too unless
``inplace=True``.)
"""

from __future__ import annotations

import base64
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends
from scipy import ndimage

from .nodule_geometry import (
    DIAMETER_RANGE_MM,
    NODULE_SHAPES,
    NODULE_TYPES,
    NoduleGeometry,
    bounding_box,
    check_hu_range,
    correlated_noise,
    crop_box,
    fill_and_shell,
    geometry_from_meta,
    image_geometry,
    in_image,
    lung_mask_from_hu,
    nodule_mask_like,
    offsets_mm,
    robust_std,
    shape_distance,
    shape_plan,
)

__all__ = [
    "NoduleInsert",
    "NoduleInsertd",
    "NoduleInsertD",
    "NoduleInsertDict",
    "RandNoduleInsert",
    "RandNoduleInsertd",
    "RandNoduleInsertD",
    "RandNoduleInsertDict",
]

LUNG_HU = -400.0  # below this a voxel counts as aerated lung when no lung mask is given
_RECORD_PARAMS = (
    "centre", "diameter_mm", "nodule_type", "irregularity", "seed", "solid_hu", "ggo_hu", "core_fraction",
    "texture_std", "edge_mm", "max_outside_mm", "outside_lung",
)


def _encode_outside_lung(box: tuple[slice, ...], outside: np.ndarray) -> dict[str, Any]:
    """JSON-able record of the voxels of ``box`` (image voxel indices) that lay outside the lung mask."""
    bits = base64.b64encode(np.packbits(outside.astype(bool), axis=None).tobytes()).decode("ascii")
    return {"box": [[int(b.start), int(b.stop)] for b in box], "bits": bits}


def _decode_outside_lung(record: Mapping[str, Any], box: tuple[slice, ...], name: str) -> np.ndarray:
    """The boolean array _encode_outside_lung recorded, checked to cover ``box`` (the same grid)."""
    rec_box = [tuple(int(v) for v in b) for b in record["box"]]
    if rec_box != [(int(b.start), int(b.stop)) for b in box]:
        raise ValueError(
            f"{name}: the record's outside_lung box {rec_box} is not this nodule's box "
            f"{[(b.start, b.stop) for b in box]}; replay a record on the image grid it was made on."
        )
    shape = tuple(b.stop - b.start for b in box)
    bits = np.frombuffer(base64.b64decode(record["bits"]), dtype=np.uint8)
    return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)


def spatial_crop(arr: NdarrayOrTensor, box: tuple[slice, ...], name: str, shape: tuple[int, ...]) -> NdarrayOrTensor:
    """View of ``arr`` ((1, *spatial) or (*spatial)) on ``box``; checks the grid."""
    if tuple(arr.shape) == shape:
        return arr[box]
    if arr.ndim == len(shape) + 1 and tuple(arr.shape[1:]) == shape and arr.shape[0] == 1:
        return arr[(0,) + box]
    raise ValueError(f"{name}: shape {tuple(arr.shape)} does not match the image grid (1, {', '.join(map(str, shape))}).")


def to_numpy(x: NdarrayOrTensor) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor is detached and moved to the CPU; no copy when it is already there)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def write_region(view: NdarrayOrTensor, where: np.ndarray, values: np.ndarray) -> None:
    """``view[where] = values`` for a numpy or torch view (values cast, rounded for integer dtypes)."""
    if isinstance(view, torch.Tensor):
        if not view.dtype.is_floating_point:
            info = torch.iinfo(view.dtype) if view.dtype != torch.bool else None
            values = np.rint(values)
            if info is not None:
                values = np.clip(values, info.min, info.max)
        idx = torch.as_tensor(where, device=view.device)
        view[idx] = torch.as_tensor(values, device=view.device).to(view.dtype)
    else:
        if np.issubdtype(view.dtype, np.integer):
            info = np.iinfo(view.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        view[where] = values.astype(view.dtype)


def plain_array(x: NdarrayOrTensor) -> NdarrayOrTensor:
    """The plain ``torch.Tensor`` that a MetaTensor wraps (shares its memory), or ``x`` itself."""
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def copy_image(x: NdarrayOrTensor) -> NdarrayOrTensor:
    """A copy of ``x`` of the same type (a MetaTensor keeps a deep copy of its meta data)."""
    return x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)


def check_copy_args(copy: bool, inplace: bool) -> None:
    """``copy=True`` (the old opt-in to copying, now the default) contradicts ``inplace=True``."""
    if copy and inplace:
        raise ValueError("copy=True and inplace=True contradict each other; give one of them.")


def _next_label(label: NdarrayOrTensor) -> int:
    return int(label.max()) + 1


class NoduleInsert(Transform):
    """Paint one lung nodule into a CT volume (C=1, H, W, D) or slice (C=1, H, W) in Hounsfield units.

    The nodule is a shape field in mm (sphere/disc, lobulated, or spiculated; see
    :func:`~monai_ext.transforms.nodule_geometry._shape_distance`) centred at ``centre``. Voxel values
    are mixed with the nodule intensity by a weight ``w`` in [0, 1] that ramps over ``edge_mm`` around
    the surface (partial volume); the nodule mask is ``w >= 0.5``. ``w`` is exactly 0 for voxels
    farther than ``max_outside_mm`` (Euclidean, in mm) from the mask, so those voxels keep their bits.
    Intensity inside: ``solid_hu`` (solid), ``ggo_hu`` (ground-glass), or a ground-glass halo around a
    solid core of ``core_fraction`` of the radius (part-solid), plus spatially correlated noise whose
    standard deviation is ``texture_std`` HU, or the robust (MAD) standard deviation of the aerated lung
    around the nodule when ``None``, so the nodule has the same grain as the scan. Noise and shape come
    from ``seed``.

    Args:
        centre: nodule centre, world mm in the frame of the image's affine (RAS for images loaded by
            MONAI) when ``centre_frame="world"``; voxel indices when ``"voxel"``. For plain arrays
            world = voxel index * ``pixdim``.
        diameter_mm: nodule diameter, 3-30 mm (the lobes/spicules of irregular shapes reach beyond it).
        nodule_type: ``"solid"``, ``"part-solid"`` or ``"ground-glass"``.
        irregularity: ``"round"``, ``"lobulated"`` or ``"spiculated"``.
        seed: seed of the shape (lobes, spicules) and of the noise texture.
        solid_hu: solid component intensity (HU), typical -50..+100.
        ggo_hu: ground-glass intensity (HU), typical -750..-300.
        core_fraction: part-solid only: radius of the solid core / nodule radius, in (0, 1).
        texture_std: noise standard deviation (HU); ``None``: estimated from the surrounding lung.
        edge_mm: width of the soft edge (mm).
        max_outside_mm: no voxel farther than this from the nodule mask is changed (mm).
        pixdim: voxel size in mm for plain arrays (ignored for MetaTensors, which carry an affine).
        label_value: value written into ``label`` on the nodule mask; ``None``: one more than the label's
            maximum (costs one pass over the label).
        confine_to_lung: with a lung mask, leave voxels outside it untouched (juxtapleural nodules are cut
            at the pleura). The voxels near the nodule that were outside the mask are recorded
            (``outside_lung``), so :meth:`from_record` replays the cut without the mask.
        outside_lung: the ``outside_lung`` entry of a record: confine as that insertion was confined, when
            no ``lung_mask`` is given (set by :meth:`from_record`).
        check_hu: reject images that do not look like CT in HU (strided sub-sample, cheap).
        copy: kept for compatibility: copy the image (the default now, unless ``inplace=True``).
        inplace: paint into ``img`` itself instead of a copy of it (no copy of the volume: only a crop around
            the nodule is read and written). Default: ``img`` is left unchanged.

    Call ``t(img, label=None, lung_mask=None, nodule_mask=None)``: ``img`` numpy array or torch tensor
    (MetaTensor kept, with the record appended to ``img.meta["nodules"]`` of the output), any device;
    ``label`` / ``nodule_mask`` (1, *spatial) or (*spatial) on the same grid are outputs: they get
    ``label_value`` / 1 on the nodule mask, written in place whatever ``inplace`` says; ``lung_mask``
    (non-zero = lung) is checked to hold the centre. Returns the image (a copy unless ``inplace=True``).
    :meth:`insert` returns ``(image, record)``.

    Raises ``ValueError`` naming the problem: centre outside the image or the lung mask, diameter outside
    3-30 mm, unknown type/shape, an image not in HU, no spacing (plain array without ``pixdim``), wrong
    shape or channels.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        centre: Sequence[float],
        diameter_mm: float,
        nodule_type: str = "solid",
        irregularity: str = "round",
        seed: int = 0,
        solid_hu: float = 40.0,
        ggo_hu: float = -550.0,
        core_fraction: float = 0.5,
        texture_std: float | None = None,
        edge_mm: float = 1.0,
        max_outside_mm: float = 1.5,
        centre_frame: str = "world",
        pixdim: Sequence[float] | float | None = None,
        label_value: int | None = None,
        confine_to_lung: bool = True,
        check_hu: bool = True,
        copy: bool = False,
        inplace: bool = False,
        outside_lung: Mapping[str, Any] | None = None,
    ) -> None:
        check_copy_args(copy, inplace)
        if not (DIAMETER_RANGE_MM[0] <= float(diameter_mm) <= DIAMETER_RANGE_MM[1]):
            raise ValueError(f"diameter_mm={diameter_mm}: expected {DIAMETER_RANGE_MM[0]:g}-{DIAMETER_RANGE_MM[1]:g} mm.")
        if nodule_type not in NODULE_TYPES:
            raise ValueError(f"nodule_type={nodule_type!r}: expected one of {NODULE_TYPES}.")
        if irregularity not in NODULE_SHAPES:
            raise ValueError(f"irregularity={irregularity!r}: expected one of {NODULE_SHAPES}.")
        if centre_frame not in ("world", "voxel"):
            raise ValueError(f"centre_frame={centre_frame!r}: expected 'world' or 'voxel'.")
        if not 0.0 < float(core_fraction) < 1.0:
            raise ValueError(f"core_fraction={core_fraction}: expected a value in (0, 1).")
        if edge_mm <= 0 or max_outside_mm < 0:
            raise ValueError(f"edge_mm={edge_mm} must be > 0 and max_outside_mm={max_outside_mm} >= 0.")
        if texture_std is not None and texture_std < 0:
            raise ValueError(f"texture_std={texture_std}: expected >= 0 HU or None.")
        self.centre = [float(c) for c in centre]
        self.diameter_mm = float(diameter_mm)
        self.nodule_type = nodule_type
        self.irregularity = irregularity
        self.seed = int(seed)
        self.solid_hu = float(solid_hu)
        self.ggo_hu = float(ggo_hu)
        self.core_fraction = float(core_fraction)
        self.texture_std = None if texture_std is None else float(texture_std)
        self.edge_mm = float(edge_mm)
        self.max_outside_mm = float(max_outside_mm)
        self.centre_frame = centre_frame
        self.pixdim = pixdim
        self.label_value = label_value
        self.confine_to_lung = confine_to_lung
        self.outside_lung = None if outside_lung is None else dict(outside_lung)
        self.check_hu = check_hu
        self.copy = copy
        self.inplace = inplace

    @classmethod
    def from_record(cls, record: Mapping[str, Any], **kwargs: Any) -> NoduleInsert:
        """The transform that reproduces a ``meta["nodules"]`` entry (world-frame centre); ``kwargs`` (e.g.
        ``inplace=True``, ``pixdim``) are passed on to the constructor."""
        params = {k: record[k] for k in _RECORD_PARAMS if k in record}
        params["centre"] = record["centre_mm"]
        if params.get("texture_std") is None:  # the level that was used, estimated or given, not a new estimate
            params["texture_std"] = record.get("texture_std_hu")
        params["label_value"] = record.get("label_value")
        params.update(kwargs)
        return cls(**params)

    def __call__(
        self,
        img: NdarrayOrTensor,
        label: NdarrayOrTensor | None = None,
        lung_mask: NdarrayOrTensor | None = None,
        nodule_mask: NdarrayOrTensor | None = None,
    ) -> NdarrayOrTensor:
        """Insert the nodule; returns the image (see the class docstring for the arguments)."""
        return self.insert(img, label, lung_mask, nodule_mask)[0]

    def insert(
        self,
        img: NdarrayOrTensor,
        label: NdarrayOrTensor | None = None,
        lung_mask: NdarrayOrTensor | None = None,
        nodule_mask: NdarrayOrTensor | None = None,
        geometry: NoduleGeometry | None = None,
        name: str = "image",
    ) -> tuple[NdarrayOrTensor, dict[str, Any]]:
        """Insert the nodule; returns ``(image, record)``: the image is a copy of ``img`` unless
        ``inplace=True``; ``label`` / ``nodule_mask`` are updated in place. ``geometry``: the image's
        geometry when already known (else read from the MetaTensor affine or ``pixdim``); ``name``: the
        image's name in error messages."""
        geo = geometry if geometry is not None else image_geometry(img, self.pixdim, name)
        if self.check_hu:
            check_hu_range(img, name)
        if self.copy or not self.inplace:
            img = copy_image(img)
        if len(self.centre) != geo.ndim:
            raise ValueError(f"centre={self.centre}: expected {geo.ndim} coordinates for a {geo.ndim}D image.")
        if self.centre_frame == "world":
            cvox = geo.to_voxel(self.centre)
        else:
            cvox = np.asarray(self.centre, float)
        cworld = geo.to_world(cvox) if self.centre_frame == "voxel" else np.asarray(self.centre, float)
        if not in_image(cvox, geo):
            raise ValueError(
                f"{name}: nodule centre {np.round(cworld, 2).tolist()} mm (voxel {np.round(cvox, 2).tolist()}) is "
                f"outside the image (shape {geo.shape})."
            )
        near = tuple(int(v) for v in np.clip(np.rint(cvox), 0, np.asarray(geo.shape) - 1))
        lung_crop = None
        plan = shape_plan(self.diameter_mm, self.irregularity, self.seed, geo.ndim)
        shell_mm = 3.0 + float(geo.spacing.max())
        box = crop_box(cvox, plan["extent"] + self.edge_mm + self.max_outside_mm + shell_mm, geo)
        if lung_mask is not None:
            lung_view = spatial_crop(lung_mask, box, "lung_mask", geo.shape)
            lung_crop = to_numpy(lung_view) != 0
            if not lung_crop[tuple(n - s.start for n, s in zip(near, box))]:
                raise ValueError(
                    f"{name}: nodule centre {np.round(cworld, 2).tolist()} mm (voxel {list(near)}) is outside the lung "
                    "mask; expected a centre inside the lung."
                )

        t = plain_array(img)
        view = t[(0,) + box]
        crop_native = to_numpy(view)
        crop = crop_native.astype(float)

        # the shape only matters within its extent + the soft edge: evaluate it on that inner box
        ibox = crop_box(cvox, plan["extent"] + self.edge_mm, geo)
        inner = tuple(slice(i.start - b.start, i.stop - b.start) for i, b in zip(ibox, box))
        s = np.full(crop.shape, -np.inf)
        s[inner] = shape_distance(offsets_mm(ibox, cvox, geo, np.float32), plan)
        w = np.clip(s / self.edge_mm + 0.5, 0.0, 1.0)
        outside_record = None
        if lung_crop is not None and self.confine_to_lung:
            w[~lung_crop] = 0.0
            if not lung_crop[inner].all():  # only the inner box can hold nodule voxels
                outside_record = _encode_outside_lung(ibox, ~lung_crop[inner])
        elif lung_crop is None and self.confine_to_lung and self.outside_lung is not None:
            w[inner][_decode_outside_lung(self.outside_lung, ibox, name)] = 0.0
            outside_record = self.outside_lung
        local_near = tuple(n - b.start for n, b in zip(near, box))
        if w[local_near] < 0.5:  # a tiny nodule between voxel centres still gets its nearest voxel
            w[local_near] = 0.5
        # one connected nodule: spicule pieces cut off by a coarse grid are left out
        # (the shape is -inf outside the inner box, so only that box can hold nodule voxels)
        comp, _ = ndimage.label(w[inner] >= 0.5)  # face-connected
        mask = np.zeros(w.shape, bool)
        mask[inner] = comp == comp[tuple(n - i.start for n, i in zip(local_near, inner))]
        w[(w >= 0.5) & ~mask] = 0.0
        near_mask, shell = fill_and_shell(mask, geo.spacing, self.max_outside_mm, shell_mm)
        w[~near_mask] = 0.0
        changed = w > 0

        # texture level of the lung around the nodule
        lungish = lung_crop if lung_crop is not None else crop < LUNG_HU
        shell &= lungish
        if self.texture_std is not None:
            tex = self.texture_std
        else:
            vals = crop[shell]
            if vals.size < 8:
                vals = crop[lungish & ~changed]
            tex = float(np.clip(robust_std(vals), 0.0, 150.0)) if vals.size >= 8 else 20.0

        cb = bounding_box(changed)  # noise and mixing on the changed voxels' bounding box only
        noise = correlated_noise(crop[cb].shape, geo.spacing, 1.0, self.seed)
        if self.nodule_type == "solid":
            target = self.solid_hu + tex * noise
        elif self.nodule_type == "ground-glass":
            target = self.ggo_hu + tex * noise
        else:
            core = np.clip((s[cb] - (1.0 - self.core_fraction) * plan["r"]) / self.edge_mm + 0.5, 0.0, 1.0)
            target = self.ggo_hu + core * (self.solid_hu - self.ggo_hu) + tex * noise
        new = crop[cb] + w[cb] * (target - crop[cb])
        write_region(view, changed, new[changed[cb]])

        label_value = self.label_value
        if label is not None:
            lab_view = spatial_crop(plain_array(label), box, "label", geo.shape)
            if label_value is None:
                label_value = _next_label(label)
            write_region(lab_view, mask, np.full(int(mask.sum()), float(label_value)))
        if nodule_mask is not None:
            nm_view = spatial_crop(plain_array(nodule_mask), box, "nodule_mask", geo.shape)
            write_region(nm_view, mask, np.ones(int(mask.sum())))

        voxel_mm3 = float(abs(np.linalg.det(geo.lin)))
        record = {
            "centre_mm": [float(c) for c in cworld],
            "centre_voxel": [float(c) for c in cvox],
            "frame": geo.frame,
            "diameter_mm": self.diameter_mm,
            "nodule_type": self.nodule_type,
            "irregularity": self.irregularity,
            "seed": self.seed,
            "solid_hu": self.solid_hu,
            "ggo_hu": self.ggo_hu,
            "core_fraction": self.core_fraction,
            "texture_std": self.texture_std,
            "texture_std_hu": tex,
            "edge_mm": self.edge_mm,
            "max_outside_mm": self.max_outside_mm,
            "extent_mm": float(plan["extent"]),
            "label_value": None if label_value is None else int(label_value),
            "voxels": int(mask.sum()),
            "volume_mm3": float(mask.sum()) * voxel_mm3,
            "changed_voxels": int(changed.sum()),
            "outside_lung": outside_record,
        }
        if isinstance(img, MetaTensor):
            img.meta["nodules"] = list(img.meta.get("nodules", [])) + [record]
        return img, record


def _meta_of(d: dict, key: Hashable, postfix: str) -> dict:
    """Where to record nodules for ``d[key]``: its MetaTensor meta, else ``d[f"{key}_{postfix}"]``."""
    img = d[key]
    if isinstance(img, MetaTensor):
        return img.meta
    meta_key = f"{key}_{postfix}"
    meta = dict(d.get(meta_key) or {})
    d[meta_key] = meta
    return meta


def append_record(d: dict, key: Hashable, postfix: str, record: dict, field: str = "nodules") -> None:
    """Append ``record`` to ``meta[field]`` of ``d[key]`` for plain arrays (in a new
    ``d[f"{key}_{postfix}"]`` dict, the input's meta dict is not changed); MetaTensors already have it."""
    img = d[key]
    if isinstance(img, MetaTensor):
        return  # NoduleInsert / NoduleErase already appended it
    meta = _meta_of(d, key, postfix)
    meta[field] = list(meta.get(field, [])) + [record]


def maybe_copy(d: dict, keys: Sequence[Hashable]) -> None:
    """Replace ``d[k]`` by a copy for every key of ``keys`` that is not ``None`` and is in ``d``."""
    for k in keys:
        if k is not None and k in d:
            v = d[k]
            d[k] = copy_image(v)


class NoduleInsertd(MapTransform):
    """Dictionary-based :class:`NoduleInsert`: one nodule with the given parameters into ``data[keys]``.

    Args:
        keys: image key(s) (CT in HU); the nodule goes into each.
        label_key: optional label map that gets ``label_value`` on the nodule mask.
        nodule_mask_key: optional nodule mask that gets 1 on the nodule mask; created (zeros, the image's
            spatial grid, uint8) when missing from the data.
        lung_key: optional lung mask: the centre must be inside it; voxels outside it stay untouched.
        meta_key_postfix: for plain arrays the record goes to ``data[f"{key}_{postfix}"]["nodules"]``
            (and the affine is read from there when ``pixdim`` is not given).
        copy: kept for compatibility: copy image/label/mask once (the default now, unless ``inplace=True``).
        inplace: write into the image, label and nodule mask arrays of ``data`` (no copies); default: they
            are copied once and the input arrays stay unchanged.
        other arguments: see :class:`NoduleInsert`.
    """

    backend = NoduleInsert.backend

    def __init__(
        self,
        keys: KeysCollection,
        centre: Sequence[float],
        diameter_mm: float,
        label_key: str | None = None,
        nodule_mask_key: str | None = None,
        lung_key: str | None = None,
        meta_key_postfix: str = "meta_dict",
        copy: bool = False,
        allow_missing_keys: bool = False,
        inplace: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        check_copy_args(copy, inplace)
        self.inserter = NoduleInsert(centre, diameter_mm, inplace=True, **kwargs)  # on the copies made here
        self.label_key, self.nodule_mask_key, self.lung_key = label_key, nodule_mask_key, lung_key
        self.meta_key_postfix = meta_key_postfix
        self.copy = copy
        self.inplace = inplace

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Insert the nodule into every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        if self.copy or not self.inplace:
            maybe_copy(d, [*self.key_iterator(d), self.label_key, self.nodule_mask_key])
        for key in self.key_iterator(d):
            _insert_into(d, key, self.inserter, self.label_key, self.nodule_mask_key, self.lung_key,
                         self.meta_key_postfix)
        return d


def _ensure_nodule_mask(d: dict, key: Hashable, nodule_mask_key: str | None) -> None:
    if nodule_mask_key is None or nodule_mask_key in d:
        return
    img = d[key]
    if isinstance(img, MetaTensor):  # the image's affine and meta data, so SaveImaged writes it on the same grid
        d[nodule_mask_key] = nodule_mask_like(img)
    elif isinstance(img, torch.Tensor):
        d[nodule_mask_key] = torch.zeros(tuple(img.shape), dtype=torch.uint8, device=img.device)
    else:
        d[nodule_mask_key] = np.zeros(tuple(img.shape), np.uint8)


def _insert_into(d: dict, key: Hashable, inserter: NoduleInsert, label_key, nodule_mask_key, lung_key,
                 postfix: str) -> dict:
    _ensure_nodule_mask(d, key, nodule_mask_key)
    geo = geometry_from_meta(d[key], d.get(f"{key}_{postfix}"), inserter.pixdim, f"{key!r}")
    img, record = inserter.insert(
        d[key], d.get(label_key) if label_key else None, d.get(lung_key) if lung_key else None,
        d.get(nodule_mask_key) if nodule_mask_key else None, geometry=geo, name=f"{key!r}",
    )
    d[key] = img
    append_record(d, key, postfix, record)
    return record


class RandNoduleInsert(RandomizableTransform):
    """With probability ``prob``, insert ``num_nodules`` random lung nodules into a CT in HU, (1, H, W, D) or
    (1, H, W). The parameters are sampled here and handed to :class:`NoduleInsert`, which paints them (the
    TorchIO pattern: a random transform draws the arguments of a deterministic one), and they are recorded
    so that ``NoduleInsert.from_record(record)`` replays each insertion exactly (given the same ``lung_mask``,
    which confines the nodule and sets its texture level): in the output's
    ``meta["nodules"]`` (MetaTensor input), in :attr:`last_records` and (as :class:`NoduleInsert` arguments)
    in :attr:`last_params`.

    Centre: uniformly among the voxels whose distance to the nearest non-lung voxel (or the image border)
    is at least radius + ``margin_mm``. The distance transform runs on the lung mask subsampled to about
    ``sample_grid_mm`` (cheap for 512^3 volumes); the lung mask is the ``lung_mask`` argument, or
    :func:`~monai_ext.transforms.nodule_geometry.lung_mask_from_hu` of the subsampled image when none is
    given. Diameter: uniform in ``diameter_range`` (mm), capped by the largest one that fits.
    Type / shape: drawn with ``type_weights`` / ``irregularity_weights``. Intensities: uniform in
    ``solid_hu_range`` / ``ggo_hu_range`` (HU); part-solid core fraction in ``core_fraction_range``.
    Later nodules keep ``margin_mm`` away from earlier ones.

    Args:
        prob: probability of inserting nodules at all.
        num_nodules: number of nodules, or a range ``(low, high)`` (inclusive) drawn uniformly.
        diameter_range: nodule diameters (mm), within 3-30 mm.
        types, type_weights: nodule types (see :data:`NODULE_TYPES`) and their relative weights (``None``: equal).
        irregularities, irregularity_weights: shapes (see :data:`NODULE_SHAPES`) and their weights.
        margin_mm: smallest distance of a nodule surface to the pleura and to the other nodules (mm).
        solid_hu_range, ggo_hu_range: intensity ranges of the solid and ground-glass components (HU).
        core_fraction_range: part-solid nodules: solid core radius / nodule radius.
        sample_grid_mm: grid spacing (mm) on which the centre candidates are found.
        label_value, pixdim, edge_mm, max_outside_mm: passed to :class:`NoduleInsert`.
        inplace: paint into ``img`` itself; default: into a copy (made once), ``img`` is left unchanged.

    Call ``t(img, label=None, lung_mask=None, nodule_mask=None, randomize=True)`` (arguments as for
    :class:`NoduleInsert`; ``label`` / ``nodule_mask`` are outputs written in place); returns the image.
    ``randomize=False`` re-applies :attr:`last_params`. :meth:`insert` also returns the records.

    Raises ``ValueError`` when no lung position leaves room for a ``diameter_range[0]`` nodule.
    Deterministic under ``set_random_state``.
    """

    backend = NoduleInsert.backend

    def __init__(
        self,
        prob: float = 1.0,
        num_nodules: int | Sequence[int] = 1,
        diameter_range: Sequence[float] = DIAMETER_RANGE_MM,
        types: Sequence[str] = NODULE_TYPES,
        type_weights: Sequence[float] | None = None,
        irregularities: Sequence[str] = NODULE_SHAPES,
        irregularity_weights: Sequence[float] | None = None,
        margin_mm: float = 3.0,
        solid_hu_range: Sequence[float] = (-20.0, 80.0),
        ggo_hu_range: Sequence[float] = (-700.0, -400.0),
        core_fraction_range: Sequence[float] = (0.3, 0.6),
        sample_grid_mm: float = 4.0,
        label_value: int | None = None,
        pixdim: Sequence[float] | float | None = None,
        edge_mm: float = 1.0,
        max_outside_mm: float = 1.5,
        inplace: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        lo, hi = float(diameter_range[0]), float(diameter_range[1])
        if not DIAMETER_RANGE_MM[0] <= lo <= hi <= DIAMETER_RANGE_MM[1]:
            raise ValueError(f"diameter_range={tuple(diameter_range)}: expected within {DIAMETER_RANGE_MM} mm, low <= high.")
        for t in types:
            if t not in NODULE_TYPES:
                raise ValueError(f"types: {t!r} is not one of {NODULE_TYPES}.")
        for t in irregularities:
            if t not in NODULE_SHAPES:
                raise ValueError(f"irregularities: {t!r} is not one of {NODULE_SHAPES}.")
        n = (num_nodules, num_nodules) if isinstance(num_nodules, int) else tuple(num_nodules)
        self.num_nodules = (int(n[0]), int(n[1]))
        self.diameter_range = (lo, hi)
        self.types, self.type_weights = tuple(types), type_weights
        self.irregularities, self.irregularity_weights = tuple(irregularities), irregularity_weights
        self.margin_mm = float(margin_mm)
        self.solid_hu_range, self.ggo_hu_range = tuple(solid_hu_range), tuple(ggo_hu_range)
        self.core_fraction_range = tuple(core_fraction_range)
        self.sample_grid_mm = float(sample_grid_mm)
        self.label_value = label_value
        self.pixdim = pixdim
        self.edge_mm, self.max_outside_mm = edge_mm, max_outside_mm
        self.inplace = inplace
        self.last_params: list[dict[str, Any]] = []
        self.last_records: list[dict[str, Any]] = []

    def _choice(self, options: Sequence[str], weights: Sequence[float] | None) -> str:
        p = None if weights is None else np.asarray(weights, float) / float(np.sum(weights))
        return str(options[int(self.R.choice(len(options), p=p))])

    def _clearance(
        self, img: NdarrayOrTensor, lung_mask: NdarrayOrTensor | None, geo: NoduleGeometry
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distance (mm) to the pleura on the subsampled grid, its stride and its spacing (mm)."""
        stride = np.maximum(np.floor(self.sample_grid_mm / geo.spacing), 1).astype(int)
        sl = tuple(slice(None, None, int(s)) for s in stride)
        if lung_mask is not None:
            lung = lung_mask
            lung_ds = to_numpy(lung[(0,) + sl] if lung.ndim == geo.ndim + 1 else lung[sl]) != 0
        else:
            img_ds = to_numpy(plain_array(img)[(0,) + sl])[None]
            lung_ds = lung_mask_from_hu(img_ds, pixdim=geo.spacing * stride)
        ds_spacing = geo.spacing * stride
        dist = ndimage.distance_transform_edt(np.pad(lung_ds, 1), sampling=ds_spacing)
        dist = dist[tuple(slice(1, -1) for _ in range(geo.ndim))]
        slack = 0.5 * float(np.linalg.norm(geo.spacing * (stride - 1)))
        return np.maximum(dist - slack, 0.0) * lung_ds, stride, ds_spacing

    def sample_params(
        self,
        img: NdarrayOrTensor,
        lung_mask: NdarrayOrTensor | None = None,
        geometry: NoduleGeometry | None = None,
        name: str = "image",
    ) -> list[dict[str, Any]]:
        """Draw the number of nodules and each one's :class:`NoduleInsert` arguments (centre in world mm,
        ``diameter_mm``, type, shape, seed, intensities, ...) for ``img`` (not changed), with ``self.R``.
        Does not draw ``prob`` (that is :meth:`randomize`)."""
        geo = geometry if geometry is not None else image_geometry(img, self.pixdim, name)
        clearance, stride, ds_spacing = self._clearance(img, lung_mask, geo)
        count = int(self.R.randint(self.num_nodules[0], self.num_nodules[1] + 1))
        params = []
        for _ in range(count):
            room = 2.0 * (float(clearance.max()) - self.margin_mm)
            lo, hi = self.diameter_range
            if room < lo:
                if not clearance.any():
                    source = "the lung mask given" if lung_mask is not None else (
                        "the lung mask found from HU (lung_mask_from_hu; it finds none e.g. when the lungs touch the "
                        "image border); pass a lung mask (lung_mask=, or lung_key= for RandNoduleInsertd)"
                    )
                    raise ValueError(f"{name}: no lung at all in {source}: no place to insert a nodule.")
                raise ValueError(
                    f"{name}: no lung position leaves room for a {lo:g} mm nodule {self.margin_mm:g} mm away from "
                    f"the pleura (largest clearance {float(clearance.max()):.1f} mm on a {self.sample_grid_mm:g} mm grid)."
                )
            diameter = float(self.R.uniform(lo, min(hi, room)))
            cand = np.flatnonzero(clearance.ravel() >= diameter / 2.0 + self.margin_mm)
            ds_idx = np.asarray(np.unravel_index(int(cand[self.R.randint(len(cand))]), clearance.shape), float)
            vox = ds_idx * stride + self.R.uniform(-0.49, 0.49, size=geo.ndim)
            vox = np.clip(vox, 0, np.asarray(geo.shape) - 1)
            nodule_type = self._choice(self.types, self.type_weights)
            params.append(dict(
                centre=[float(c) for c in geo.to_world(vox)],
                diameter_mm=diameter,
                nodule_type=nodule_type,
                irregularity=self._choice(self.irregularities, self.irregularity_weights),
                seed=int(self.R.randint(0, 2**31 - 1)),
                solid_hu=float(self.R.uniform(*self.solid_hu_range)),
                ggo_hu=float(self.R.uniform(*self.ggo_hu_range)),
                core_fraction=float(self.R.uniform(*self.core_fraction_range)),
                edge_mm=self.edge_mm,
                max_outside_mm=self.max_outside_mm,
                pixdim=self.pixdim,
                label_value=self.label_value,
            ))
            # keep later nodules away from this one
            ds_centre = vox / stride
            grids = np.meshgrid(*[np.arange(n) for n in clearance.shape], indexing="ij", sparse=True)
            dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, ds_centre, ds_spacing))
            clearance = np.minimum(clearance, np.maximum(np.sqrt(dist2) - diameter / 2.0 - self.margin_mm, 0.0))
        return params

    @staticmethod
    def inserter_for(params: Mapping[str, Any]) -> NoduleInsert:
        """The :class:`NoduleInsert` of one sampled parameter set (HU already checked; writes in place)."""
        return NoduleInsert(**params, check_hu=False, inplace=True)

    def __call__(
        self,
        img: NdarrayOrTensor,
        label: NdarrayOrTensor | None = None,
        lung_mask: NdarrayOrTensor | None = None,
        nodule_mask: NdarrayOrTensor | None = None,
        randomize: bool = True,
    ) -> NdarrayOrTensor:
        """Insert random nodules; returns the image (see the class docstring)."""
        return self.insert(img, label, lung_mask, nodule_mask, randomize=randomize)[0]

    def insert(
        self,
        img: NdarrayOrTensor,
        label: NdarrayOrTensor | None = None,
        lung_mask: NdarrayOrTensor | None = None,
        nodule_mask: NdarrayOrTensor | None = None,
        geometry: NoduleGeometry | None = None,
        name: str = "image",
        randomize: bool = True,
    ) -> tuple[NdarrayOrTensor, list[dict[str, Any]]]:
        """Insert random nodules; returns ``(image, records)``, one :class:`NoduleInsert` record per nodule
        (an empty list, and ``img`` itself, when not applied)."""
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            self.last_records = []
            return img, []
        geo = geometry if geometry is not None else image_geometry(img, self.pixdim, name)
        check_hu_range(img, name)
        if not self.inplace:
            img = copy_image(img)
        if randomize:
            self.last_params = self.sample_params(img, lung_mask, geo, name)
        records = []
        for params in self.last_params:
            img, record = self.inserter_for(params).insert(img, label, lung_mask, nodule_mask, geometry=geo, name=name)
            records.append(record)
        self.last_records = records
        return img, records


class RandNoduleInsertd(RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandNoduleInsert`: insert ``num_nodules`` random lung nodules into every
    ``keys`` image (the same nodules in each); the parameters are sampled by :class:`RandNoduleInsert` (from
    the first key's image, and ``data[lung_key]`` when given) and applied by :class:`NoduleInsert`, and
    recorded in ``meta["nodules"]`` so ``NoduleInsert.from_record`` replays them.

    Args:
        keys: image key(s) (CT in HU).
        label_key, nodule_mask_key, lung_key, meta_key_postfix: see :class:`NoduleInsertd`.
        copy: kept for compatibility: copy image/label/mask once (the default now, unless ``inplace=True``).
        inplace: write into the image, label and nodule mask arrays of ``data``; default: copies (made once).
        other arguments: see :class:`RandNoduleInsert`.

    Raises ``ValueError`` when no lung position leaves room for a ``diameter_range[0]`` nodule.
    Deterministic under ``set_random_state``.
    """

    backend = RandNoduleInsert.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str | None = None,
        nodule_mask_key: str | None = None,
        lung_key: str | None = None,
        prob: float = 1.0,
        num_nodules: int | Sequence[int] = 1,
        diameter_range: Sequence[float] = DIAMETER_RANGE_MM,
        types: Sequence[str] = NODULE_TYPES,
        type_weights: Sequence[float] | None = None,
        irregularities: Sequence[str] = NODULE_SHAPES,
        irregularity_weights: Sequence[float] | None = None,
        margin_mm: float = 3.0,
        solid_hu_range: Sequence[float] = (-20.0, 80.0),
        ggo_hu_range: Sequence[float] = (-700.0, -400.0),
        core_fraction_range: Sequence[float] = (0.3, 0.6),
        sample_grid_mm: float = 4.0,
        label_value: int | None = None,
        pixdim: Sequence[float] | float | None = None,
        edge_mm: float = 1.0,
        max_outside_mm: float = 1.5,
        meta_key_postfix: str = "meta_dict",
        copy: bool = False,
        allow_missing_keys: bool = False,
        inplace: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        check_copy_args(copy, inplace)
        self.rand_insert = RandNoduleInsert(
            prob, num_nodules, diameter_range, types, type_weights, irregularities, irregularity_weights, margin_mm,
            solid_hu_range, ggo_hu_range, core_fraction_range, sample_grid_mm, label_value, pixdim, edge_mm,
            max_outside_mm, inplace=True,  # on the copies made here
        )
        self.label_key, self.nodule_mask_key, self.lung_key = label_key, nodule_mask_key, lung_key
        self.pixdim = pixdim
        self.meta_key_postfix = meta_key_postfix
        self.copy = copy
        self.inplace = inplace

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandNoduleInsertd:
        """Seed this transform and its :class:`RandNoduleInsert` (which draws every random number)."""
        super().set_random_state(seed, state)
        self.rand_insert.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw whether to insert nodules (with probability ``prob``)."""
        self.rand_insert.randomize(None)
        self._do_transform = self.rand_insert._do_transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Insert random nodules into every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        first = keys[0]
        geo = geometry_from_meta(d[first], d.get(f"{first}_{self.meta_key_postfix}"), self.pixdim, f"{first!r}")
        check_hu_range(d[first], f"{first!r}")
        if self.copy or not self.inplace:
            maybe_copy(d, [*keys, self.label_key, self.nodule_mask_key])
        if self.lung_key is not None and self.lung_key not in d:
            raise ValueError(f"lung_key {self.lung_key!r} is missing from the data.")
        lung = d[self.lung_key] if self.lung_key is not None else None
        params = self.rand_insert.sample_params(d[first], lung, geo, f"{first!r}")
        self.rand_insert.last_params = params
        for p in params:
            inserter = self.rand_insert.inserter_for(p)
            for key in keys:
                _insert_into(d, key, inserter, self.label_key, self.nodule_mask_key, self.lung_key, self.meta_key_postfix)
        return d


NoduleInsertD = NoduleInsertDict = NoduleInsertd
RandNoduleInsertD = RandNoduleInsertDict = RandNoduleInsertd
