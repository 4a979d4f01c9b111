"""Training throughput of a segmentation bundle versus the same network in a plain PyTorch loop.

Both runs use the objects the bundle config builds (network, loss, optimizer, data loader with its
cached preprocessing, crops and augmentation), so the only difference is the bundle's engine:
SupervisedTrainer with its handlers (stats, TensorBoard, LR schedule, time limit, validation hook).
Prints iterations per second of each and the ratio bundle / plain (target >= 0.9); on CUDA also the
peak GPU memory of each, with or without AMP. Bundles: covid19_ct_fewshot_seg (MONAI UNet, default),
brain_tumor_multiscale_unet and hand_bones_multiscale_unet (MultiScaleSumUNet), liver_tumor_ct_seg (2D MONAI UNet
on axial slices), label_noise_bias_study (its 2D U-Net, model seg, through SemiSupervisedIteration; the plain loop
runs the same network on the same loader with the soft Dice), box_supervised_seg (its 2.5D U-Net with the box losses,
box_source box3d), multiplanar_unet_sparse (the MP U-Net on sparse oblique planes, ignore-masked CE),
cacl_weak_segmentation (CaCL's VQ-VAE and classifier; the plain loop runs the same combined and classifier steps with
the same loss functions), ao_cone_label_transfer (its 2-output U-Net on cone-mosaic patches, Dice + BCE), each on its
synthetic data.

    python benchmarks/bench_train_overhead.py [--bundle NAME] [--epochs 4] [--augmentation AUG] [--threads 2]
    python benchmarks/bench_train_overhead.py --device cuda [--amp]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _covid_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_dataset

    synthesize_dataset(out, cases=cases, seed=0, progress=False)


def _brain_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_brain_tumor_dataset

    synthesize_brain_tumor_dataset(out, cases=cases, seed=0, progress=False)


def _liver_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_liver_tumor_dataset

    synthesize_liver_tumor_dataset(out, cases=cases, seed=0, progress=False)


def _box_data(out: str, cases: int) -> None:
    from monai_ext.apps.box_supervised_seg import synthesize_box_dataset

    synthesize_box_dataset(out, cases=cases, seed=0)


def _hand_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_hand_dataset

    synthesize_hand_dataset(out, cases=cases, seed=0, progress=False)


def _em_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_em_mitochondria_dataset

    synthesize_em_mitochondria_dataset(out, cases=max(cases, 4), seed=0, progress=False)


def _ihc_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_ihc_dataset

    synthesize_ihc_dataset(out, slides=max(cases, 8), patches_per_slide=16, seed=0, progress=False)


def _cone_data(out: str, cases: int) -> None:
    from monai_ext.phantoms import synthesize_cone_dataset

    synthesize_cone_dataset(out, labelled=max(cases, 4) * 4, pairs=1, test=1, seed=0, progress=False)


#: bundle -> (writes its synthetic data, config overrides of the benchmark)
BUNDLES = {
    "covid19_ct_fewshot_seg": (_covid_data, {}),
    "brain_tumor_multiscale_unet": (_brain_data, {"num_val": 1, "num_test": 1}),
    "hand_bones_multiscale_unet": (_hand_data, {"num_val": 1, "num_test": 1}),
    "liver_tumor_ct_seg": (_liver_data, {"num_val": 1, "num_test": 1}),
    "label_noise_bias_study": (_brain_data, {"num_val": 1, "num_test": 1, "slice_dir": lambda work: f"{work}/slices"}),
    "box_supervised_seg": (_box_data, {"num_val": 1, "num_test": 1, "num_labelled": 1, "box_source": "box3d"}),
    "multiplanar_unet_sparse": (_em_data, {"num_val": 1, "num_test": 1}),
    "cacl_weak_segmentation": (_ihc_data, {}),
    "ao_cone_label_transfer": (_cone_data, {"num_val": 2}),
}


def build(bundle: str, dataset_dir: str, work: str, augmentation: str, epochs: int, device: str, amp: bool):
    from monai.bundle import ConfigParser

    bundle_dir = REPO / "bundles" / bundle
    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "train.yaml"))
    overrides = {
        "bundle_root": str(bundle_dir),
        "dataset_dir": dataset_dir,
        "output_dir": work,
        "ckpt_dir": work,
        "log_dir": work,
        "max_epochs": epochs,
        "val_interval": 10**6,  # no validation: compare training iterations only
        "device": f"$torch.device('{device}')",
        "amp": amp,
        **{k: (v(work) if callable(v) else v) for k, v in BUNDLES[bundle][1].items()},
    }
    if augmentation is not None:
        overrides["augmentation"] = augmentation  # the bundle's choices (covid: none | bigaug | ...; liver: standard | ...)
    parser.update(overrides)
    return parser


def time_plain_cacl(parser, epochs: int) -> tuple[float, int]:
    """CaCL's iteration (combined step, classifier step every classifier_interval iterations) in a plain loop."""
    import torch.nn.functional as F

    from monai_ext.apps.cacl_weak_segmentation import (
        cacl_commitment_loss,
        cacl_reconstruction_loss,
        class_code_margin_loss,
    )
    from monai_ext.engines import HistoryImagePool

    net, cls = parser.get_parsed_content("network"), parser.get_parsed_content("classifier")
    opt, c_opt = parser.get_parsed_content("optimizer"), parser.get_parsed_content("classifier_optimizer")
    loader, device = parser.get_parsed_content("train#dataloader"), parser.get_parsed_content("device")
    interval = int(parser["classifier_interval"])
    pools = HistoryImagePool(64, seed=1), HistoryImagePool(64, seed=2)
    iters, start, step = 0, None, 0
    for epoch in range(epochs + 1):
        if epoch == 1:
            start = time.perf_counter()
        for batch in loader:
            img = batch["image"]
            x = (img.as_tensor() if hasattr(img, "as_tensor") else img).to(device).float()
            pos = batch["label"].to(device).bool()
            q = net.encode_quantize(x, pos)
            r_p, r_n = net.decode(q.e_p), net.decode(q.e_n)
            cls.requires_grad_(False)
            t_p = torch.where(pos, 0, 1).long()
            mapping = F.cross_entropy(cls(r_p), t_p) + F.cross_entropy(cls(r_n), torch.full_like(t_p, 1))
            cls.requires_grad_(True)
            loss = (mapping + 0.25 * cacl_commitment_loss(q, pos) + 100.0 * cacl_reconstruction_loss(x, r_p, r_n, pos)
                    + 50.0 * class_code_margin_loss(q, pos))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % interval == 0:
                fp = pools[0].query(r_p.detach()[pos]) if bool(pos.any()) else r_p[:0].detach()
                fn = pools[1].query(r_n.detach())
                target = torch.cat([torch.where(pos, 0, 1), torch.full((len(fp),), 2, device=device),
                                    torch.full((len(fn),), 3, device=device)]).long()
                c_opt.zero_grad(set_to_none=True)
                F.cross_entropy(cls(torch.cat([x, fp, fn])), target).backward()
                c_opt.step()
            step += 1
            iters += epoch >= 1
    _sync(device)
    return time.perf_counter() - start, iters


