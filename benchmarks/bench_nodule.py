"""Time ``NoduleInsert`` / ``NoduleErase`` on a 512x512x300 CT against the 20 ms-per-nodule target.

Run: ``python benchmarks/bench_nodule.py`` (one thread: the limits are set here, before numpy is imported) and
``python benchmarks/bench_nodule.py --default-threads`` (numpy's and torch's default thread counts). The volume is int16 HU (lung-like -850 HU with noise, 0.7 x 0.7 x 1.0 mm voxels)
with a uint8 label; both are changed in place. For each nodule diameter and array type (numpy, torch
CPU) it prints the median and worst time of ``RUNS`` insertions / erasures at random positions, the
time of one full-volume copy of the image (``np.copy`` / ``torch.clone``) and the ratio median / copy.
Exits with code 1 when a 10 mm median exceeds the target.
"""

from __future__ import annotations

import os

import sys  # noqa: E402

DEFAULT_THREADS = "--default-threads" in sys.argv[1:]
if not DEFAULT_THREADS:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS"):
        os.environ[_var] = "1"

import statistics  # noqa: E402
import time  # noqa: E402
from typing import Callable, List  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monai_ext.transforms import NoduleErase, NoduleInsert

if not DEFAULT_THREADS:
    torch.set_num_threads(1)

TARGET_MS = 20.0
RUNS = 15
SHAPE = (512, 512, 300)
SPACING = (0.7, 0.7, 1.0)
DIAMETERS = (5.0, 10.0, 20.0, 30.0)


def _copy_ms(fn: Callable[[], object]) -> float:
    fn()
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def _volume(rng: np.random.Generator) -> np.ndarray:
    vol = np.full((1, *SHAPE), -850, np.int16)
    vol += rng.integers(-60, 61, size=vol.shape, dtype=np.int16)
    vol[..., :20] = 40  # a soft-tissue slab so the scan is not all lung
    return vol


def _run(img, label, diameter: float, rng: np.random.Generator) -> tuple[List[float], List[float]]:
    ins, ers = [], []
    for k in range(RUNS + 1):
        centre = [float(rng.uniform(60, 300)), float(rng.uniform(60, 300)), float(rng.uniform(60, 240))]
        t0 = time.perf_counter()
        _, rec = NoduleInsert(centre, diameter, "solid", "lobulated", seed=k, pixdim=SPACING, label_value=2, inplace=True).insert(
            img, label)
        t1 = time.perf_counter()
        NoduleErase(rec["centre_mm"], diameter, extent_mm=rec["extent_mm"] + 1.0, seed=k, pixdim=SPACING, inplace=True).erase(
            img, label=label, label_value=2)
        t2 = time.perf_counter()
        if k:  # the first run is a warm-up
            ins.append(1e3 * (t1 - t0))
            ers.append(1e3 * (t2 - t1))
    return ins, ers


def main() -> int:
    rng = np.random.default_rng(0)
    vol = _volume(rng)
    lab = np.ones((1, *SHAPE), np.uint8)
    copies = {"numpy": _copy_ms(lambda: np.copy(vol))}
    tvol, tlab = torch.from_numpy(vol.copy()), torch.from_numpy(lab.copy())
    copies["torch"] = _copy_ms(lambda: tvol.clone())
    print(f"NoduleInsert / NoduleErase on {'x'.join(map(str, SHAPE))} int16, spacing {SPACING} mm, {torch.get_num_threads()} torch thread(s), "
          f"{RUNS} runs (+1 warm-up); target {TARGET_MS:.0f} ms per nodule")
    print(f"{'array':>6} {'diam mm':>8} {'op':>7} {'median ms':>10} {'max ms':>8} {'copy ms':>8} {'median/copy':>12}")
    status = 0
    for kind, (img, label) in {"numpy": (vol, lab), "torch": (tvol, tlab)}.items():
        for diameter in DIAMETERS:
            ins, ers = _run(img, label, diameter, rng)
            for op, ts in (("insert", ins), ("erase", ers)):
                med = statistics.median(ts)
                print(f"{kind:>6} {diameter:8.0f} {op:>7} {med:10.2f} {max(ts):8.2f} {copies[kind]:8.1f} "
                      f"{med / copies[kind]:12.3f}")
                if diameter == 10.0 and med > TARGET_MS:
                    status = 1
    print("copy = one full-volume np.copy / torch.clone of the image")
    print("PASS" if status == 0 else f"FAIL: a 10 mm median above {TARGET_MS:.0f} ms")
    return status


if __name__ == "__main__":
    sys.exit(main())
