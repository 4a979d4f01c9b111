"""Ultrasound style-transfer augmentation with a trained variational style-transfer model.

Hung & Galeotti, "Ultrasound Variational Style Transfer to Generate Images Beyond the Observed Domain"
(DGM4MICCAI 2021): restyling labelled images of one domain into another (or into styles sampled from the
latent space) is an augmentation that keeps the anatomy, so the labels stay valid.

- :class:`StyleTransfer` / :class:`StyleTransferd`: deterministic: restyle with given parameters (style
  source, latent seed, spread, reference image). Replays any augmentation from its recorded parameters.
- :class:`RandStyleTransfer` / :class:`RandStyleTransferd`: with probability ``prob``, sample the parameters
  (prior or reference style, which reference, latent seed, spread) and hand them to :class:`StyleTransfer`.
  The parameters are recorded in ``img.meta["style_transfer"]`` (MetaTensor input) and in
  :attr:`RandStyleTransfer.last_params`. Only the image keys change: labels are untouched.
- :class:`StyleInterpolate` / :class:`StyleInterpolated`: restyle with ``(1 - t) mu_a + t mu_b``, the latent
  means of two style images (``t`` outside [0, 1] extrapolates).

Style sources: ``"prior"``: ``z ~ N(0, spread^2 I)`` (``spread > 1``: beyond the observed styles);
``"reference"``: ``z = mu + spread * sigma * eps`` from ``q(z | style image)`` (``spread = 1``: a posterior
draw, 0: its mean); ``"mean"``: ``z = 0``.

The model (a :class:`~monai_ext.apps.us_variational_style_transfer.USVariationalStyleTransfer`, or a path to a checkpoint, a ``models/``
folder or a bundle folder) is loaded lazily, once per process: the transforms pickle without it, so they
work in ``DataLoader`` workers. Inside a worker the model runs on the CPU; in the main process on the GPU
when one is available. Batches (B, C, H, W) are restyled in one forward pass (e.g. on the GPU after
collation). Images must be (C, H, W) (or (B, C, H, W)) in [0, 1] with the model's channel count. Every image
is restyled with a mirrored margin of ``size_divisor // 2`` pixels (and padded up to a multiple of the model's
``size_divisor``), cropped back afterwards: without the margin the decoder adds a bright line along the last
column (shipped model; cause not known).
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from ...datalists.ultrasound import is_image_file
from ...io import atomic_write, is_dicom_file
from ...transforms.load_ultrasound import LoadUltrasound
from .networks import load_us_style_transfer, resolve_model_file

__all__ = [
    "StyleTransfer",
    "StyleTransferd",
    "StyleTransferD",
    "StyleTransferDict",
    "RandStyleTransfer",
    "RandStyleTransferd",
    "RandStyleTransferD",
    "RandStyleTransferDict",
    "StyleInterpolate",
    "StyleInterpolated",
    "StyleInterpolateD",
    "StyleInterpolateDict",
    "restyle_images",
    "style_fewshot_datalist",
]

PathLike = Union[str, "os.PathLike[str]"]
ModelSource = Union[PathLike, torch.nn.Module]
StyleImage = Union[PathLike, np.ndarray, torch.Tensor]
_SOURCES = ("prior", "reference", "mean")
_RANGE_TOL = 1e-3


def _auto_device(device: str | torch.device | None) -> torch.device:
    if device is not None and str(device) != "auto":
        return torch.device(device)
    in_worker = torch.utils.data.get_worker_info() is not None
    return torch.device("cuda" if torch.cuda.is_available() and not in_worker else "cpu")


class _ModelHandle:
    """A model given as a module or a path, loaded on first use; style encodings of reference images cached.

    Pickles without the loaded model (a path is re-loaded in each worker) and without the caches."""

    def __init__(self, model: ModelSource, device: str | torch.device | None = None,
                 style_images: Sequence[StyleImage] | None = None):
        if not isinstance(model, (str, os.PathLike, torch.nn.Module)):
            raise TypeError(f"model must be a USVariationalStyleTransfer module or a path, got {type(model).__name__}.")
        if isinstance(model, (str, os.PathLike)):

            resolve_model_file(model)  # fail now, naming the path, rather than in a worker
        self.source = model
        self.device_arg = device
        self.style_images = list(style_images) if style_images is not None else []
        self._model: torch.nn.Module | None = None
        self._device: torch.device | None = None
        self._style_cache: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not isinstance(self.source, torch.nn.Module):
            state["_model"] = None
        state["_device"] = None
        state["_style_cache"] = {}
        return state

    @property
    def model(self) -> torch.nn.Module:
        dev = _auto_device(self.device_arg)
        if self._model is None:
            if isinstance(self.source, torch.nn.Module):
                self._model = self.source
            else:

                self._model = load_us_style_transfer(self.source, map_location="cpu")
            for attr in ("encode_content", "encode_style", "decode", "latent_dims"):
                if not hasattr(self._model, attr):
                    raise TypeError(
                        f"model {type(self._model).__name__} lacks '{attr}'; expected a USVariationalStyleTransfer."
                    )
        if self._device != dev:
            self._model = self._model.to(dev).eval()
            self._device = dev
            self._style_cache = {}
        return self._model

    @property
    def device(self) -> torch.device:
        self.model  # noqa: B018 - resolves the device
        assert self._device is not None
        return self._device

    def check(self, x: torch.Tensor, name: str) -> None:
        model = self.model
        sd = int(getattr(model, "spatial_dims", 2))
        c = int(getattr(model, "in_channels", 1))
        if x.dim() != sd + 2:
            raise ValueError(
                f"{name}: expected a channel-first {sd}D image (C, H, W) or batch (B, C, H, W), got shape "
                f"{tuple(x.shape)[1:] if x.shape[0] == 1 else tuple(x.shape)}."
            )
        if x.shape[1] != c:
            raise ValueError(
                f"{name}: expected {c} channel(s) (grey B-mode, channel first), got {x.shape[1]} in shape "
                f"{tuple(x.shape)}; convert colour to grey first (LoadUltrasound does)."
            )
        lo, hi = float(x.min()), float(x.max())
        if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL or not np.isfinite([lo, hi]).all():
            raise ValueError(f"{name}: values must lie in [0, 1] (LoadUltrasound scaling), got [{lo:.4g}, {hi:.4g}].")

    def style_tensor(self, image: StyleImage, name: str) -> torch.Tensor:
        if isinstance(image, (str, os.PathLike)):

            if not Path(image).is_file():
                raise FileNotFoundError(f"{name}: style image {image} not found.")
            image = LoadUltrasound()(image)
        t = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image).float()
        t = t.as_tensor() if isinstance(t, MetaTensor) else t
        sd = int(getattr(self.model, "spatial_dims", 2))
        if t.dim() == sd:
            raise ValueError(f"{name}: expected a channel-first style image (C, H, W), got shape {tuple(t.shape)}.")
        x = t[None] if t.dim() == sd + 1 else t
        self.check(x, name)
        return x.to(self.device)

    def encode_style(self, image: StyleImage, name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = _pad_to(self.style_tensor(image, name), int(getattr(self.model, "size_divisor", 1)))
        with torch.no_grad():
            return self.model.encode_style(x)

    def reference(self, index: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if not self.style_images:
            raise ValueError("source 'reference' needs style images: pass style_images=[...] or a style image.")
        if not 0 <= int(index) < len(self.style_images):
            raise IndexError(f"style_index {index} out of range for {len(self.style_images)} style images.")
        self.model  # noqa: B018 - resets the cache if the device changed
        if index not in self._style_cache:
            self._style_cache[index] = self.encode_style(self.style_images[index], f"style_images[{index}]")
        return self._style_cache[index]


def _pad_to(x: torch.Tensor, divisor: int) -> torch.Tensor:
    """Pad the spatial dims of (B, C, *spatial) at their end to multiples of ``divisor`` (edge values)."""
    pads = [(-s) % divisor for s in x.shape[2:]]
    if not any(pads):
        return x
    pad_arg: list[int] = []
    for p in reversed(pads):
        pad_arg += [0, p]
    return F.pad(x, pad_arg, mode="replicate")


def _pad_for_restyle(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, list[int]]:
    """Mirror a margin of ``divisor // 2`` (at most ``size - 1``) around the spatial dims of (B, C, *spatial),
    then :func:`_pad_to`; returns the padded tensor and the margins. The margin keeps a border artifact of the
    trained decoder off the image (the shipped model brightens the last column by about 0.09 on average, the
    other borders not; the cause is not known)."""
    margins = [min(divisor // 2, s - 1) for s in x.shape[2:]]
    if any(margins):
        x = F.pad(x, [m for m in reversed(margins) for _ in range(2)], mode="reflect")
    return _pad_to(x, divisor), margins


def _as_batch(img: Any, handle: _ModelHandle, name: str) -> tuple[torch.Tensor, bool]:
    t = torch.as_tensor(img) if not isinstance(img, torch.Tensor) else img
    t = t.as_tensor() if isinstance(t, MetaTensor) else t
    sd = int(getattr(handle.model, "spatial_dims", 2))
    single = t.dim() == sd + 1
    if t.dim() == sd:
        raise ValueError(f"{name}: expected a channel-first image (C, H, W), got shape {tuple(t.shape)} (no channel).")
    x = t[None] if single else t
    handle.check(x, name)
    return x, single


def _codes_for(handle: _ModelHandle, params: Mapping[str, Any], style_image: StyleImage | None) -> list[torch.Tensor]:
    model = handle.model
    source = params.get("source", "prior")
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {_SOURCES}, got {source!r}.")
    gen = torch.Generator().manual_seed(int(params.get("seed", 0)))
    spread = float(params.get("spread", 1.0))
    if spread < 0:
        raise ValueError(f"spread must be >= 0, got {spread}.")
    dev = handle.device
    if source == "mean":
        return [torch.zeros(1, d, device=dev) for d in model.latent_dims]
    if source == "prior":
        return [(torch.randn(1, d, generator=gen) * spread).to(dev) for d in model.latent_dims]
    if style_image is not None:
        mus, logvars = handle.encode_style(style_image, "style_image")
    else:
        mus, logvars = handle.reference(int(params.get("style_index", 0)))
    return [
        mu + spread * torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=gen).to(dev) for mu, lv in zip(mus, logvars)
    ]


def _restyle(handle: _ModelHandle, x: torch.Tensor, codes_per_sample: list[list[torch.Tensor]],
             seeds: Sequence[int] | None = None) -> torch.Tensor:
    """One forward pass for the batch ``x`` (B, C, *spatial); returns a tensor on ``x``'s device and dtype.
    ``seeds``: one per image, for the decoder noise of a model trained with it (default 0 for every image)."""
    model = handle.model
    xin, margins = _pad_for_restyle(x.to(handle.device, torch.float32), int(getattr(model, "size_divisor", 1)))
    codes = [torch.cat([c[k] for c in codes_per_sample], dim=0) for k in range(len(codes_per_sample[0]))]
    with torch.no_grad():
        feats = model.encode_content(xin)
        noise = None
        if getattr(model, "noise", False):
            noise = model.draw_noise(feats, list(seeds) if seeds is not None else [0] * x.shape[0])
        out = model.decode(feats, codes, noise)
    out = out[(slice(None), slice(None)) + tuple(slice(m, m + s) for m, s in zip(margins, x.shape[2:]))]
    return out.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)


def _output_like(out: torch.Tensor, img: Any, single: bool, params: Any) -> Any:
    res = out[0] if single else out
    if isinstance(img, MetaTensor):
        res = MetaTensor(res, meta=dict(img.meta), applied_operations=list(img.applied_operations))
        res.meta["style_transfer"] = params
        return res
    return convert_to_dst_type(res, img)[0]


class StyleTransfer(Transform):
    """Restyle an image with given parameters (deterministic).

    Args:
        model: a trained :class:`~monai_ext.apps.us_variational_style_transfer.USVariationalStyleTransfer`, or the path of its checkpoint,
            of a bundle's ``models/`` folder or of a bundle folder.
        style_images: reference style images (file paths, or (C, H, W) arrays in [0, 1]) selected by
            ``style_index``.
        device: ``None``/``"auto"``: the GPU when available (CPU inside DataLoader workers).

    ``__call__(img, source="prior", seed=0, spread=1.0, style_index=0, style_image=None)``: ``img`` (C, H, W) or
    (B, C, H, W) in [0, 1]; returns the same type and shape; a batch uses the same parameters for every
    image, each with its own draw.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, model: ModelSource, style_images: Sequence[StyleImage] | None = None,
                 device: str | torch.device | None = None):
        self.handle = _ModelHandle(model, device, style_images)

    def params(self, source: str = "prior", seed: int = 0, spread: float = 1.0, style_index: int = 0) -> dict[str, Any]:
        """The parameter record of a call (``applied``, ``source``, ``seed``, ``spread``, ``style_index``), as
        stored in ``img.meta["style_transfer"]``."""
        return {"applied": True, "source": str(source), "seed": int(seed), "spread": float(spread),
                "style_index": int(style_index)}

    def __call__(self, img: Any, source: str = "prior", seed: int = 0, spread: float = 1.0, style_index: int = 0,
                 style_image: StyleImage | None = None) -> Any:
        """Restyle ``img`` (C, H, W) or (B, C, H, W) in [0, 1]; returns the same type and shape."""
        x, single = _as_batch(img, self.handle, "image")
        params = self.params(source, seed, spread, style_index)
        seeds = [int(seed) + 7919 * i for i in range(x.shape[0])]  # image i of a batch: its own style draw and noise
        codes = [_codes_for(self.handle, {**params, "seed": s}, style_image) for s in seeds]
        return _output_like(_restyle(self.handle, x, codes, seeds), img, single, params)


