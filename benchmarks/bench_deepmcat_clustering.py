"""The clustering step of DeepMCAT (bundles/deepmcat_series_clustering) at archive scale: features of N frames through
the bundle's ``DeepMCATNet`` (eval mode, batches of 256) plus scikit-learn k-means with 8 x 10 clusters on the
L2-normalised features (:func:`monai_ext.apps.deepmcat_series_clustering.cluster_features`), against the plain-MONAI
baseline of one inference pass of the same frames through a MONAI ``Classifier`` of the same widths (what any
per-image model costs), in the same run.

Run: ``python benchmarks/bench_deepmcat_clustering.py [--frames 20000] [--device cuda]``. Random 64 x 64 frames (the
cost does not depend on the content or the weights). Prints seconds for features, k-means and the whole step, and the
ratio step / MONAI baseline. The issue's target: 20,000 frames on CPU in minutes, not hours.
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.networks.nets import Classifier

from monai_ext.apps.deepmcat_series_clustering import DeepMCATNet, cluster_features


def _timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


@torch.no_grad()
def _features(net: torch.nn.Module, frames: torch.Tensor, device: str, batch: int, features: bool) -> torch.Tensor:
    outs = []
    for i in range(0, len(frames), batch):
        x = frames[i:i + batch].to(device)
        outs.append((net.features(x) if features else net(x)).cpu())
    return torch.cat(outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=80)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    frames = torch.randn(args.frames, 1, args.size, args.size)
    net = DeepMCATNet(num_clusters=args.clusters).to(args.device).eval()
    baseline = Classifier((1, args.size, args.size), classes=args.clusters, channels=(8, 16, 32, 64, 64),
                          strides=(2, 2, 2, 2, 2)).to(args.device).eval()
    t_base, _ = _timed(lambda: _features(baseline, frames, args.device, args.batch, features=False))
    t_feat, feats = _timed(lambda: _features(net, frames, args.device, args.batch, features=True))
    t_km, assign = _timed(lambda: cluster_features(feats.numpy(), args.clusters, seed=0))
    step = t_feat + t_km
    print(f"{args.frames} frames of {args.size} px on {args.device}, {torch.get_num_threads()} threads")
    print(f"  DeepMCATNet features: {t_feat:.1f} s; k-means ({args.clusters} clusters): {t_km:.1f} s; "
          f"clustering step: {step:.1f} s ({step / 60:.2f} min)")
    print(f"  MONAI Classifier (same widths) inference pass: {t_base:.1f} s")
    print(f"  ratio clustering step / MONAI inference pass: {step / t_base:.2f}")


if __name__ == "__main__":
    main()
