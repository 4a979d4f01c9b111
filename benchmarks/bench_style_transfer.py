"""Throughput of style-transfer augmentation (RandStyleTransferd) in a MONAI Compose + DataLoader, on the CPU,
against the plain traditional-augmentation pipeline measured in the same run.

    python benchmarks/bench_style_transfer.py [--model bundles/us_variational_style_transfer] [--workers 2]
        [--baseline_model OLD_MODEL.pt]

Without ``--model`` (or when it holds no trained weights) a randomly initialised model of the bundle's
architecture is used: the cost of a forward pass does not depend on the weights. Images are synthetic B-mode
(monai_ext.phantoms), ``--size`` x ``--size``. Prints images/s of both pipelines and their ratio.

``--baseline_model``: also restyle the same images, batch by batch in the main process (``StyleTransfer``, no
augmentation), with ``--model`` and with this earlier model, and print the ratio of their throughputs (the
loss network only costs at training time: a new loss network must not slow restyling down).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianSmoothd,
)

from monai_ext.apps.us_variational_style_transfer import (
    RandStyleTransferd,
    StyleTransfer,
    USVariationalStyleTransfer,
    save_us_style_checkpoint,
)
from monai_ext.phantoms import ULTRASOUND_STYLES, generate_us_anatomy, simulate_bmode


def _traditional():
    return [
        RandAdjustContrastd("image", prob=0.5, gamma=(0.7, 1.5)),
        RandGaussianSmoothd("image", prob=0.3, sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0)),
        RandFlipd(["image", "label"], prob=0.5, spatial_axis=1),
    ]


def _throughput(pipeline: Compose, data: list, workers: int, batch: int, epochs: int) -> float:
    loader = DataLoader(Dataset(data, pipeline), batch_size=batch, num_workers=workers, shuffle=True,
                        persistent_workers=workers > 0)
    next(iter(loader))  # start workers, load the model once per worker
    t0 = time.perf_counter()
    n = 0
    for _ in range(epochs):
        for b in loader:
            n += b["image"].shape[0]
    return n / (time.perf_counter() - t0)


def _restyle_throughput(model: str, images: torch.Tensor, refs: torch.Tensor, batch: int, repeats: int) -> float:
    st = StyleTransfer(model, device="cpu")
    st(images[:batch], source="reference", spread=1.0, seed=0, style_image=refs[:1])  # load the model once
    t0 = time.perf_counter()
    n = 0
    for r in range(repeats):
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            st(x, source="reference", spread=1.0, seed=r * 1000 + i, style_image=refs[i % len(refs)])
            n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="trained model: checkpoint, models/ folder or bundle folder")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--prob", type=float, default=1.0, help="probability of restyling an image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baseline_model", default=None, help="an earlier model: restyling throughput ratio against it")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    styles = list(ULTRASOUND_STYLES)
    data = []
    for i in range(args.images):
        anatomy = generate_us_anatomy(i, (args.size, args.size))
        img = simulate_bmode(anatomy, styles[i % len(styles)], seed=i)
        data.append({"image": img, "label": anatomy["label"][None].astype(np.int64)})
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None or not any(
            p.is_file() for p in (Path(model), Path(model) / "model.pt", Path(model) / "models" / "model.pt")
        ):
            model = save_us_style_checkpoint(USVariationalStyleTransfer(channels=(16, 32, 64, 96), latent_dims=8),
                                             Path(tmp) / "model.pt")
            print("model: random init of the bundle architecture (16, 32, 64, 96)")
        else:
            print(f"model: {model}")
        refs = [d["image"] for d in data[:4]]
        trad = Compose(_traditional())
        style = Compose([RandStyleTransferd("image", model, prob=args.prob, style_images=refs, device="cpu")] + _traditional())
        r_trad = _throughput(trad, data, args.workers, args.batch, args.epochs)
        r_style = _throughput(style, data, args.workers, args.batch, args.epochs)
        lines = []
        if args.baseline_model:
            images = torch.stack([torch.as_tensor(d["image"], dtype=torch.float32).reshape(1, args.size, args.size) for d in data])
            r_new = _restyle_throughput(model, images, images[:4], args.batch, args.epochs)
            r_old = _restyle_throughput(args.baseline_model, images, images[:4], args.batch, args.epochs)
            lines.append(f"restyling only, --model:             {r_new:8.1f} images/s")
            lines.append(f"restyling only, --baseline_model:    {r_old:8.1f} images/s")
            lines.append(f"slow-down --model vs baseline:       {r_old / r_new:8.3f} (target <= 1.5)")
    print(f"{args.size}x{args.size}, {args.workers} workers, batch {args.batch}, {args.threads} torch thread(s) in the main process")
    print(f"traditional augmentation:            {r_trad:8.1f} images/s")
    print(f"+ RandStyleTransferd (prob {args.prob:.2f}):    {r_style:8.1f} images/s")
    print(f"ratio style / traditional:           {r_style / r_trad:8.3f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
