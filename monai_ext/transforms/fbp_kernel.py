"""Reconstruction-kernel augmentation for CT: filtered back-projection with a new kernel (FBPAug).

Saparov et al., "Zero-shot domain adaptation in CT segmentation by filtered back projection augmentation"
(DGM4MICCAI/DALI 2021, Sect. 2.1): CT vendors reconstruct the same sinogram with smooth or sharp convolution
kernels, and segmentation networks disagree between the two. FBPAug re-reconstructs every training slice
with a random kernel: each axial slice (in HU) is converted to linear attenuation, projected (parallel-beam
Radon transform, ``n`` angles uniform in [0, pi)), each projection is filtered in the Fourier domain by

    F[k_{a,b}](w) = |w| (1 + a |w|^b),    |w| the ramp scaled to [0, 1] at the Nyquist frequency,

and back-projected; the result is converted back to HU and clipped to [-1000, 3000] HU. ``a = 0`` is plain
ramp filtered back-projection (the slice comes back, up to interpolation blur); ``a > 0`` sharpens,
``-1 <= a < 0`` smooths. The paper draws a sharpen kernel (a in [10, 40], b in [1, 4]) or a smooth kernel
(a in [-1, 0], b in [0.1, 1]) with equal odds, and applies the augmentation with probability 0.5.

- :class:`FBPKernel` / :class:`FBPKerneld`: one kernel (a, b), deterministic; (a, b) must lie in a family;
- :class:`RandFBPKernel` / :class:`RandFBPKerneld`: draw (family, a, b) with ``self.R`` and apply;
- :func:`radon_slices`, :func:`fbp_slices`, :func:`fbp_kernel_response`, :func:`fbp_kernel_family`: the
  pieces, in torch, batched over slices and angles (CPU or GPU).

Everything runs in torch on the input's device: the Radon transform samples the slices along rotated rays
with ``grid_sample`` (bilinear) and sums, the back-projection samples the filtered sinogram with
``grid_sample`` (linear along the detector); both are chunked over slices and angles so that no
intermediate exceeds ``max_chunk_elements`` values. The detector covers the slice's whole diagonal (the
slice lies inside the reconstruction circle), so the corners of the slice are reconstructed too.
``method="fourier"`` applies the same kernel as a 2D-Fourier filter of each slice (Fourier slice theorem):
no interpolation blur, 100-200 times faster (:func:`fourier_kernel_slices`).

Each application records its parameters in the meta data of a MetaTensor input
(``meta["fbp_kernel"] = {"applied", "family", "a", "b", "n_angles", "method"}``; the random versions record
``applied=False`` too, so every sample of a batch has the same keys); :meth:`FBPKernel.from_record`
replays one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends

from .nodule_geometry import check_hu_range

__all__ = [
    "FBP_SHARPEN_A",
    "FBP_SHARPEN_B",
    "FBP_SMOOTH_A",
    "FBP_SMOOTH_B",
    "MU_WATER_PER_MM",
    "fbp_kernel_family",
    "fbp_kernel_response",
    "radon_slices",
    "fbp_slices",
    "fourier_kernel_slices",
    "FBP_METHODS",
    "FBPKernel",
    "FBPKerneld",
    "FBPKernelD",
    "FBPKernelDict",
    "RandFBPKernel",
    "RandFBPKerneld",
    "RandFBPKernelD",
    "RandFBPKernelDict",
]

# the paper's kernel families (Sect. 2.3): uniform draws of a and b
FBP_SHARPEN_A = (10.0, 40.0)
FBP_SHARPEN_B = (1.0, 4.0)
FBP_SMOOTH_A = (-1.0, 0.0)
FBP_SMOOTH_B = (0.1, 1.0)
# linear attenuation coefficient of water at about 70 keV (1/mm); any positive value gives the same result,
# since HU -> attenuation -> HU is linear and so is filtered back-projection, but it keeps the physics explicit
MU_WATER_PER_MM = 0.0192
HU_AIR, HU_MAX = -1000.0, 3000.0
META_KEY = "fbp_kernel"
#: how the kernel is applied: the literal Radon transform + back-projection, or its 2D-Fourier equivalent
FBP_METHODS = ("fbp", "fourier")
_FAMILIES_TEXT = (
    f"sharpen a in [{FBP_SHARPEN_A[0]:g}, {FBP_SHARPEN_A[1]:g}], b in [{FBP_SHARPEN_B[0]:g}, {FBP_SHARPEN_B[1]:g}]; "
    f"smooth a in [{FBP_SMOOTH_A[0]:g}, {FBP_SMOOTH_A[1]:g}], b in [{FBP_SMOOTH_B[0]:g}, {FBP_SMOOTH_B[1]:g}]; "
    "or a = 0 (plain ramp, any b)"
)


def _in_fbp_range(v: float, lo_hi: Sequence[float]) -> bool:
    return float(lo_hi[0]) <= v <= float(lo_hi[1])


def fbp_kernel_family(a: float, b: float, allow_any: bool = False) -> str:
    """The family of the kernel k_{a,b}: ``"ramp"`` (a = 0), ``"sharpen"`` (a in [10, 40], b in [1, 4]),
    ``"smooth"`` (a in [-1, 0), b in [0.1, 1]); with ``allow_any`` any other finite (a, b) is ``"custom"``.

    Raises ``ValueError`` naming a and b and the allowed ranges (Saparov et al. 2021, Sect. 2.3) otherwise.
    """
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"FBP kernel a={a}, b={b}: expected finite numbers.")
    if a == 0.0:
        return "ramp"
    if _in_fbp_range(a, FBP_SHARPEN_A) and _in_fbp_range(b, FBP_SHARPEN_B):
        return "sharpen"
    if _in_fbp_range(a, FBP_SMOOTH_A) and _in_fbp_range(b, FBP_SMOOTH_B):
        return "smooth"
    if allow_any:
        return "custom"
    raise ValueError(
        f"FBP kernel a={a:g}, b={b:g} lies in no kernel family of FBPAug: {_FAMILIES_TEXT}. "
        "Pass allow_any=True to use it anyway."
    )


def _discrete_ramp(
    n_freq_padded: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The discrete ramp |w| of scikit-image / Kak & Slaney (the inverse DFT of the band-limited ramp sampled
    in space, so the DC term is right), on the ``rfft`` bins of a length ``n_freq_padded`` signal; it rises
    from a small positive DC value to 1 at the Nyquist frequency."""
    f = torch.zeros(n_freq_padded, dtype=torch.float64)
    f[0] = 0.25
    k = torch.arange(1, n_freq_padded, 2)
    dist = torch.minimum(k, n_freq_padded - k).to(torch.float64)
    f[k] = -1.0 / (math.pi * dist) ** 2
    return (2.0 * torch.fft.rfft(f).real).to(device=device, dtype=dtype)