class StyleTransferd(MapTransform):
    """Dictionary-based :class:`StyleTransfer`; ``style_key`` (optional) names an entry holding the reference
    style image of each item. Keys not listed (labels) are untouched."""

    backend = StyleTransfer.backend

    def __init__(self, keys: KeysCollection, model: ModelSource, source: str = "prior", seed: int = 0,
                 spread: float = 1.0, style_index: int = 0, style_images: Sequence[StyleImage] | None = None,
                 style_key: str | None = None, device: str | torch.device | None = None,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.transform = StyleTransfer(model, style_images, device)
        self.kwargs = {"source": source, "seed": seed, "spread": spread, "style_index": style_index}
        self.style_key = style_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Restyle every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        style = d[self.style_key] if self.style_key is not None else None
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], style_image=style, **self.kwargs)
        return d


def _spread_range(spread: float | Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(spread), float(spread)) if np.isscalar(spread) else tuple(float(s) for s in spread)  # type: ignore
    if lo < 0 or hi < lo:
        raise ValueError(f"spread must be a float >= 0 or a range (lo, hi) with 0 <= lo <= hi, got {spread!r}.")
    return lo, hi


class RandStyleTransfer(RandomizableTransform):
    """With probability ``prob``, restyle the image with a style sampled from the latent space or taken from
    a reference image (Hung & Galeotti 2021).

    Args:
        model: trained model or path (see :class:`StyleTransfer`).
        prob: probability of restyling an image.
        style_images: reference style images (file paths or (C, H, W) arrays); e.g. the few images of the
            target domain.
        prior_prob: probability of sampling the style from the prior rather than from a reference image
            (default: 1 without style images, 0.25 with).
        spread: prior scale (``N(0, spread^2 I)``) / posterior scale (``mu + spread * sigma * eps``); a float or a
            range ``(lo, hi)`` sampled uniformly. ``> 1`` reaches styles beyond the observed ones.
        device: see :class:`StyleTransfer`.

    Sampled parameters: ``applied``, ``source``, ``style_index``, ``seed``, ``spread``; recorded in
    ``img.meta["style_transfer"]`` for MetaTensor input and in :attr:`last_params`; replay with
    ``StyleTransfer(model, style_images)(img, **params)``. A batch (B, C, H, W) gets parameters per image and
    is restyled in one forward pass.
    """

    backend = StyleTransfer.backend

    def __init__(self, model: ModelSource, prob: float = 0.5, style_images: Sequence[StyleImage] | None = None,
                 prior_prob: float | None = None, spread: float | Sequence[float] = 1.0,
                 device: str | torch.device | None = None):
        RandomizableTransform.__init__(self, prob)
        self.transform = StyleTransfer(model, style_images, device)
        n_styles = len(self.transform.handle.style_images)
        self.prior_prob = (1.0 if n_styles == 0 else 0.25) if prior_prob is None else float(prior_prob)
        if not 0.0 <= self.prior_prob <= 1.0:
            raise ValueError(f"prior_prob must be in [0, 1], got {prior_prob}.")
        if self.prior_prob < 1.0 and n_styles == 0:
            raise ValueError("prior_prob < 1 samples reference styles: give style_images.")
        self.spread = _spread_range(spread)
        self.last_params: Any = None

    def sample_params(self) -> dict[str, Any]:
        """Draw one parameter set (``applied`` with probability ``prob``)."""
        applied = bool(self.R.rand() < self.prob)
        source = "prior" if self.R.rand() < self.prior_prob else "reference"
        n = len(self.transform.handle.style_images)
        index = int(self.R.randint(n)) if (source == "reference" and n) else -1
        seed = int(self.R.randint(0, 2**31 - 1))
        spread = float(self.R.uniform(*self.spread)) if self.spread[1] > self.spread[0] else self.spread[0]
        return {"applied": applied, "source": source, "seed": seed, "spread": spread, "style_index": index}

    def randomize(self, data: Any = None) -> None:
        """Draw a parameter set into :attr:`last_params` (``data`` is ignored)."""
        self.last_params = self.sample_params()
        self._do_transform = self.last_params["applied"]

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        """Restyle ``img`` with probability ``prob``; ``randomize=False`` re-uses :attr:`last_params`."""
        handle = self.transform.handle
        x, single = _as_batch(img, handle, "image")
        if single:
            if randomize:
                self.randomize()
            params_list = [self.last_params]
        else:
            params_list = [self.sample_params() for _ in range(x.shape[0])] if randomize else list(self.last_params)
            self.last_params = params_list
        applied = [i for i, p in enumerate(params_list) if p["applied"]]
        out = x.clone()
        if applied:
            codes = [_codes_for(handle, params_list[i], None) for i in applied]
            seeds = [int(params_list[i]["seed"]) for i in applied]
            out[applied] = _restyle(handle, x[applied], codes, seeds).to(out.dtype)
        record = params_list[0] if single else params_list
        return _output_like(out, img, single, record)


