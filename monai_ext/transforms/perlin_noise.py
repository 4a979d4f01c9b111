"""Perlin-noise intensity augmentation (fractal gradient noise added to the image), 2D and 3D.

Bae et al. (Sci. Rep. 2018, "A Perlin noise-based augmentation strategy for deep learning with small data
samples of HRCT images"), used for liver-tumour CT in paper 003 (``shared/seeds/003_lits_liver_tumor_unet.txt``,
Sect. 3.4), add smooth, spatially structured noise to the image instead of white noise.

- :func:`fractal_perlin_noise`: the noise field on a grid, in torch, values in [-1, 1] (peak |value| = 1);
- :class:`PerlinNoise` / :class:`PerlinNoised`: deterministic: add ``amplitude`` times that field, from
  recorded parameters (amplitude, octaves, persistence, lacunarity, scale, seed);
- :class:`RandPerlinNoise` / :class:`RandPerlinNoised`: with probability ``prob`` draw amplitude, scale and
  seed with ``self.R`` and apply :class:`PerlinNoise` (the random transform only draws the arguments of
  the deterministic one, so every augmentation replays from the record).

The applied parameters are appended to ``meta["perlin_noise"]`` (a list of dicts, one per application) of
a MetaTensor output (dictionary versions: in ``data[f"{key}_{meta_key_postfix}"]`` for plain arrays), and
kept in ``last_params``; ``PerlinNoise(**record)`` reproduces the output exactly.

How it is computed: the fractal sum of ``octaves`` Perlin noises, octave ``o`` having lattice cells of
``scale / lacunarity**o`` voxels, random unit gradients at the lattice nodes, a random sub-cell lattice
offset and weight ``persistence**o``. A Perlin noise is a sum over the lattice corners of
``fade(x) fade(y) fade(z) (g . d)``, which is separable: for each gradient component it is the lattice of
that component filtered by one two-tap operator per axis. The lattices (coarse) are expanded along the
first axes with two-tap gathers, and along the last axis, for all octaves at once, by one matrix product,
so the full-size grid is written once; then it is scaled to peak 1. No loop runs over voxels.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends

__all__ = [
    "fractal_perlin_noise",
    "PerlinNoise",
    "PerlinNoised",
    "PerlinNoiseD",
    "PerlinNoiseDict",
    "RandPerlinNoise",
    "RandPerlinNoised",
    "RandPerlinNoiseD",
    "RandPerlinNoiseDict",
]

META_FIELD = "perlin_noise"


# ----------------------------------------------------------------------------- argument checks


def _check_octaves(octaves: Any) -> int:
    if isinstance(octaves, bool) or not isinstance(octaves, (int, np.integer)) or octaves < 1:
        raise ValueError(f"octaves={octaves!r}: expected an integer >= 1.")
    return int(octaves)


def _check_persistence(persistence: Any) -> float:
    p = float(persistence)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"persistence={persistence!r}: expected a value in (0, 1] (amplitude factor per octave).")
    return p


def _check_lacunarity(lacunarity: Any) -> float:
    lac = float(lacunarity)
    if not lac >= 1.0:
        raise ValueError(f"lacunarity={lacunarity!r}: expected a value >= 1 (frequency factor per octave).")
    return lac


def _check_scale(scale: Any) -> float:
    s = float(scale)
    if not s > 0.0 or not np.isfinite(s):
        raise ValueError(f"scale={scale!r}: expected a lattice cell size > 0 voxels.")
    return s


def _check_range(name: str, rng: Any, low: float, strict_low: bool) -> tuple[float, float]:
    vals = (rng, rng) if np.isscalar(rng) else tuple(rng)
    if len(vals) != 2:
        raise ValueError(f"{name}={rng!r}: expected a number or a (low, high) pair.")
    lo, hi = float(vals[0]), float(vals[1])
    ok_low = lo > low if strict_low else lo >= low
    if not (ok_low and lo <= hi and np.isfinite(hi)):
        sign = ">" if strict_low else ">="
        raise ValueError(f"{name}={rng!r}: expected (low, high) with {sign} {low:g} <= low <= high.")
    return lo, hi


def _check_image(img: NdarrayOrTensor, name: str = "img") -> None:
    if img.ndim not in (3, 4):
        raise ValueError(
            f"{name}: expected a channel-first 2D (C, H, W) or 3D (C, H, W, D) image (ndim 3 or 4), "
            f"got shape {tuple(img.shape)}."
        )


# ----------------------------------------------------------------------------- the noise field


def _fade(f: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic fade 6f^5 - 15f^4 + 10f^3."""
    return f * f * f * (f * (f * 6.0 - 15.0) + 10.0)


