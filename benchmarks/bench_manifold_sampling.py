"""Time manifold sampling (HMC on sqrt(det G^-1), the paper's generator) of 1,000 latent points plus their
decoding, on one CPU thread, against prior sampling + decoding of the same count in the same run.

Run: ``python benchmarks/bench_manifold_sampling.py [--checkpoint models/rhvae_class0.pt]``. Without a
checkpoint an RHVAE of the bundle's size (64 x 64 images, latent 8, channels 8/16/32) is built with random
weights and a metric bank of 50 encoded random images (the cost does not depend on training). Prints the
median of 3 runs of each, the ratio HMC / prior, and exits with code 1 when HMC + decode exceeds --target_s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from monai_ext.apps.vae_manifold_augmentation import (
    MetricHMCSampler,
    RiemannianHamiltonianVAE,
    generate_images,
    load_rhvae,
)


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--target_s", type=float, default=30.0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.checkpoint:
        model = load_rhvae(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = RiemannianHamiltonianVAE(2, (1, 64, 64), latent_size=8, channels=(8, 16, 32), strides=(2, 2, 2), temperature=1.5)
        model.update_metric_bank(torch.rand(50, 1, 64, 64))
        model.eval()
    sampler = MetricHMCSampler()  # 100 MCMC steps x 15 leapfrog steps of 0.05 (authors' code)
    hmc = _time(lambda: generate_images(model, args.num, sampler, seed=0), args.repeats)
    prior = _time(lambda: generate_images(model, args.num, "prior", seed=0), args.repeats)
    h, pr = statistics.median(hmc), statistics.median(prior)
    print(f"bank: {model.bank_centroids.shape[0]} centroids, latent {model.latent_size}, image {tuple(model.in_shape)}")
    print(f"HMC manifold sampling + decode, {args.num} images: median {h:.2f} s (runs {', '.join(f'{x:.2f}' for x in hmc)}), acceptance {sampler.acceptance_rate:.3f}")
    print(f"prior sampling + decode, {args.num} images:        median {pr:.2f} s")
    print(f"ratio HMC / prior: {h / pr:.1f}x; target {args.target_s:.0f} s: {'OK' if h <= args.target_s else 'FAIL'}")
    return 0 if h <= args.target_s else 1


if __name__ == "__main__":
    sys.exit(main())
