"""Cost of FS-Net's additions (bundles/fsnet_joint_training) per training step: the bundle's ``FSNet`` (channel
coding: 2 input channels, one feature-space branch per data set with channel attention, mixed batches routed through
both branches, the dataset-weighted Dice on each data set's own channels) against the plain-MONAI baseline of the
same shared ``UNet`` with MONAI ``DiceLoss`` on the whole batch, in the same run.

Run: ``python benchmarks/bench_fsnet_step.py [--steps 10] [--batch 4] [--device cuda]``. Random 64 x 64 x 8 patches
(the cost does not depend on the content). Prints seconds per step (forward, loss, backward, Adam) of each and the
ratio FS-Net / MONAI UNet, and on CUDA the peak memory of each.
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.losses import DiceLoss
from monai.networks.nets import UNet

from monai_ext.apps.fsnet_joint_training import DatasetWeightedSegLoss, FSNet


def _step_time(net, loss_fn, x, target, steps: int, device: str, **kwargs) -> tuple[float, float]:
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    for i in range(steps + 2):   # 2 warm-up steps
        if i == 2:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x, **kwargs), target).backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda") else float("nan")
    return (time.perf_counter() - t) / steps, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    shape = (args.batch, 64, 64, 8)
    label = torch.randint(0, 3, (args.batch, 1, *shape[1:]), device=args.device).float()
    index = torch.arange(args.batch, device=args.device) % 2          # half target, half auxiliary samples
    union = torch.where((index[:, None, None, None, None] == 1) & (label > 0), label + 2, label)
    fsnet = FSNet(in_channels=2, class_counts=[2, 3]).to(args.device)
    base = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128), strides=(2, 2, 2),
                num_res_units=2).to(args.device)
    t_base, m_base = _step_time(base, DiceLoss(to_onehot_y=True, softmax=True, batch=True),
                                torch.randn(args.batch, 1, *shape[1:], device=args.device), label, args.steps, args.device)
    t_fs, m_fs = _step_time(fsnet, DatasetWeightedSegLoss([2, 3], [0.95, 0.05]),
                            torch.randn(args.batch, 2, *shape[1:], device=args.device), (union, index), args.steps,
                            args.device, dataset_index=index)
    print(f"batch {args.batch} x 64 x 64 x 8 on {args.device}, {torch.get_num_threads()} threads, {args.steps} steps")
    print(f"  MONAI UNet + DiceLoss:          {t_base:.3f} s/step" + (f", peak {m_base:.0f} MiB" if m_base == m_base else ""))
    print(f"  FSNet + DatasetWeightedSegLoss: {t_fs:.3f} s/step" + (f", peak {m_fs:.0f} MiB" if m_fs == m_fs else ""))
    print(f"  ratio FS-Net / MONAI UNet: {t_fs / t_base:.2f}")


if __name__ == "__main__":
    main()
