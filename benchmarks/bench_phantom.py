"""Time ``generate_chest_ct`` on one CPU thread against the 2 s target for 256x256x128.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py`` (the thread limits are also set
here, before numpy is imported).  Prints best/median of 5 runs per configuration, the ratio of the
median to the target, and a reference "baseline" measured in the same run: one
``np.random.default_rng().normal(size=shape)`` plus one ``scipy.ndimage.gaussian_filter`` (sigma 1
voxel) of the same volume.  Exits with code 1 when the 256x256x128 median exceeds the target.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Callable, List, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from monai_ext.phantoms import generate_chest_ct

if "torch" in sys.modules:
    import torch

    torch.set_num_threads(1)

TARGET_S = 2.0
RUNS = 5
CONFIGS: List[Tuple[Tuple[int, int, int], Tuple[float, float, float]]] = [
    ((256, 256, 128), (1.4, 1.4, 2.5)),
    ((128, 128, 96), (3.0, 3.0, 3.0)),
]


def _times(fn: Callable[[], object], runs: int = RUNS) -> List[float]:
    fn()  # warm-up (page faults, caches)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _baseline(shape: Sequence[int]) -> float:
    rng = np.random.default_rng()

    def run() -> None:
        ndi.gaussian_filter(rng.normal(size=tuple(shape)), 1.0)

    return statistics.median(_times(run, 3))


def main() -> int:
    print(f"generate_chest_ct, 1 thread, {RUNS} runs (+1 warm-up); target {TARGET_S:.1f} s for 256x256x128")
    print(f"{'shape':>14} {'spacing (mm)':>16} {'best s':>8} {'median s':>9} {'median/target':>14} {'baseline s':>11}")
    status = 0
    for k, (shape, spacing) in enumerate(CONFIGS):
        ts = _times(lambda: generate_chest_ct(shape, spacing, seed=k))
        best, med = min(ts), statistics.median(ts)
        base = _baseline(shape)
        print(f"{'x'.join(map(str, shape)):>14} {','.join(map(str, spacing)):>16} {best:8.3f} {med:9.3f} "
              f"{med / TARGET_S:14.2f} {base:11.3f}")
        if shape == (256, 256, 128) and med > TARGET_S:
            status = 1
    print("baseline = one np.random.default_rng().normal(size=shape) + one ndimage.gaussian_filter(sigma=1)")
    print("PASS" if status == 0 else f"FAIL: 256x256x128 median above {TARGET_S:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
