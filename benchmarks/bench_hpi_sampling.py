"""Sampling throughput of HPI inpainting (bundles/us_inpainting_hpi): completions per second of ``HPIInpaintingNet.sample``
(the prior encoder once, then K top-down decodes with fresh latents, each composited) against the plain-MONAI baseline
of one forward pass of a MONAI ``UNet`` of the same widths per completion (a deterministic inpainter, which gives one
completion per pass), in the same run; also the prior-mean completion (``forward``, what TorchScript exports) and
scikit-image's biharmonic inpainting.

Run: ``python benchmarks/bench_hpi_sampling.py [--model bundles/us_inpainting_hpi/models/model.pt] [--device cuda]``.
Without a weights file a network of the bundle's size with random weights is timed (the cost does not depend on
training). Prints completions per second of each (median of --repeats runs) and the ratio HPI / MONAI UNet.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from monai.networks.nets import UNet

from monai_ext.apps.us_inpainting_hpi import HPIInpaintingNet, biharmonic_inpaint, load_hpi_network


def _median_time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundles/us_inpainting_hpi/models/model.pt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16, help="masked images per call")
    ap.add_argument("--samples", type=int, default=8, help="completions per image (K)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    net = load_hpi_network(args.model, args.device) if Path(args.model).is_file() else HPIInpaintingNet().to(args.device).eval()
    ch = net.config["channels"]
    unet = UNet(2, 2, 1, channels=ch, strides=[2] * (len(ch) - 1), num_res_units=1, norm="batch").to(args.device).eval()
    x = torch.rand(args.batch, 2, args.size, args.size, device=args.device)
    x[:, 1] = (x[:, 1] > 0.8).float()
    n = args.batch * args.samples
    with torch.no_grad():
        net.sample(x, 1)  # warm-up
        t_hpi = _median_time(lambda: net.sample(x, args.samples, 1.0), args.repeats)
        t_mean = _median_time(lambda: [net(x) for _ in range(args.samples)], args.repeats)
        t_unet = _median_time(lambda: [unet(x) for _ in range(args.samples)], args.repeats)
    img, hole = x[0, :1].cpu(), x[0, 1:].cpu()
    t_bih = _median_time(lambda: biharmonic_inpaint(img, hole), max(1, args.repeats // 2))
    print(f"device {args.device}, {args.batch} images of {args.size} x {args.size}, K = {args.samples}, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters (prior + posterior); MONAI UNet "
          f"{sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M")
    print(f"HPI sample (K completions, encoder once): {n / t_hpi:9.1f} completions/s")
    print(f"HPI prior mean (forward, once per completion): {n / t_mean:9.1f} completions/s")
    print(f"MONAI UNet forward (baseline):            {n / t_unet:9.1f} completions/s")
    print(f"biharmonic (scikit-image, one image):     {1 / t_bih:9.1f} completions/s")
    print(f"ratio HPI sample / MONAI UNet: {t_unet / t_hpi:.2f}")


if __name__ == "__main__":
    main()
