"""Images per second of landmark inference on radiographs (bundles/fewshot_dag_xray_landmarks): the bundle's
DeepAdaptiveGraph (MONAI UNet feature map, 8-64 features, 16 channels; a global and 3 local graph steps) against
the plain-MONAI baseline of heatmap regression, a MONAI UNet of the same widths with one heatmap channel per
landmark and the arg-max of each, on the same 128 x 128 synthetic pelvis radiographs, in the same run.

Run: ``python benchmarks/bench_dag_landmarks.py [--images 64] [--batch 8] [--device cuda]``. Random weights: only
the timing means anything. Prints images per second and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.networks.nets import UNet

from monai_ext.networks import DeepAdaptiveGraph
from monai_ext.phantoms import XRAY_LANDMARK_NAMES, generate_xray_image


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rate(run, images: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        run(images[:batch])  # warm-up
        _sync()
        t0 = time.perf_counter()
        for i in range(0, len(images), batch):
            run(images[i: i + batch])
        _sync()
    return len(images) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    n = len(XRAY_LANDMARK_NAMES["pelvis"])
    pictures = np.stack([generate_xray_image(s, "pelvis")[0] for s in range(args.images)])
    images = torch.as_tensor(pictures).float().div(255).unsqueeze(1).to(args.device)
    dag = DeepAdaptiveGraph(n, channels=(8, 16, 32, 64), feature_channels=16).to(args.device).eval()
    unet = UNet(2, 1, n, channels=(8, 16, 32, 64), strides=(2, 2, 2), num_res_units=1).to(args.device).eval()

    def heatmap_argmax(x: torch.Tensor) -> torch.Tensor:
        heat = unet(x).flatten(2).argmax(dim=2)
        return torch.stack([heat // x.shape[3], heat % x.shape[3]], dim=-1)

    rates = {
        "MONAI UNet heatmaps + arg-max (baseline)": _rate(heatmap_argmax, images, args.batch),
        "DeepAdaptiveGraph (bundle)": _rate(dag, images, args.batch),
    }
    base = next(iter(rates.values()))
    print(f"{args.images} pelvis radiographs of 128 x 128, {n} landmarks, batch {args.batch}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    for name, rate in rates.items():
        print(f"{name:45s} {rate:8.1f} images/s   ratio to baseline {rate / base:5.2f}")


if __name__ == "__main__":
    main()