def time_plain(parser, epochs: int, amp: bool) -> tuple[float, int]:
    if "classifier_interval" in parser.config:
        return time_plain_cacl(parser, epochs)
    net, loss_fn, opt = parser.get_parsed_content("network"), parser.get_parsed_content("loss"), parser.get_parsed_content("optimizer")
    loader = parser.get_parsed_content("train#dataloader")
    device = parser.get_parsed_content("device")
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    net.train()
    iters, start = 0, None
    for epoch in range(epochs + 1):
        if epoch == 1:  # first epoch is warm-up
            start = time.perf_counter()
        for batch in loader:
            x, y = batch["image"].to(device), batch["label"].to(device)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=amp):
                loss = loss_fn(net(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            iters += epoch >= 1
    _sync(device)
    return time.perf_counter() - start, iters


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: str) -> str:
    if torch.device(device).type != "cuda":
        return "-"
    mb = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return f"{mb:.0f}"


def time_bundle(parser, epochs: int) -> tuple[float, int]:
    from ignite.engine import Events

    parser["max_epochs"] = epochs + 1
    trainer = parser.get_parsed_content("train#trainer")
    marks = {}
    trainer.add_event_handler(Events.EPOCH_STARTED(once=2), lambda e: marks.setdefault("t0", time.perf_counter()))
    trainer.add_event_handler(Events.COMPLETED, lambda e: marks.setdefault("t1", time.perf_counter()))
    trainer.run()
    return marks["t1"] - marks["t0"], trainer.state.iteration - trainer.state.epoch_length


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="covid19_ct_fewshot_seg", choices=sorted(BUNDLES))
    ap.add_argument("--epochs", type=int, default=4, help="timed epochs (after one warm-up epoch)")
    ap.add_argument("--augmentation", default=None, help="the bundle's augmentation key (default: the bundle's own)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="alternated runs of each; the fastest of each is reported")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from monai.utils import set_determinism

    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data")
        BUNDLES[args.bundle][0](data, args.cases)
        settings = (args.bundle, data, tmp, args.augmentation, args.epochs, args.device, args.amp)
        plain, bundle = [], []
        for _ in range(args.repeats):  # alternated, so that a slow spell of a shared machine hits both
            set_determinism(seed=0)
            plain.append(time_plain(build(*settings), args.epochs, args.amp))
            plain_mb = _peak_mb(args.device)
            set_determinism(seed=0)
            bundle.append(time_bundle(build(*settings), args.epochs))
            bundle_mb = _peak_mb(args.device)

    # the fastest repeat of each: the least disturbed by other processes
    plain_s, plain_n = min(plain, key=lambda r: r[0] / r[1])
    bundle_s, bundle_n = min(bundle, key=lambda r: r[0] / r[1])
    plain_ips, bundle_ips = plain_n / plain_s, bundle_n / bundle_s
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} threads"
    aug = f", augmentation {args.augmentation}" if args.augmentation else ""
    print(f"{args.bundle}: {dev}, amp {args.amp}{aug}, {args.epochs} timed epochs, fastest of {args.repeats} repeats")
    print(f"{'run':<22}{'iterations':>11}{'seconds':>10}{'it/s':>8}{'peak MB':>9}")
    print(f"{'plain PyTorch loop':<22}{plain_n:>11}{plain_s:>10.1f}{plain_ips:>8.2f}{plain_mb:>9}")
    print(f"{'bundle (train.yaml)':<22}{bundle_n:>11}{bundle_s:>10.1f}{bundle_ips:>8.2f}{bundle_mb:>9}")
    print(f"ratio bundle / plain: {bundle_ips / plain_ips:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