class RandStyleTransferd(RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandStyleTransfer`: the image ``keys`` are restyled with one sampled parameter
    set per item; every other key (the label) is untouched.

    Args:
        keys: image keys.
        model, prob, style_images, prior_prob, spread, device: see :class:`RandStyleTransfer`.
        params_key: also store the sampled parameters in ``data[params_key]`` (``None``: only in the meta data).
    """

    backend = StyleTransfer.backend

    def __init__(self, keys: KeysCollection, model: ModelSource, prob: float = 0.5,
                 style_images: Sequence[StyleImage] | None = None, prior_prob: float | None = None,
                 spread: float | Sequence[float] = 1.0, device: str | torch.device | None = None,
                 params_key: str | None = None, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandStyleTransfer(model, prob, style_images, prior_prob, spread, device)
        self.params_key = params_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed this transform and its :class:`RandStyleTransfer` (which draws the parameters)."""
        super().set_random_state(seed, state)
        self.rand.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw one parameter set for the item (``data`` is ignored)."""
        self.rand.randomize()
        self._do_transform = self.rand.last_params["applied"]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Restyle every ``keys`` image of ``data`` with one sampled parameter set; returns a new dict."""
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            d[key] = self.rand(d[key], randomize=False)
        if self.params_key is not None:
            d[self.params_key] = dict(self.rand.last_params)
        return d


class StyleInterpolate(Transform):
    """Restyle with the interpolated style ``z_i = (1 - t) mu_i(style_a) + t mu_i(style_b)`` (Fig. 5 of the
    paper); ``t`` outside [0, 1] extrapolates beyond the two styles.

    Args:
        model: trained model or path (see :class:`StyleTransfer`).
        style_a, style_b: default style images (file paths or (C, H, W) arrays in [0, 1]).
        t: default interpolation weight.
        device: see :class:`StyleTransfer`.
    """

    backend = StyleTransfer.backend

    def __init__(self, model: ModelSource, style_a: StyleImage | None = None, style_b: StyleImage | None = None,
                 t: float = 0.5, device: str | torch.device | None = None):
        self.handle = _ModelHandle(model, device, [s for s in (style_a, style_b) if s is not None])
        self.has_defaults = style_a is not None and style_b is not None
        self.t = float(t)

    def __call__(self, img: Any, t: float | None = None, style_a: StyleImage | None = None,
                 style_b: StyleImage | None = None) -> Any:
        """Restyle ``img`` (C, H, W) or (B, C, H, W) with the interpolated style; ``t``, ``style_a`` and
        ``style_b`` override the defaults."""
        tt = self.t if t is None else float(t)
        x, single = _as_batch(img, self.handle, "image")
        if (style_a is None) != (style_b is None):
            raise ValueError("give both style_a and style_b, or neither (to use the defaults).")
        if style_a is None:
            if not self.has_defaults:
                raise ValueError("StyleInterpolate needs two style images: pass style_a and style_b.")
            (mu_a, _), (mu_b, _) = self.handle.reference(0), self.handle.reference(1)
        else:
            mu_a, _ = self.handle.encode_style(style_a, "style_a")
            mu_b, _ = self.handle.encode_style(style_b, "style_b")
        codes = [(1.0 - tt) * a + tt * b for a, b in zip(mu_a, mu_b)]
        out = _restyle(self.handle, x, [codes] * x.shape[0])
        return _output_like(out, img, single, {"applied": True, "source": "interpolate", "t": tt})


class StyleInterpolated(MapTransform):
    """Dictionary-based :class:`StyleInterpolate`; ``style_a_key`` / ``style_b_key`` (optional) name entries
    holding the two style images of each item. Other keys (labels) are untouched."""

    backend = StyleTransfer.backend

    def __init__(self, keys: KeysCollection, model: ModelSource, style_a: StyleImage | None = None,
                 style_b: StyleImage | None = None, t: float = 0.5, style_a_key: str | None = None,
                 style_b_key: str | None = None, device: str | torch.device | None = None,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.transform = StyleInterpolate(model, style_a, style_b, t, device)
        self.style_a_key, self.style_b_key = style_a_key, style_b_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Restyle every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        sa = d[self.style_a_key] if self.style_a_key else None
        sb = d[self.style_b_key] if self.style_b_key else None
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], style_a=sa, style_b=sb)
        return d


# ------------------------------------------------------------------------------------------ workflows


def _write_png(array01: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = Image.fromarray(np.rint(np.clip(array01, 0.0, 1.0) * 255.0).astype(np.uint8), mode="L")
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def restyle_images(
    model: ModelSource,
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    style_image: PathLike | None = None,
    num_samples: int = 1,
    spread: float = 1.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    image_size: Sequence[int] | None = None,
    crop_to_region: bool = False,
) -> list[str]:
    """Restyle image files (a file, a folder of images, or a list of files) and write 8-bit PNGs.

    With ``style_image``, styles are drawn from ``q(z | style image)`` (``spread`` scales sigma; 0: its mean);
    without, from the prior ``N(0, spread^2 I)``. Writes ``<stem>_style<k>.png`` (k < ``num_samples``) into
    ``output_dir`` (each file via a temporary sibling, then renamed) and ``restyle.json`` with the parameters
    of every output (replayable with :class:`StyleTransfer`). ``image_size`` (H, W): the size the model was
    trained at; each input (and the style image) is scaled to fit it with its aspect ratio kept (area
    interpolation), padded by edge replication, restyled, and the result is cut back and scaled to the input's
    own size, so every output has the size of its input. ``crop_to_region``: crop DICOM ultrasound to its
    tissue region first (``SequenceOfUltrasoundRegions``, see :class:`~monai_ext.transforms.LoadUltrasound`);
    the output then has the region's size. Returns the written paths.
    """

    if isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs).expanduser()
        if p.is_dir():

            files = sorted(f for f in p.iterdir() if is_image_file(f))
            if not files:
                raise FileNotFoundError(f"{p}: no image files (PNG, JPEG, BMP, TIFF, DICOM) to restyle.")
        elif p.is_file():
            files = [p]
        else:
            raise FileNotFoundError(f"input {p} not found: expected an image file or a folder of images.")
    else:
        files = [Path(f).expanduser() for f in inputs]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"input image(s) not found: {missing}")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    out_dir = Path(output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    transform = StyleTransfer(model, device=device)
    source = "reference" if style_image is not None else "prior"
    loader = LoadUltrasound(crop_to_region=bool(crop_to_region))

    def _load(path: Any, load: LoadUltrasound = loader) -> tuple[torch.Tensor, tuple[int, int], list[int]]:
        """The image fitted into ``image_size`` (aspect kept, edge-padded), its own size and the padding."""
        img = load(str(path)).as_tensor()
        size = (int(img.shape[-2]), int(img.shape[-1]))
        if image_size is None:
            return img, size, [0, 0, 0, 0]
        th, tw = (int(v) for v in image_size)
        scale = min(th / size[0], tw / size[1])
        fit = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        img = F.interpolate(img[None], size=fit, mode="area")
        pad = [(tw - fit[1]) // 2, tw - fit[1] - (tw - fit[1]) // 2, (th - fit[0]) // 2, th - fit[0] - (th - fit[0]) // 2]
        return F.pad(img, pad, mode="replicate")[0], size, pad

    def _back(out: torch.Tensor, size: tuple[int, int], pad: list[int]) -> torch.Tensor:
        h, w = out.shape[-2], out.shape[-1]
        out = out[..., pad[2]:h - pad[3], pad[0]:w - pad[1]]
        if tuple(out.shape[-2:]) != size:
            out = F.interpolate(out[None].float(), size=size, mode="bilinear", align_corners=False)[0]
        return out

    style = None
    if style_image is not None:
        if not Path(style_image).expanduser().is_file():
            raise FileNotFoundError(f"style_image {style_image} not found.")
        style_path = Path(style_image).expanduser()
        # the style reference is cropped to its tissue region only when it is a DICOM itself (a PNG has no regions)
        style_loader = loader if crop_to_region and is_dicom_file(style_path) else LoadUltrasound()
        style = _load(style_path, style_loader)[0]
    written, records = [], []
    for i, f in enumerate(files):
        img, size, pad = _load(f)
        for k in range(int(num_samples)):
            s = int(seed) + 1000 * i + k
            out = _back(torch.as_tensor(transform(img, source=source, seed=s, spread=spread, style_image=style)), size, pad)
            path = out_dir / f"{Path(f).stem}_style{k}.png"
            _write_png(np.asarray(out[0]), path)
            written.append(str(path))
            records.append({"input": str(f), "output": str(path), "source": source, "seed": s, "spread": float(spread),
                            "style_image": None if style_image is None else str(style_image)})
    meta_path = out_dir / "restyle.json"
    atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(records, indent=1)))
    return written


def style_fewshot_datalist(
    datalist: Mapping[str, Sequence[Mapping[str, Any]]],
    target_style: str,
    num_target: int = 4,
    other_styles: Sequence[str] | None = None,
    balance: bool = True,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Few-shot domain split of a multi-style data list (entries with ``"style"`` and ``"subject"``): the paper's
    experiment (few labelled images of the target domain, many of other domains).

    - ``"target_train"``: the ``target_style`` images of ``num_target`` training subjects (drawn with ``seed``);
    - ``"other_train"``: the ``other_styles`` (default: every other style) images of the remaining training
      subjects, so no anatomy is seen in both;
    - ``"training"``: both, with the target images repeated to about 1:1 when ``balance`` (as in the paper);
    - ``"validation"`` / ``"test"``: the ``target_style`` images of those splits.
    """
    train = [dict(e) for e in datalist.get("training", [])]
    styles = sorted({e.get("style") for e in train})
    if target_style not in styles:
        raise ValueError(f"target_style {target_style!r} not among the training styles {styles}.")
    subjects = sorted({e["subject"] for e in train if e.get("style") == target_style})
    if not 1 <= int(num_target) < len(subjects):
        raise ValueError(f"num_target must be in [1, {len(subjects) - 1}] ({len(subjects)} training subjects), got {num_target}.")
    rng = np.random.default_rng(int(seed))
    chosen = set(rng.choice(subjects, size=int(num_target), replace=False).tolist())
    others = set(other_styles) if other_styles is not None else set(styles) - {target_style}
    target_train = [e for e in train if e.get("style") == target_style and e["subject"] in chosen]
    other_train = [e for e in train if e.get("style") in others and e["subject"] not in chosen]
    training = list(other_train)
    if balance and target_train:
        reps = max(1, int(round(len(other_train) / len(target_train))))
        training += target_train * reps
    else:
        training += target_train
    return {
        "target_train": target_train,
        "other_train": other_train,
        "training": training,
        "validation": [dict(e) for e in datalist.get("validation", []) if e.get("style") == target_style],
        "test": [dict(e) for e in datalist.get("test", []) if e.get("style") == target_style],
    }


StyleTransferD = StyleTransferDict = StyleTransferd
RandStyleTransferD = RandStyleTransferDict = RandStyleTransferd
StyleInterpolateD = StyleInterpolateDict = StyleInterpolated
