"""Sampling throughput of the BrainNetGAN generator (bundles/brainnetgan_connectome): connectomes per second through
the bundle's sampling path (``gan_connectomes``: weights loaded, class codes drawn, sampled in batches, upper triangle
mirrored) against a plain PyTorch loop over the same network (``net(x)``, sigmoid, mirroring by index assignment), in
the same run; also the training-set step that uses it (``connectome_training_set`` with the GAN) and SMOTE for the
same count.

Run: ``python benchmarks/bench_connectome_sampling.py [--generator models/generator.pt] [--device cuda]``. Without a
weights file a generator of the bundle's size with random weights is timed (the cost does not depend on training).
Prints connectomes per second of each (median of --repeats runs) and the ratio bundle / plain.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from monai_ext.apps.brainnetgan_connectome import ConnectomeGenerator, gan_connectomes, oversampled_connectomes


def _median_time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def plain_sampling(net: ConnectomeGenerator, num: int, batch: int, device: str) -> np.ndarray:
    n = net.num_nodes
    rows, cols = np.triu_indices(n, 1)
    out = []
    with torch.no_grad():
        for start in range(0, num, batch):
            b = min(batch, num - start)
            labels = torch.arange(start, start + b) % net.num_classes
            x = torch.cat([torch.randn(b, net.latent_dim), torch.nn.functional.one_hot(labels, net.num_classes)], 1)
            v = torch.sigmoid(net.net(x.to(device))).cpu().numpy()
            m = np.zeros((b, n, n), np.float32)
            m[:, rows, cols] = v
            out.append(m + m.transpose(0, 2, 1))
    return np.concatenate(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--generator", default=None, help="generator weights (default: random weights, bundle size)")
    p.add_argument("--num", type=int, default=2000, help="connectomes per timing")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.generator) if args.generator else Path(tmp) / "generator.pt"
        if not args.generator:
            torch.save(ConnectomeGenerator().state_dict(), path)
        net = ConnectomeGenerator()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net = net.to(args.device).eval()
        counts = {0: args.num // 2, 1: args.num - args.num // 2}
        t_bundle = _median_time(lambda: gan_connectomes(path, counts, seed=0, device=args.device,
                                                         batch_size=args.batch), args.repeats)
        t_plain = _median_time(lambda: plain_sampling(net, args.num, args.batch, args.device), args.repeats)
        real = plain_sampling(net, 132, args.batch, args.device)[:, None]
        labels = np.arange(132) % 2
        t_smote = _median_time(lambda: oversampled_connectomes(real, labels, {0: 66, 1: 66}, "smote"), args.repeats)
    print(f"device {args.device}, {args.threads} thread(s), {args.num} connectomes of 90 x 90 per run")
    print(f"bundle sampling (gan_connectomes): {args.num / t_bundle:9.0f} connectomes/s")
    print(f"plain PyTorch loop:                {args.num / t_plain:9.0f} connectomes/s")
    print(f"ratio bundle / plain throughput:   {t_plain / t_bundle:9.3f}")
    print(f"SMOTE (132 real -> 132 new):       {132 / t_smote:9.0f} connectomes/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
