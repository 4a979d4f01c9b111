"""Time the synthetic B-mode simulator on one CPU thread and print what tells the styles apart.

Run: ``python benchmarks/bench_ultrasound_phantom.py`` (thread limits are set here, before numpy is
imported). Prints, per built-in style, the median of 5 runs of ``simulate_bmode`` on a 128x128 anatomy
(target: 0.1 s) and, on uniform reference tissue, the speckle statistics: mean grey level, standard
deviation, lateral and axial autocorrelation half-widths (pixels, lag where the autocorrelation of the
detrended image falls to 0.5) and the bottom / top mean ratio (depth falloff left after TGC).
Exits with code 1 when a style's median exceeds the target.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from monai_ext.phantoms import (
    ULTRASOUND_STYLES,
    generate_us_anatomy,
    simulate_bmode,
    ultrasound_fov_mask,
)

TARGET_S = 0.1
RUNS = 5


def _half_width(img: np.ndarray, axis: int) -> float:
    x = img - ndimage.uniform_filter(img, 15, mode="nearest")
    spec = np.fft.rfft(x, n=2 * x.shape[axis], axis=axis)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=axis)
    ac = np.take(ac, range(8), axis=axis).mean(axis=1 - axis)
    ac = ac / ac[0]
    i = int(np.argmax(ac < 0.5))
    return i - 1 + (ac[i - 1] - 0.5) / (ac[i - 1] - ac[i])


def main() -> int:
    t0 = time.perf_counter()
    anatomy = generate_us_anatomy(0)
    t_anatomy = time.perf_counter() - t0
    ones = np.ones((128, 128), np.float32)
    uniform = {"echogenicity": ones, "attenuation": ones}
    print(f"generate_us_anatomy 128x128: {t_anatomy * 1e3:.0f} ms")
    print(f"{'style':22s} {'median ms':>9s} {'mean':>6s} {'std':>6s} {'lat px':>6s} {'ax px':>6s} {'falloff':>7s}")
    slow = []
    for name, style in ULTRASOUND_STYLES.items():
        simulate_bmode(anatomy, style, 0)  # warm-up
        times = []
        for r in range(RUNS):
            t0 = time.perf_counter()
            simulate_bmode(anatomy, style, r)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        img = simulate_bmode(uniform, style, 1)[0]
        roi = img[40:90, 44:84]
        fov = ultrasound_fov_mask(img.shape, style)
        falloff = img[104:120][fov[104:120]].mean() / max(img[8:24][fov[8:24]].mean(), 1e-3)
        print(
            f"{name:22s} {med * 1e3:9.1f} {roi.mean():6.3f} {roi.std():6.3f} {_half_width(roi, 1):6.2f} "
            f"{_half_width(roi, 0):6.2f} {falloff:7.2f}"
        )
        if med > TARGET_S:
            slow.append(name)
    if slow:
        print(f"slower than {TARGET_S} s: {slow}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
