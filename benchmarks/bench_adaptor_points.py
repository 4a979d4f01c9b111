"""Frames per second of suture-point inference (bundles/adaptor_suture_landmarks): the bundle's network (MONAI
FlexibleUNet with the narrow ``resnet10_w16`` encoder) plus each point post-processing (max-pool top-k peaks,
Otsu + opening + oversize split), against the plain-MONAI baseline of FlexibleUNet with MONAI's own ``resnet10``
encoder (64-512 features) and no post-processing, on the same 256 x 160 frames (144 padded to a multiple of 32),
in the same run.

Run: ``python benchmarks/bench_adaptor_points.py [--frames 32] [--batch 8] [--device cuda]``. Random weights and
synthetic valve frames: only the timing means anything. Prints frames per second and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.networks.nets import FlexibleUNet

import monai_ext  # noqa: F401 - registers the narrow encoders
from monai_ext.phantoms import generate_valve_frame, sample_valve_surgery
from monai_ext.transforms import HeatmapPeaksTopK, HeatmapToPointsOtsu


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _fps(run, frames: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        run(frames[:batch])  # warm-up
        _sync()
        t0 = time.perf_counter()
        for i in range(0, len(frames), batch):
            run(frames[i: i + batch])
        _sync()
    return len(frames) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    surgery = sample_valve_surgery(np.random.default_rng(0), "intraop")
    images = [generate_valve_frame(s, surgery)[0] for s in range(args.frames)]
    frames = torch.as_tensor(np.stack(images)).permute(0, 1, 3, 2).float().div(255)  # (B, 3, x, y) as MONAI loads
    frames = torch.nn.functional.pad(frames, (0, 16)).to(args.device)                 # y 144 -> 160
    ours = FlexibleUNet(3, 1, "resnet10_w16", spatial_dims=2, decoder_channels=(64, 32, 16, 16, 16)).to(args.device).eval()
    baseline = FlexibleUNet(3, 1, "resnet10", spatial_dims=2).to(args.device).eval()
    peaks, otsu = HeatmapPeaksTopK(sigmoid=True), HeatmapToPointsOtsu(sigmoid=True, min_threshold=0.1)

    def with_points(post):
        def run(x):
            for heat in ours(x):
                post(heat)
        return run

    rates = {
        "MONAI FlexibleUNet resnet10, network only (baseline)": _fps(baseline, frames, args.batch),
        "bundle network only (resnet10_w16)": _fps(ours, frames, args.batch),
        "bundle network + top-k peaks": _fps(with_points(peaks), frames, args.batch),
        "bundle network + Otsu points": _fps(with_points(otsu), frames, args.batch),
    }
    base = next(iter(rates.values()))
    print(f"{args.frames} frames of 256 x 144 (padded to 256 x 160), batch {args.batch}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    for name, fps in rates.items():
        print(f"{name:55s} {fps:8.1f} frames/s   ratio to baseline {fps / base:5.2f}")


if __name__ == "__main__":
    main()