def fbp_kernel_response(
    n_freq_padded: int, a: float, b: float, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """F[k_{a,b}](w) = |w| (1 + a |w|^b) (Saparov et al. 2021, Eq. for k_{a,b}) on the ``n_freq_padded // 2 + 1``
    ``rfft`` bins of a (zero-padded) projection of ``n_freq_padded`` detector pixels; |w| is the discrete ramp,
    in [0, 1], 1 at the Nyquist frequency (0.5 cycles per detector pixel). Unitless; shape (n_freq_padded//2+1,).
    """
    ramp = _discrete_ramp(int(n_freq_padded), device=device, dtype=torch.float64)
    return (ramp * (1.0 + float(a) * ramp ** float(b))).to(dtype)


def _detector_size(h: int, w: int) -> int:
    """Detector pixels covering the slice's diagonal (plus a pixel for the bilinear footprint), so the whole
    slice lies inside the reconstruction circle."""
    radius = math.hypot((h - 1) / 2.0, (w - 1) / 2.0) + 1.0
    return int(math.ceil(2.0 * radius)) + 1


def _fbp_chunk(total: int, per_item: int, max_elements: int) -> int:
    return int(max(1, min(total, max_elements // max(1, per_item))))


def radon_slices(
    slices: torch.Tensor, n_angles: int, n_detector: int | None = None, max_chunk_elements: int = 2**25
) -> torch.Tensor:
    """Parallel-beam Radon transform of a batch of 2D slices, in torch (CPU or GPU).

    Args:
        slices: (B, H, W) attenuation (any unit per pixel; zero outside the slice).
        n_angles: projection angles ``theta_i = i * pi / n_angles``, i = 0 .. n_angles - 1.
        n_detector: detector pixels (spacing one image pixel, centred on the slice centre); default: enough to
            cover the slice's diagonal.
        max_chunk_elements: bound on the number of values of any intermediate (memory).

    Returns:
        (B, n_angles, n_detector) line integrals (attenuation x pixel length): ray sums of the slice sampled
        bilinearly at unit steps along rays ``t (cos, sin) + s (-sin, cos)`` (x along W, y along H).

    The samples of angle ``theta`` also give the projection at ``theta + pi/2`` (the same rotated square grid,
    summed along the other axis), so only half of the angles are sampled when ``n_angles`` is even.
    """
    if slices.ndim != 3:
        raise ValueError(f"radon_slices: expected (B, H, W) slices, got shape {tuple(slices.shape)}.")
    bsz, h, w = slices.shape
    n_t = int(n_detector) if n_detector else _detector_size(h, w)
    dev, dt = slices.device, slices.dtype
    pair = n_angles % 2 == 0
    n_sampled = n_angles // 2 if pair else n_angles
    theta = torch.arange(n_sampled, device=dev, dtype=torch.float64) * (math.pi / n_angles)
    c = (torch.arange(n_t, device=dev, dtype=torch.float64) - (n_t - 1) / 2.0).to(dt)
    sino = slices.new_empty(bsz, n_angles, n_t)
    b_step = _fbp_chunk(bsz, n_t * n_t, max_chunk_elements)
    for b0 in range(0, bsz, b_step):
        img = slices[b0:b0 + b_step].unsqueeze(0)  # (1, Bc, H, W): slices as channels share the grid
        nb = img.shape[1]
        a_step = _fbp_chunk(n_sampled, nb * n_t * n_t, max_chunk_elements)
        for a0 in range(0, n_sampled, a_step):
            th = theta[a0:a0 + a_step]
            # normalised grid_sample coordinates (align_corners=False): 2 * (offset from the centre) / size
            cos, sin = th.cos().to(dt)[:, None, None], th.sin().to(dt)[:, None, None]
            t, s = c[None, :, None], c[None, None, :]
            grid = torch.stack([(t * cos - s * sin) * (2.0 / w), (t * sin + s * cos) * (2.0 / h)], dim=-1)
            grid = grid.reshape(1, -1, n_t, 2)
            samples = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            samples = samples.reshape(nb, -1, n_t, n_t)  # (Bc, Ac, t, s)
            a1 = a0 + samples.shape[1]
            sino[b0:b0 + nb, a0:a1] = samples.sum(dim=-1)
            if pair:  # theta + pi/2: p(t') = sum over the first axis at s = t'
                sino[b0:b0 + nb, n_sampled + a0:n_sampled + a1] = samples.sum(dim=-2)
    return sino


def _padded_size(n_detector: int) -> int:
    """Zero-padded projection length: the next power of two >= 2 x the detector size, at least 64."""
    return max(64, 1 << int(math.ceil(math.log2(2 * n_detector))))


def _filter_sinogram(sino: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Filter each projection (last axis) by k_{a,b} in the Fourier domain, zero-padded to the next power of
    two >= 2 x the detector size (at least 64), as the official FBPAug code (after scikit-image) does."""
    n_t = sino.shape[-1]
    padded = _padded_size(n_t)
    resp = fbp_kernel_response(padded, a, b, device=sino.device, dtype=sino.dtype)
    return torch.fft.irfft(torch.fft.rfft(sino, n=padded, dim=-1) * resp, n=padded, dim=-1)[..., :n_t]


def _back_project(filtered: torch.Tensor, h: int, w: int, max_chunk_elements: int) -> torch.Tensor:
    """(pi / (2 n)) sum_i q_i(x cos(theta_i) + y sin(theta_i)) on the (H, W) pixel grid, linear interpolation
    along the detector, zero off the detector; ``filtered`` (B, n, n_detector) -> (B, H, W)."""
    bsz, n_angles, n_t = filtered.shape
    dev, dt = filtered.device, filtered.dtype
    theta = torch.arange(n_angles, device=dev, dtype=torch.float64) * (math.pi / n_angles)
    scale = 2.0 / n_t  # normalised detector coordinate (align_corners=False)
    y = ((torch.arange(h, device=dev, dtype=torch.float64) - (h - 1) / 2.0) * scale).to(dt)[None, :, None]
    x = ((torch.arange(w, device=dev, dtype=torch.float64) - (w - 1) / 2.0) * scale).to(dt)[None, None, :]
    out = filtered.new_zeros(bsz, h, w)
    b_step = _fbp_chunk(bsz, h * w, max_chunk_elements)
    for b0 in range(0, bsz, b_step):
        q = filtered[b0:b0 + b_step]
        nb = q.shape[0]
        a_step = _fbp_chunk(n_angles, nb * h * w, max_chunk_elements)
        acc = out[b0:b0 + nb]
        for a0 in range(0, n_angles, a_step):
            th = theta[a0:a0 + a_step]
            t = x * th.cos().to(dt)[:, None, None] + y * th.sin().to(dt)[:, None, None]  # (Ac, H, W)
            grid = torch.stack([t, torch.zeros_like(t)], dim=-1)
            proj = q[:, a0:a0 + a_step].transpose(0, 1).unsqueeze(2).contiguous()  # (Ac, Bc, 1, n_t)
            acc += F.grid_sample(proj, grid, mode="bilinear", padding_mode="zeros", align_corners=False).sum(dim=0)
    return out * (math.pi / (2.0 * n_angles))


def fbp_slices(
    slices: torch.Tensor,
    a: float = 0.0,
    b: float = 1.0,
    n_angles: int | None = None,
    max_chunk_elements: int = 2**25,
) -> torch.Tensor:
    """Re-reconstruct a batch of 2D attenuation slices with the kernel k_{a,b}: Radon transform, filter each
    projection by |w| (1 + a |w|^b) (zero-padded, in the Fourier domain), back-project (Saparov et al. 2021,
    Sect. 2.1). ``slices`` (B, H, W), any attenuation unit, zero outside the slice; returns (B, H, W) in the
    same unit, on the same device and dtype. ``n_angles`` default: max(H, W) (the official code uses the slice
    width). No family check here (see :func:`fbp_kernel_family`)."""
    if slices.ndim != 3:
        raise ValueError(f"fbp_slices: expected (B, H, W) slices, got shape {tuple(slices.shape)}.")
    bsz, h, w = (int(v) for v in slices.shape)
    n = int(n_angles) if n_angles else max(h, w)
    n_t = _detector_size(h, w)
    # whole pipeline per chunk of slices: the padded spectra (slices x angles x padded detector) stay bounded too
    b_step = _fbp_chunk(bsz, n * _padded_size(n_t), max_chunk_elements)
    out = slices.new_empty(slices.shape)
    for b0 in range(0, bsz, b_step):
        sino = radon_slices(slices[b0:b0 + b_step], n, n_detector=n_t, max_chunk_elements=max_chunk_elements)
        out[b0:b0 + b_step] = _back_project(_filter_sinogram(sino, a, b), h, w, max_chunk_elements)
    return out


def fourier_kernel_slices(
    slices: torch.Tensor, a: float = 0.0, b: float = 1.0, max_chunk_elements: int = 2**25
) -> torch.Tensor:
    """The kernel k_{a,b} applied to a batch of 2D attenuation slices in the 2D Fourier domain: each slice's
    spectrum (zero-padded to twice its size) is multiplied by 1 + a rho^b, rho the radial frequency in units of
    the Nyquist frequency, capped at 1 (a detector sampled at the pixel spacing carries no higher frequency).

    By the Fourier slice theorem this is what :func:`fbp_slices` computes with infinitely many angles and exact
    interpolation: filtering every projection by |w| (1 + a |w|^b) and back-projecting multiplies the slice's
    2D spectrum by (1 + a rho^b), the |w| being undone by the back-projection. It has neither the interpolation
    blur of the discrete Radon transform nor its cost (two FFTs per slice instead of two passes over
    max(H, W) angles). ``slices`` (B, H, W), zero outside the slice; returns (B, H, W), same device and dtype.
    """
    if slices.ndim != 3:
        raise ValueError(f"fourier_kernel_slices: expected (B, H, W) slices, got shape {tuple(slices.shape)}.")
    bsz, h, w = (int(v) for v in slices.shape)
    ph, pw = 2 * h, 2 * w
    dev, dt = slices.device, slices.dtype
    fy = torch.fft.fftfreq(ph, device=dev, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(pw, device=dev, dtype=torch.float64)[None, :]
    rho = (torch.sqrt(fy**2 + fx**2) / 0.5).clamp_(max=1.0)
    gain = (1.0 + float(a) * rho ** float(b)).to(dt)
    out = slices.new_empty(slices.shape)
    step = _fbp_chunk(bsz, 2 * ph * pw, max_chunk_elements)
    for b0 in range(0, bsz, step):
        spec = torch.fft.rfft2(slices[b0:b0 + step], s=(ph, pw))
        out[b0:b0 + step] = torch.fft.irfft2(spec * gain, s=(ph, pw))[:, :h, :w]
    return out


def _fbp_record(applied: bool, family: str, a: float, b: float, n_angles: int, method: str = "fbp") -> dict[str, Any]:
    return {"applied": bool(applied), "family": family, "a": float(a), "b": float(b), "n_angles": int(n_angles),
            "method": method}


def _check_method(method: str) -> str:
    if method not in FBP_METHODS:
        raise ValueError(f"method={method!r}: expected one of {FBP_METHODS}.")
    return method


def _with_fbp_meta(img: NdarrayOrTensor, out: NdarrayOrTensor, record: Mapping[str, Any]) -> NdarrayOrTensor:
    """``out`` (a MetaTensor built from ``img`` when ``img`` is one) with ``record`` in ``meta["fbp_kernel"]``;
    ``img``'s meta data are not changed."""
    if not isinstance(img, MetaTensor):
        return out
    if out is img:  # not applied: share the data, copy the meta data
        out = MetaTensor(img.as_tensor(), meta=copy.deepcopy(img.meta),
                         applied_operations=copy.deepcopy(img.applied_operations))
    out.meta[META_KEY] = dict(record)
    return out


class FBPKernel(Transform):
    """Re-reconstruct every axial slice of a CT in HU with the filtered back-projection kernel k_{a,b} (FBPAug,
    Saparov et al., DGM4MICCAI/DALI 2021, Sect. 2.1).

    Per axial slice (the last spatial axis): clip to >= -1000 HU, convert to linear attenuation
    ``mu = (HU + 1000) / 1000 * mu_water`` (1/mm), Radon transform with ``n_angles`` angles in [0, pi) and a
    detector covering the slice's diagonal, filter each projection by |w| (1 + a |w|^b) (|w| in [0, 1], 1 at
    Nyquist, zero-padded FFT), back-project on the slice's pixel grid, convert back to HU and clip to
    [-1000, 3000] HU. ``a = 0`` returns the slice up to the blur of the two bilinear interpolations; ``a > 0``
    raises the high spatial frequencies (sharper edges, stronger noise), ``a < 0`` lowers them.

    The slice's 2D spectrum is multiplied by about 1 + a rho^b (rho: radial frequency / Nyquist), so the
    kernels also change low frequencies, the more so the smaller b and the fewer pixels the slice has: on a
    64 x 64 chest slice (6 mm pixels) (-1, 0.1) moves soft tissue from about 10 to -690 HU and (10, 1) to
    +340 HU. This is the paper's filter as published and as its code (scikit-image based) computes it; our
    outputs agree with that code's steps within interpolation differences.

    Args:
        a, b: kernel parameters; (a, b) must lie in the sharpen family (a in [10, 40], b in [1, 4]), the
            smooth family (a in [-1, 0], b in [0.1, 1]), or a = 0 (plain ramp).
        allow_any: accept any finite (a, b) (experiments; a < -1 makes the filter negative at high
            frequencies).
        n_angles: projection angles; ``None``: max(H, W), the slice width, as the official code.
        mu_water: attenuation of water (1/mm); the result does not depend on it (everything is linear).
        check_hu: reject images that do not look like CT in HU (cheap strided check of channel 0).
        max_chunk_elements: bound on the values of any intermediate tensor (memory): slices and angles are
            processed in chunks.
        method: ``"fbp"`` (default): the literal Radon transform, filter and back-projection, as the paper's code
            (its bilinear interpolations blur: a = 0 returns the slice within about 20-35 HU mean absolute error
            inside the body, and the sharpen kernels act less at the highest frequencies); ``"fourier"``: the same
            kernel as a 2D-Fourier filter (:func:`fourier_kernel_slices`), what FBP computes without
            interpolation error; a = 0 is then the identity, smooth kernels agree with ``"fbp"`` within about
            3-65 HU (mean absolute, chest phantom, 128 and 256 pixels), sharpen kernels sharpen more, and it is
            about 100-200 times faster.

    Call ``t(img)``: ``img`` (C, H, W, D) (axial slices along D) or (C, H, W) (one slice), in HU; numpy array
    (returns numpy, same dtype) or torch tensor (same dtype and device; a MetaTensor keeps a copy of its meta
    data, with the parameters in ``meta["fbp_kernel"]``). Float64 input is computed in float64, everything
    else in float32; integer outputs are rounded. The input is not changed.

    Raises ``ValueError`` naming a and b and the allowed ranges for a kernel outside the families, and for
    images of the wrong shape or not in HU.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        a: float,
        b: float,
        allow_any: bool = False,
        n_angles: int | None = None,
        mu_water: float = MU_WATER_PER_MM,
        check_hu: bool = True,
        max_chunk_elements: int = 2**25,
        method: str = "fbp",
    ) -> None:
        self.family = fbp_kernel_family(a, b, allow_any=allow_any)
        self.method = _check_method(method)
        if n_angles is not None and int(n_angles) < 2:
            raise ValueError(f"n_angles={n_angles}: expected at least 2 projection angles, or None.")
        if not float(mu_water) > 0.0:
            raise ValueError(f"mu_water={mu_water}: expected a positive attenuation (1/mm).")
        if int(max_chunk_elements) < 1:
            raise ValueError(f"max_chunk_elements={max_chunk_elements}: expected a positive number.")
        self.a, self.b = float(a), float(b)
        self.allow_any = bool(allow_any)
        self.n_angles = None if n_angles is None else int(n_angles)
        self.mu_water = float(mu_water)
        self.check_hu = bool(check_hu)
        self.max_chunk_elements = int(max_chunk_elements)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], **kwargs: Any) -> FBPKernel:
        """The transform that reproduces a ``meta["fbp_kernel"]`` record (same a, b and number of angles);
        ``kwargs`` override the other arguments. Raises ``ValueError`` for a record of a draw that was not
        applied."""
        if not record.get("applied", True):
            raise ValueError("this fbp_kernel record is of a draw that was not applied; there is nothing to replay.")
        args = {"a": float(record["a"]), "b": float(record["b"]), "n_angles": int(record["n_angles"]),
                "allow_any": record.get("family") == "custom", "method": record.get("method", "fbp")}
        args.update(kwargs)
        return cls(**args)

    def _angles(self, h: int, w: int) -> int:
        return self.n_angles if self.n_angles is not None else max(h, w)

    def record(self, img: NdarrayOrTensor) -> dict[str, Any]:
        """The ``meta["fbp_kernel"]`` record of applying this kernel to ``img``."""
        return _fbp_record(True, self.family, self.a, self.b, self._angles(int(img.shape[1]), int(img.shape[2])),
                           self.method)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Apply the kernel to every axial slice; returns a new array of the input's type, shape and dtype."""
        if img.ndim not in (3, 4):
            raise ValueError(
                f"FBPKernel: image shape {tuple(img.shape)}; expected channel-first (C, H, W, D) or (C, H, W) in HU."
            )
        if self.check_hu:
            check_hu_range(img, name="FBPKernel input")
        is_numpy = not isinstance(img, torch.Tensor)
        plain = torch.from_numpy(np.ascontiguousarray(img)) if is_numpy else (
            img.as_tensor() if isinstance(img, MetaTensor) else img)
        plain = plain.detach()
        work_dtype = torch.float64 if plain.dtype == torch.float64 else torch.float32
        vol = plain.to(work_dtype) if plain.ndim == 4 else plain.to(work_dtype).unsqueeze(-1)
        c, h, w, d = vol.shape
        slices = vol.permute(0, 3, 1, 2).reshape(c * d, h, w)
        mu = (slices.clamp(min=HU_AIR) - HU_AIR) * (self.mu_water / 1000.0)
        if self.method == "fourier":
            mu = fourier_kernel_slices(mu, self.a, self.b, max_chunk_elements=self.max_chunk_elements)
        else:
            mu = fbp_slices(mu, self.a, self.b, n_angles=self._angles(h, w),
                            max_chunk_elements=self.max_chunk_elements)
        hu = (mu * (1000.0 / self.mu_water) + HU_AIR).clamp_(HU_AIR, HU_MAX)
        out = hu.reshape(c, d, h, w).permute(0, 2, 3, 1)
        if plain.ndim == 3:
            out = out[..., 0]
        if not plain.dtype.is_floating_point:
            out = out.round()
        out = out.to(plain.dtype).contiguous()
        if is_numpy:
            return out.numpy().astype(np.asarray(img).dtype, copy=False)
        if isinstance(img, MetaTensor):
            out = MetaTensor(out, meta=copy.deepcopy(img.meta),
                             applied_operations=copy.deepcopy(img.applied_operations))
        return _with_fbp_meta(img, out, self.record(img))


class FBPKerneld(MapTransform):
    """Dictionary version of :class:`FBPKernel`: the same kernel k_{a,b} for every key (images in HU,
    (C, H, W, D) or (C, H, W)); see :class:`FBPKernel` for the arguments. Saparov et al. 2021."""

    backend = FBPKernel.backend

    def __init__(
        self,
        keys: KeysCollection,
        a: float,
        b: float,
        allow_any: bool = False,
        n_angles: int | None = None,
        mu_water: float = MU_WATER_PER_MM,
        check_hu: bool = True,
        max_chunk_elements: int = 2**25,
        method: str = "fbp",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.kernel = FBPKernel(a, b, allow_any=allow_any, n_angles=n_angles, mu_water=mu_water, check_hu=check_hu,
                                max_chunk_elements=max_chunk_elements, method=method)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Apply the kernel to each key; returns a new dictionary (the input's arrays are not changed)."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.kernel(d[key])
        return d


def _check_fbp_range(
    name: str, lo_hi: Sequence[float], family: Sequence[float], allow_any: bool
) -> tuple[float, float]:
    if len(lo_hi) != 2:
        raise ValueError(f"{name}={lo_hi}: expected (low, high).")
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name}=({lo:g}, {hi:g}): expected finite low <= high.")
    if not allow_any and not (_in_fbp_range(lo, family) and _in_fbp_range(hi, family)):
        raise ValueError(
            f"{name}=({lo:g}, {hi:g}) leaves its kernel family [{family[0]:g}, {family[1]:g}] ({_FAMILIES_TEXT}); "
            "pass allow_any=True to draw outside it."
        )
    return lo, hi


class RandFBPKernel(RandomizableTransform):
    """FBPAug (Saparov et al., DGM4MICCAI/DALI 2021): with probability ``prob``, re-reconstruct every axial slice
    of a CT in HU with a random kernel k_{a,b} (see :class:`FBPKernel`). With probability ``p_sharpen`` the
    kernel is a sharpen one (a ~ U(sharpen_a), b ~ U(sharpen_b)), otherwise a smooth one (a ~ U(smooth_a),
    b ~ U(smooth_b)); the defaults are the paper's ranges and odds (the code's prob 0.5).

    Args:
        prob: probability of applying the augmentation.
        sharpen_a, sharpen_b, smooth_a, smooth_b: (low, high) ranges of the uniform draws; they must lie in their
            family unless ``allow_any``.
        p_sharpen: probability of the sharpen family given that the augmentation is applied.
        allow_any, n_angles, mu_water, check_hu, max_chunk_elements, method: as in :class:`FBPKernel`.

    Only the draw uses ``self.R`` (reproducible under ``set_random_state``); the parameters of the last call are
    in ``last_params`` (``{"applied", "family", "a", "b"}``) and, for a MetaTensor, in the output's
    ``meta["fbp_kernel"]`` (``applied=False`` when skipped; the output then shares the input's data).
    ``t(img, randomize=True)``: ``img`` as for :class:`FBPKernel`.
    """

    backend = FBPKernel.backend

    def __init__(
        self,
        prob: float = 0.5,
        sharpen_a: Sequence[float] = FBP_SHARPEN_A,
        sharpen_b: Sequence[float] = FBP_SHARPEN_B,
        smooth_a: Sequence[float] = FBP_SMOOTH_A,
        smooth_b: Sequence[float] = FBP_SMOOTH_B,
        p_sharpen: float = 0.5,
        allow_any: bool = False,
        n_angles: int | None = None,
        mu_water: float = MU_WATER_PER_MM,
        check_hu: bool = True,
        max_chunk_elements: int = 2**25,
        method: str = "fbp",
    ) -> None:
        if not 0.0 <= float(prob) <= 1.0 or not 0.0 <= float(p_sharpen) <= 1.0:
            raise ValueError(f"prob={prob}, p_sharpen={p_sharpen}: expected probabilities in [0, 1].")
        RandomizableTransform.__init__(self, prob)
        self.sharpen_a = _check_fbp_range("sharpen_a", sharpen_a, FBP_SHARPEN_A, allow_any)
        self.sharpen_b = _check_fbp_range("sharpen_b", sharpen_b, FBP_SHARPEN_B, allow_any)
        self.smooth_a = _check_fbp_range("smooth_a", smooth_a, FBP_SMOOTH_A, allow_any)
        self.smooth_b = _check_fbp_range("smooth_b", smooth_b, FBP_SMOOTH_B, allow_any)
        self.p_sharpen = float(p_sharpen)
        self.allow_any = bool(allow_any)
        self.kernel_args = {"n_angles": n_angles, "mu_water": mu_water, "check_hu": check_hu,
                            "max_chunk_elements": max_chunk_elements, "method": _check_method(method)}
        FBPKernel(0.0, 1.0, **self.kernel_args)  # checks the other arguments now
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply, the family and (a, b) with ``self.R``; stored in ``last_params``."""
        super().randomize(None)
        if not self._do_transform:
            self.last_params = {"applied": False, "family": "none", "a": float("nan"), "b": float("nan")}
            return
        if self.R.rand() < self.p_sharpen:
            family, ra, rb = "sharpen", self.sharpen_a, self.sharpen_b
        else:
            family, ra, rb = "smooth", self.smooth_a, self.smooth_b
        a, b = float(self.R.uniform(*ra)), float(self.R.uniform(*rb))
        self.last_params = {"applied": True, "family": family, "a": a, "b": b}

    def kernel(self) -> FBPKernel | None:
        """The :class:`FBPKernel` of the last draw, or ``None`` when it was not applied."""
        if self.last_params is None or not self.last_params["applied"]:
            return None
        return FBPKernel(self.last_params["a"], self.last_params["b"], allow_any=self.allow_any, **self.kernel_args)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Draw (unless ``randomize=False``) and apply the kernel; returns the image (a new array when applied)."""
        if randomize:
            self.randomize(None)
        if self.last_params is None:
            raise RuntimeError("RandFBPKernel: call randomize() before calling with randomize=False.")
        kernel = self.kernel()
        if kernel is None:
            if img.ndim not in (3, 4):
                raise ValueError(f"RandFBPKernel: image shape {tuple(img.shape)}; expected (C, H, W, D) or (C, H, W).")
            return _with_fbp_meta(img, img, _fbp_record(False, "none", float("nan"), float("nan"), 0,
                                                        self.kernel_args["method"]))
        return kernel(img)


class RandFBPKerneld(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandFBPKernel` (FBPAug, Saparov et al. 2021): one draw per call, the same
    kernel for every key (images in HU, (C, H, W, D) or (C, H, W)); the parameters are recorded in each
    MetaTensor's ``meta["fbp_kernel"]`` and in ``last_params``. Arguments as :class:`RandFBPKernel`."""

    backend = RandFBPKernel.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        sharpen_a: Sequence[float] = FBP_SHARPEN_A,
        sharpen_b: Sequence[float] = FBP_SHARPEN_B,
        smooth_a: Sequence[float] = FBP_SMOOTH_A,
        smooth_b: Sequence[float] = FBP_SMOOTH_B,
        p_sharpen: float = 0.5,
        allow_any: bool = False,
        n_angles: int | None = None,
        mu_water: float = MU_WATER_PER_MM,
        check_hu: bool = True,
        max_chunk_elements: int = 2**25,
        method: str = "fbp",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_kernel = RandFBPKernel(
            prob=prob, sharpen_a=sharpen_a, sharpen_b=sharpen_b, smooth_a=smooth_a, smooth_b=smooth_b,
            p_sharpen=p_sharpen, allow_any=allow_any, n_angles=n_angles, mu_water=mu_water, check_hu=check_hu,
            max_chunk_elements=max_chunk_elements, method=method,
        )

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The parameters of the last draw (``{"applied", "family", "a", "b"}``)."""
        return self.rand_kernel.last_params

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandFBPKerneld:
        """Seed this transform and the array transform that draws the kernel."""
        super().set_random_state(seed, state)
        self.rand_kernel.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """One draw (apply?, family, a, b) for all keys."""
        self.rand_kernel.randomize(None)
        self._do_transform = bool(self.rand_kernel.last_params["applied"])

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Draw once and apply the kernel to each key; returns a new dictionary (inputs not changed)."""
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            d[key] = self.rand_kernel(d[key], randomize=False)
        return d


FBPKernelD = FBPKernelDict = FBPKerneld
RandFBPKernelD = RandFBPKernelDict = RandFBPKerneld