def _taps(n: int, cell: float, offset: float, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Two-tap operators of one axis: lattice index of the lower corner of each voxel (``n``,), the
    interpolation weights ``(1 - s, s)`` and the gradient weights ``((1 - s) f, s (f - 1))`` (``f``: position
    in the cell, ``s = fade(f)``)."""
    u = torch.arange(n, dtype=torch.float64, device=device) / cell + offset
    i = torch.floor(u)
    f = u - i
    s = _fade(f)
    w = [1.0 - s, s, (1.0 - s) * f, s * (f - 1.0)]
    return (i.long(), *(x.to(torch.float32) for x in w))


def _lattice_shape(shape: Sequence[int], cell: float, offset: Sequence[float]) -> tuple[int, ...]:
    return tuple(int(np.floor((n - 1) / cell + o)) + 2 for n, o in zip(shape, offset))


def _gather(g: torch.Tensor, axis: int, idx: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """Apply a two-tap operator along ``axis`` of ``g``: ``w0 * g[idx] + w1 * g[idx + 1]``."""
    view = [1] * g.ndim
    view[axis] = -1
    lo = g.index_select(axis, idx)
    hi = g.index_select(axis, idx + 1)
    return lo.mul_(w0.view(view)).addcmul_(hi, w1.view(view))


def _octave_lattices(
    shape: Sequence[int], cells: Sequence[float], seed: int
) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Unit gradients (ndim, *lattice) and lattice offsets (ndim,) in cells of each octave, drawn from ``seed``
    by a CPU ``torch.Generator`` (so the same on every device)."""
    gen = torch.Generator().manual_seed(int(seed))
    grads, offsets = [], []
    for cell in cells:
        off = torch.rand(len(shape), generator=gen, dtype=torch.float64).numpy()
        g = torch.randn((len(shape), *_lattice_shape(shape, cell, off)), generator=gen, dtype=torch.float32)
        g /= (g * g).sum(0, keepdim=True).sqrt_().clamp_min_(1e-12)
        grads.append(g)
        offsets.append(off)
    return grads, offsets


def fractal_perlin_noise(
    shape: Sequence[int],
    scale: float,
    octaves: int = 4,
    persistence: float = 0.5,
    lacunarity: float = 2.0,
    seed: int | None = 0,
    gradients: Sequence[NdarrayOrTensor] | None = None,
    offsets: Sequence[Sequence[float]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fractal Perlin (gradient) noise on a 2D or 3D voxel grid, as a float32 torch tensor of ``shape``
    on ``device``, scaled so that its peak absolute value is 1 (values in [-1, 1], mean about 0).

    Args:
        shape: spatial shape ``(H, W)`` or ``(H, W, D)`` in voxels.
        scale: lattice cell size of the first (coarsest) octave, in voxels (> 0).
        octaves: number of octaves (>= 1); octave ``o`` has cells of ``scale / lacunarity**o`` voxels.
        persistence: amplitude factor per octave, in (0, 1]; octave ``o`` is weighted ``persistence**o``.
        lacunarity: frequency factor per octave (>= 1, default 2).
        seed: seed of the gradients and lattice offsets (a CPU ``torch.Generator``: the same on every device).
        gradients: instead of ``seed``: one array per octave of shape ``(ndim, *lattice)``, the gradient
            vectors at the lattice nodes (lattice at least ``floor((n - 1) / cell + offset) + 2`` per axis).
        offsets: with ``gradients``: per octave, the lattice offset along each axis in cells (default 0).
        device: where to compute (default CPU).

    Cost: two-tap gathers on the coarse lattices and one (H*W, K) x (K, D) matrix product, K = twice the
    summed lattice sizes along the last axis, so put the shortest axis last when there is a choice.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"shape={shape}: expected a 2D or 3D spatial shape with positive sizes.")
    scale = _check_scale(scale)
    octaves = _check_octaves(octaves)
    persistence = _check_persistence(persistence)
    lacunarity = _check_lacunarity(lacunarity)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    nd = len(shape)
    cells = [scale / lacunarity**o for o in range(octaves)]
    if gradients is None:
        if seed is None:
            raise ValueError("fractal_perlin_noise: give a seed or the lattice gradients.")
        grads, offs = _octave_lattices(shape, cells, int(seed))
    else:
        if len(gradients) != octaves:
            raise ValueError(f"gradients: expected {octaves} arrays (one per octave), got {len(gradients)}.")
        offs = [np.zeros(nd)] * octaves if offsets is None else [np.asarray(o, float) for o in offsets]
        if len(offs) != octaves or any(o.shape != (nd,) for o in offs):
            raise ValueError(f"offsets: expected {octaves} sequences of {nd} values (cells), got {offsets!r}.")
        grads = list(gradients)
        for o, (g, cell) in enumerate(zip(grads, cells)):
            need = _lattice_shape(shape, cell, offs[o])
            if g.ndim != nd + 1 or g.shape[0] != nd or any(a < b for a, b in zip(g.shape[1:], need)):
                raise ValueError(
                    f"gradients[{o}]: expected shape ({nd}, >= {', >= '.join(map(str, need))}), got {tuple(g.shape)}."
                )

    last = nd - 1
    t_parts, w_parts = [], []
    for o, cell in enumerate(cells):
        g = torch.as_tensor(grads[o], dtype=torch.float32, device=dev)
        taps = [_taps(n, cell, float(off), dev) for n, off in zip(shape, offs[o])]
        weight = persistence**o
        t_b = t_a = None
        for k in range(nd):  # the term of gradient component k: A along axis k, B along the others
            t = g[k]
            for ax in range(last):
                idx, b0, b1, a0, a1 = taps[ax]
                t = _gather(t, ax, idx, a0, a1) if ax == k else _gather(t, ax, idx, b0, b1)
            if k == last:
                t_a = t
            else:
                t_b = t if t_b is None else t_b.add_(t)
        idx, b0, b1, a0, a1 = taps[last]
        m = g.shape[-1]
        cols = torch.arange(shape[last], device=dev)
        w = torch.zeros((2, m, shape[last]), dtype=torch.float32, device=dev)
        w[0, idx, cols], w[0, idx + 1, cols] = b0 * weight, b1 * weight
        w[1, idx, cols], w[1, idx + 1, cols] = a0 * weight, a1 * weight
        t_parts += [t_b, t_a]
        w_parts += [w[0], w[1]]
    lead = int(np.prod(shape[:-1]))
    t_all = torch.cat([t.reshape(lead, -1) for t in t_parts], dim=1)
    noise = t_all @ torch.cat(w_parts, dim=0)  # (prod(shape[:-1]), shape[-1]): the only full-size write
    lo, hi = torch.aminmax(noise)
    peak = float(torch.maximum(hi, -lo))
    if peak > 0:
        noise.mul_(1.0 / peak)
    return noise.view(shape)


# ----------------------------------------------------------------------------- transforms


def _add_field(img: NdarrayOrTensor, field: torch.Tensor) -> NdarrayOrTensor:
    """``img + field`` (field broadcast over channels), same type, dtype and device as ``img``; a MetaTensor
    gets a copy of its meta data."""
    x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
    if x.dtype.is_floating_point and x.dtype in (torch.float32, torch.float64):
        out = x + field.to(device=x.device, dtype=x.dtype)
    elif x.dtype.is_floating_point:
        out = (x.float() + field.to(x.device)).to(x.dtype)
    else:  # integers: round, clip to the type's range
        info = torch.iinfo(x.dtype)
        out = (x.float() + field.to(x.device)).round_().clamp_(info.min, info.max).to(x.dtype)
    if isinstance(img, MetaTensor):
        res = MetaTensor(out)
        res.copy_meta_from(img)
        return res
    if isinstance(img, np.ndarray):
        return out.numpy()
    return out


def _record(img: NdarrayOrTensor, params: dict[str, Any]) -> None:
    if isinstance(img, MetaTensor):
        img.meta[META_FIELD] = list(img.meta.get(META_FIELD, [])) + [dict(params)]


class PerlinNoise(Transform):
    """Add ``amplitude`` times a fractal Perlin noise field (:func:`fractal_perlin_noise`, peak 1) to a
    channel-first image (C, H, W) or (C, H, W, D); the same field is added to every channel.

    Args:
        amplitude: peak absolute value of the added noise, in the image's units (e.g. HU); >= 0.
        octaves: number of octaves (>= 1).
        persistence: amplitude factor per octave, in (0, 1].
        scale: lattice cell size of the first octave, in voxels (> 0).
        lacunarity: frequency factor per octave (>= 1).
        seed: seed of the lattice gradients and offsets.
        gradients, offsets: the lattice itself instead of ``seed`` (see :func:`fractal_perlin_noise`).

    Call ``t(img)``: numpy array or torch tensor (any device; MetaTensor kept, with the parameters appended
    to ``meta["perlin_noise"]`` of the output). Returns a new array of the same type, shape, dtype and device
    (integer images are rounded and clipped to their type's range); ``img`` is not changed.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        amplitude: float,
        octaves: int = 4,
        persistence: float = 0.5,
        scale: float = 32.0,
        lacunarity: float = 2.0,
        seed: int | None = 0,
        gradients: Sequence[NdarrayOrTensor] | None = None,
        offsets: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.amplitude = float(amplitude)
        if not self.amplitude >= 0.0 or not np.isfinite(self.amplitude):
            raise ValueError(f"amplitude={amplitude!r}: expected a finite value >= 0 (image units).")
        self.octaves = _check_octaves(octaves)
        self.persistence = _check_persistence(persistence)
        self.scale = _check_scale(scale)
        self.lacunarity = _check_lacunarity(lacunarity)
        if seed is None and gradients is None:
            raise ValueError("PerlinNoise: give a seed or the lattice gradients.")
        self.seed = None if seed is None else int(seed)
        self.gradients = gradients
        self.offsets = offsets

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a record (``PerlinNoise(**record)`` rebuilds this transform when seeded)."""
        return {
            "amplitude": self.amplitude,
            "octaves": self.octaves,
            "persistence": self.persistence,
            "scale": self.scale,
            "lacunarity": self.lacunarity,
            "seed": None if self.gradients is not None else self.seed,
        }

    def field(self, spatial_shape: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
        """The noise added to each channel: float32 tensor of ``spatial_shape`` on ``device``, image units."""
        noise = fractal_perlin_noise(
            spatial_shape, self.scale, self.octaves, self.persistence, self.lacunarity, self.seed,
            self.gradients, self.offsets, device,
        )
        return noise.mul_(self.amplitude)

    def __call__(self, img: NdarrayOrTensor, field: torch.Tensor | None = None) -> NdarrayOrTensor:
        """Add the noise to ``img`` (C, H, W[, D]); ``field``: a precomputed :meth:`field` to reuse."""
        _check_image(img)
        if field is None:
            dev = img.device if isinstance(img, torch.Tensor) else None
            field = self.field(img.shape[1:], dev)
        elif tuple(field.shape) != tuple(img.shape[1:]):
            raise ValueError(f"field: shape {tuple(field.shape)} does not match the image's {tuple(img.shape[1:])}.")
        out = _add_field(img, field)
        _record(out, self.params)
        return out


def _apply_to_keys(
    t: MapTransform, d: dict, perlin: PerlinNoise, meta_key_postfix: str
) -> dict:
    """Apply ``perlin`` to every key of ``d`` with one field per spatial shape and device."""
    fields: dict[tuple, torch.Tensor] = {}
    for key in t.key_iterator(d):
        img = d[key]
        _check_image(img, f"{key!r}")
        dev = img.device if isinstance(img, torch.Tensor) else torch.device("cpu")
        sig = (tuple(img.shape[1:]), str(dev))
        if sig not in fields:
            fields[sig] = perlin.field(sig[0], dev)
        d[key] = perlin(img, fields[sig])
        if not isinstance(d[key], MetaTensor):
            meta_key = f"{key}_{meta_key_postfix}"
            meta = dict(d.get(meta_key) or {})
            meta[META_FIELD] = list(meta.get(META_FIELD, [])) + [perlin.params]
            d[meta_key] = meta
    return d


class PerlinNoised(MapTransform):
    """Dictionary-based :class:`PerlinNoise`: add the same noise field to every ``keys`` image (keys of the
    same spatial shape get the identical field). Plain arrays get the record in
    ``data[f"{key}_{meta_key_postfix}"]["perlin_noise"]`` (a new dict; the input's is not changed).

    Args:
        keys: image keys, channel-first (C, H, W) or (C, H, W, D).
        meta_key_postfix: where plain arrays' records go.
        allow_missing_keys: skip keys that are not in the data.
        other arguments: see :class:`PerlinNoise`.
    """

    backend = PerlinNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        amplitude: float,
        octaves: int = 4,
        persistence: float = 0.5,
        scale: float = 32.0,
        lacunarity: float = 2.0,
        seed: int | None = 0,
        gradients: Sequence[NdarrayOrTensor] | None = None,
        offsets: Sequence[Sequence[float]] | None = None,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.perlin = PerlinNoise(amplitude, octaves, persistence, scale, lacunarity, seed, gradients, offsets)
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Add the noise to every ``keys`` image of ``data``; returns a new dict."""
        return _apply_to_keys(self, dict(data), self.perlin, self.meta_key_postfix)


class RandPerlinNoise(RandomizableTransform):
    """With probability ``prob``, add fractal Perlin noise to a channel-first image (C, H, W) or
    (C, H, W, D), the same field to every channel. Draws ``amplitude`` (image units) and ``scale`` (voxels)
    uniformly in their ranges and a seed with ``self.R``, then applies :class:`PerlinNoise`; the drawn
    parameters are in :attr:`last_params` (``None`` when not applied) and, for a MetaTensor, appended to
    ``meta["perlin_noise"]`` of the output. ``PerlinNoise(**last_params)(img)`` reproduces the output exactly.

    Args:
        prob: probability of adding noise (the paper gives none; 0.5 as for MONAI's random intensity transforms).
        amplitude_range: peak absolute noise (image units), a number or ``(low, high)``, >= 0; the default
            suits intensities scaled to [0, 1]; give e.g. ``(0, 50)`` for CT in HU.
        octaves: number of octaves (>= 1).
        persistence: amplitude factor per octave, in (0, 1].
        scale_range: lattice cell size of the first octave (voxels), a number or ``(low, high)``, > 0.
        lacunarity: frequency factor per octave (>= 1).

    Call ``t(img, randomize=True)``; ``randomize=False`` re-applies :attr:`last_params`. Returns a new array
    of the input's type, shape, dtype and device (the input itself when not applied). Deterministic under
    ``set_random_state``.
    """

    backend = PerlinNoise.backend

    def __init__(
        self,
        prob: float = 0.5,
        amplitude_range: float | Sequence[float] = (0.0, 0.1),
        octaves: int = 4,
        persistence: float = 0.5,
        scale_range: float | Sequence[float] = (16.0, 64.0),
        lacunarity: float = 2.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.amplitude_range = _check_range("amplitude_range", amplitude_range, 0.0, strict_low=False)
        self.scale_range = _check_range("scale_range", scale_range, 0.0, strict_low=True)
        self.octaves = _check_octaves(octaves)
        self.persistence = _check_persistence(persistence)
        self.lacunarity = _check_lacunarity(lacunarity)
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply and, when applied, the parameters (into :attr:`last_params`)."""
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        self.last_params = {
            "amplitude": float(self.R.uniform(*self.amplitude_range)),
            "octaves": self.octaves,
            "persistence": self.persistence,
            "scale": float(self.R.uniform(*self.scale_range)),
            "lacunarity": self.lacunarity,
            "seed": int(self.R.randint(0, 2**31 - 1)),
        }

    def transform(self) -> PerlinNoise | None:
        """The :class:`PerlinNoise` of :attr:`last_params` (``None`` when the last draw applies nothing)."""
        return None if self.last_params is None else PerlinNoise(**self.last_params)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Add random Perlin noise to ``img`` (see the class docstring)."""
        _check_image(img)
        if randomize:
            self.randomize(None)
        t = self.transform()
        return img if t is None else t(img)


class RandPerlinNoised(RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandPerlinNoise`: with probability ``prob`` add one random Perlin noise field
    to every ``keys`` image (the same parameters for all keys; keys of the same spatial shape get the
    identical field). Records as :class:`PerlinNoised`; the drawn parameters are in :attr:`last_params`.

    Args:
        keys: image keys, channel-first (C, H, W) or (C, H, W, D).
        meta_key_postfix: where plain arrays' records go (``data[f"{key}_{meta_key_postfix}"]``).
        allow_missing_keys: skip keys that are not in the data.
        other arguments: see :class:`RandPerlinNoise`.

    Deterministic under ``set_random_state``.
    """

    backend = RandPerlinNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        amplitude_range: float | Sequence[float] = (0.0, 0.1),
        octaves: int = 4,
        persistence: float = 0.5,
        scale_range: float | Sequence[float] = (16.0, 64.0),
        lacunarity: float = 2.0,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_perlin = RandPerlinNoise(prob, amplitude_range, octaves, persistence, scale_range, lacunarity)
        self.meta_key_postfix = meta_key_postfix

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The parameters of the last draw (``None`` when it applied nothing)."""
        return self.rand_perlin.last_params

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandPerlinNoised:
        """Seed this transform and its :class:`RandPerlinNoise` (which draws every random number)."""
        super().set_random_state(seed, state)
        self.rand_perlin.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply and the parameters."""
        self.rand_perlin.randomize(None)
        self._do_transform = self.rand_perlin._do_transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Add random Perlin noise to every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        self.randomize(None)
        t = self.rand_perlin.transform()
        if t is None:
            return d
        return _apply_to_keys(self, d, t, self.meta_key_postfix)


PerlinNoiseD = PerlinNoiseDict = PerlinNoised
RandPerlinNoiseD = RandPerlinNoiseDict = RandPerlinNoised
