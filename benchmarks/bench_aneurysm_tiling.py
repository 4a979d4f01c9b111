"""Seconds per TOF-MRA volume of the aneurysm bundle's inference (bundles/aneurysm_tof_mra_detection): its tiling that
keeps only each tile's centre (``CentralCropTilingInferer``, 32^3 tiles, 4-voxel margins, so tiles step by 24)
against the plain-MONAI baseline, ``SlidingWindowInferer`` with the same tiles and MONAI's default overlap (0.25,
constant blending), on the same synthetic volumes at the bundle's 0.4 mm grid, in the same run; plus the
component detections of the probability map. The network is the bundle's U-Net (16-128 channels) with random
weights: only the timing means anything.

Run: ``python benchmarks/bench_aneurysm_tiling.py [--volumes 4] [--device cuda] [--tile 32 --margin 4]``. Prints
seconds per volume for each and the ratio to the baseline (> 1: slower than plain MONAI).
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import UNet
from monai.transforms import Spacing

from monai_ext.inferers import CentralCropTilingInferer
from monai_ext.phantoms import generate_tof_mra_case
from monai_ext.transforms import ComponentDetections


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _seconds(run, volumes: list[torch.Tensor]) -> float:
    with torch.no_grad():
        run(volumes[0])  # warm-up
        _sync()
        t0 = time.perf_counter()
        for v in volumes:
            run(v)
        _sync()
    return (time.perf_counter() - t0) / len(volumes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile", type=int, default=32)
    ap.add_argument("--margin", type=int, default=4)
    ap.add_argument("--sw_batch_size", type=int, default=8)
    args = ap.parse_args()
    volumes = []
    for seed in range(args.volumes):
        case = generate_tof_mra_case(seed)
        img = Spacing(pixdim=(0.4, 0.4, 0.4))(MetaTensor(torch.as_tensor(case.image)[None], affine=torch.as_tensor(case.affine)))
        img = (img - img.min()) / (img.max() - img.min())
        volumes.append(img.as_tensor()[None].float().to(args.device))
    net = UNet(3, 1, 1, (16, 32, 64, 128), (2, 2, 2), num_res_units=0, norm="batch").to(args.device).eval()
    ours = CentralCropTilingInferer(args.tile, args.margin, sw_batch_size=args.sw_batch_size)
    base = SlidingWindowInferer(args.tile, sw_batch_size=args.sw_batch_size, overlap=0.25)
    detect = ComponentDetections(0.5)
    t_base = _seconds(lambda v: base(v, net), volumes)
    t_ours = _seconds(lambda v: ours(v, net), volumes)
    t_full = _seconds(lambda v: detect(torch.sigmoid(ours(v, net))[0].cpu()), volumes)
    print(f"{args.volumes} volumes of {tuple(volumes[0].shape[2:])} voxels (0.4 mm), {args.tile}^3 tiles, "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"plain MONAI SlidingWindowInferer (overlap 0.25): {t_base:.3f} s/volume")
    print(f"CentralCropTilingInferer (margin {args.margin}):     {t_ours:.3f} s/volume  ratio {t_ours / t_base:.2f}")
    print(f"  + sigmoid and component detections:   {t_full:.3f} s/volume  ratio {t_full / t_base:.2f}")


if __name__ == "__main__":
    main()
