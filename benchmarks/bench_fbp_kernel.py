"""Time ``RandFBPKerneld`` (FBPAug, prob 1) on a 1x512x512xN float32 CT next to a plain gamma transform.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fbp_kernel.py [--slices N] [--device cpu|cuda|all]``
(default 300 slices; ``all``: CPU, then CUDA when a device is present). The volume is a synthetic chest slab
in HU (air, a body ellipse at 40 HU, two lungs at -850 HU, a spine at 700 HU, 20 HU noise), as a torch tensor
on the device. For each device it prints the seconds of one ``RandFBPKerneld`` call (the kernel is drawn:
sharpen or smooth; the cost does not depend on it), the seconds of MONAI's ``RandAdjustContrastd`` (prob 1,
gamma 0.5-4.5, the paper's comparison "Gamma": min-max rescale, power, back) on the same volume, the time per
slice and the ratio FBP / gamma, and the FBP time extrapolated to 300 slices; the same for ``method="fourier"``
(the kernel as a 2D-Fourier filter of each slice).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from monai.transforms import RandAdjustContrastd

from monai_ext.transforms import RandFBPKerneld


def _volume(slices: int, device: str) -> torch.Tensor:
    n = 512
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    sl = np.full((n, n), -1000.0, np.float32)
    sl[(xx / 230) ** 2 + (yy / 170) ** 2 <= 1] = 40.0
    for cx in (-100, 100):
        sl[((xx - cx) / 80) ** 2 + (yy / 120) ** 2 <= 1] = -850.0
    sl[(xx**2 + (yy - 120) ** 2) <= 25**2] = 700.0
    rng = np.random.default_rng(0)
    vol = np.repeat(sl[None, :, :, None], slices, axis=-1)
    vol += rng.normal(0.0, 20.0, vol.shape).astype(np.float32)
    return torch.as_tensor(vol, device=device)


def _time(fn: Callable[[], object], device: str, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench(device: str, slices: int) -> None:
    """Print the timings on one device."""
    vol = _volume(slices, device)
    fbp = RandFBPKerneld(keys="image", prob=1.0).set_random_state(0)
    fourier = RandFBPKerneld(keys="image", prob=1.0, method="fourier").set_random_state(0)
    gamma = RandAdjustContrastd(keys="image", prob=1.0).set_random_state(0)
    if device == "cuda":  # warm up (kernels, allocator) on a few slices
        fbp({"image": vol[..., :4]})
    t_gamma = _time(lambda: gamma({"image": vol}), device, repeats=3)
    t_fbp = _time(lambda: fbp({"image": vol}), device, repeats=1)
    t_fourier = _time(lambda: fourier({"image": vol}), device, repeats=3)
    params = fbp.last_params
    print(f"[{device}] 1x512x512x{slices} float32, torch threads {torch.get_num_threads()}")
    print(f"  RandFBPKerneld (prob 1, {params['family']} a={params['a']:.2f} b={params['b']:.2f}): "
          f"{t_fbp:.2f} s ({1e3 * t_fbp / slices:.1f} ms/slice; 300 slices: ~{t_fbp / slices * 300:.1f} s)")
    print(f"  RandAdjustContrastd (prob 1, gamma): {t_gamma:.3f} s ({1e3 * t_gamma / slices:.2f} ms/slice)")
    print(f"  RandFBPKerneld method='fourier': {t_fourier:.2f} s ({1e3 * t_fourier / slices:.1f} ms/slice; "
          f"300 slices: ~{t_fourier / slices * 300:.1f} s)")
    print(f"  ratio FBP / gamma: {t_fbp / t_gamma:.0f}x; fourier / gamma: {t_fourier / t_gamma:.1f}x; "
          f"FBP / fourier: {t_fbp / t_fourier:.0f}x")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="number of axial slices (default 300)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("[cuda] no CUDA device: skipped")
            continue
        bench(device, args.slices)


if __name__ == "__main__":
    main()
