"""Time ``RandPerlinNoised`` against MONAI's ``RandGaussianNoised`` on a 1x256x256x128 float32 image.

Run: ``python benchmarks/bench_perlin_noise.py`` (one thread: the limits are set here, before numpy is imported)
or ``python benchmarks/bench_perlin_noise.py --default-threads``. Both transforms run with ``prob=1`` in the
same process on the same torch tensor; each is timed ``--repeats`` times after one warm-up and the medians
are compared. ``RandPerlinNoised`` uses its defaults (4 octaves, persistence 0.5, first-octave cell 16-64
voxels) unless ``--scale`` fixes the cell size (e.g. ``--scale 16``, the finest default: the costliest).
Target: Perlin median / Gaussian median <= 3; exits with code 1 when above.
"""

from __future__ import annotations

import os
import sys

DEFAULT_THREADS = "--default-threads" in sys.argv[1:]
if not DEFAULT_THREADS:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Callable, List  # noqa: E402

import torch  # noqa: E402
from monai.transforms import RandGaussianNoised  # noqa: E402

from monai_ext.transforms import RandPerlinNoised  # noqa: E402

if not DEFAULT_THREADS:
    torch.set_num_threads(1)

SHAPE = (1, 256, 256, 128)
TARGET_RATIO = 3.0


def _time_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each transform (median reported)")
    parser.add_argument("--scale", type=float, default=None, help="fix the first-octave cell size (voxels)")
    parser.add_argument("--default-threads", action="store_true", help="keep numpy's and torch's thread counts")
    args = parser.parse_args()

    img = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0))
    gauss = RandGaussianNoised(keys="image", prob=1.0, std=0.1)
    gauss.set_random_state(0)
    perlin_kw = {} if args.scale is None else {"scale_range": (args.scale, args.scale)}
    perlin = RandPerlinNoised(keys="image", prob=1.0, amplitude_range=(0.0, 0.1), **perlin_kw)
    perlin.set_random_state(0)

    run_g, run_p = (lambda: gauss({"image": img})), (lambda: perlin({"image": img}))
    run_g(), run_p()  # warm-up
    tg: List[float] = []
    tp: List[float] = []
    for _ in range(args.repeats):  # interleaved, so that load from other jobs hits both alike
        tg.append(_time_ms(run_g))
        tp.append(_time_ms(run_p))
    mg, mp = statistics.median(tg), statistics.median(tp)
    ratio = mp / mg
    print(f"{'x'.join(map(str, SHAPE))} float32, {torch.get_num_threads()} torch thread(s), {args.repeats} runs each "
          f"(+ warm-up); Perlin scale {'16-64 (default)' if args.scale is None else args.scale} voxels")
    print(f"{'transform':>20} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, ts in (("RandGaussianNoised", tg), ("RandPerlinNoised", tp)):
        print(f"{name:>20} {statistics.median(ts):10.1f} {min(ts):8.1f} {max(ts):8.1f}")
    ok = ratio <= TARGET_RATIO
    print(f"ratio Perlin / Gaussian = {ratio:.2f} (target <= {TARGET_RATIO:g}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
