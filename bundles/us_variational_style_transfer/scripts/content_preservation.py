"""Content preservation of the trained style-transfer model (Hung & Galeotti 2021, judged as: restyled images keep
their anatomy). A MONAI UNet is trained on every style of every training subject (configs/evaluate.yaml with
``train_set=all_styles``, traditional augmentation), then every test image (all styles, content) is restyled
several times and segmented; the score is the Dice (classes 1-3) between the segmentation of the content image
and that of each restyled version.

Restylings per content image: the posterior of one reference image of each of the 6 styles (a different test
subject, one posterior draw, spread 1) and two prior draws (spread 1.0 and 1.5). As a reference point the same
Dice is also computed between the content image and the same anatomy simulated in each other style (what the
segmenter does across real style changes), and Dice against the ground-truth labels is reported.

    cd bundles/us_variational_style_transfer
    python scripts/content_preservation.py --seg_epochs 15 [--segmenter eval/seg_all_styles_traditional_seed0/segmenter.pt]

The segmenter bounds this measure: it must itself agree with itself across styles. ``--judge_subjects N`` trains it
instead on N extra synthetic subjects (all styles, data seed ``--judge_data_seed``, so no anatomy is shared with
the test images or with the style model's training data), keeping the epoch with the best validation Dice:

    python scripts/content_preservation.py --judge_subjects 400 --seg_epochs 30

Writes <out>/content_preservation.json (default eval/content_preservation/): the per-image mean Dice over the
classes present in either segmentation, and the Dice per class pooled over all pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

BUNDLE = Path(__file__).resolve().parents[1]


def dice_fg(a: torch.Tensor, b: torch.Tensor, num_classes: int) -> float:
    """Mean Dice over foreground classes present in a or b (label maps (H, W)); 1.0 when both are empty."""
    ds = []
    for c in range(1, num_classes):
        x, y = a == c, b == c
        s = int(x.sum()) + int(y.sum())
        if s == 0:
            continue
        ds.append(2.0 * float((x & y).sum()) / s)
    return float(np.mean(ds)) if ds else 1.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--segmenter", nargs="+", default=None,
                   help="segmenter.pt of an all_styles run (trained here when missing); several: their mean softmax")
    p.add_argument("--seg_epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge_subjects", type=int, default=0,
                   help="> 0: train the segmenter on this many extra synthetic subjects (all styles) instead")
    p.add_argument("--judge_data_seed", type=int, default=7, help="data seed of those subjects (not 0: the test data)")
    p.add_argument("--seg_channels", type=int, nargs="+", default=None,
                   help="UNet channels of the segmenter(s) (evaluate.yaml seg_channels; default: the config's)")
    p.add_argument("--model", default=str(BUNDLE / "models" / "model.pt"))
    p.add_argument("--out", default=str(BUNDLE / "eval" / "content_preservation"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from monai.bundle import ConfigParser

    from monai_ext.apps.us_variational_style_transfer import StyleTransfer
    from monai_ext.bundle_helpers import run_bundle

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    judge = {}
    if args.judge_subjects > 0:
        if args.judge_data_seed == 0:
            raise ValueError("--judge_data_seed 0 is the test data's seed; the judge must see other anatomies.")
        tag = "" if args.seg_channels is None else "_ch" + "-".join(map(str, args.seg_channels))
        seg_dir = BUNDLE / "eval" / f"seg_judge_{args.judge_subjects}subjects{tag}_seed{args.seed}"
        judge = dict(dataset_dir=str(BUNDLE / "data" / f"synthetic_us_judge_{args.judge_subjects}_{args.judge_data_seed}"),
                     num_subjects=args.judge_subjects, data_seed=args.judge_data_seed, output_dir=str(seg_dir),
                     select_on_validation=True)
    else:
        seg_dir = BUNDLE / "eval" / f"seg_all_styles_traditional_seed{args.seed}"
    seg_ckpts = [Path(p) for p in args.segmenter] if args.segmenter else [seg_dir / "segmenter.pt"]
    missing = [str(c) for c in seg_ckpts if not c.is_file()]
    if missing and args.segmenter:
        raise FileNotFoundError(f"--segmenter: {', '.join(missing)} not found.")
    width = {} if args.seg_channels is None else {"seg_channels": list(args.seg_channels)}  # judge training
    if missing:  # the default judge, trained here once
        t = time.time()
        # the default 56-subject judge of the docs keeps its last epoch
        run_bundle(BUNDLE, ["evaluate.yaml"], train_set="all_styles", augmentation="traditional", seed=args.seed,
                   seg_epochs=args.seg_epochs, **(judge or {"select_on_validation": False}), **width)
        timings["segmenter_training_s"] = round(time.time() - t, 1)

    cfg = ConfigParser()
    cfg.read_config(str(BUNDLE / "configs" / "evaluate.yaml"))
    cfg["bundle_root"] = str(BUNDLE)
    cfg["device"] = "$torch.device('cpu')"
    if args.seg_channels is not None:
        cfg["seg_channels"] = list(args.seg_channels)
    nets = []
    for ckpt in seg_ckpts:
        net = cfg.get_parsed_content("network", instantiate=True, lazy=False)
        state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"] if "model" in state else state)
        nets.append(net.eval())
    num_classes = int(cfg["num_classes"])
    loading = cfg.get_parsed_content("loading")
    test = cfg.get_parsed_content("datalist_all")["test"]
    items = [loading(dict(e)) for e in test]
    styles = sorted({e["style"] for e in test})
    subjects = sorted({e["subject"] for e in test})
    by_key = {(e["subject"], e["style"]): i for i, e in enumerate(test)}

    t = time.time()
    st = StyleTransfer(args.model, device="cpu")

    def segment(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([n(x).softmax(1) for n in nets]).mean(0).argmax(1)

    images = torch.stack([it["image"] for it in items])
    labels = torch.stack([it["label"][0] for it in items])
    seg_content = torch.cat([segment(images[i:i + 32]) for i in range(0, len(images), 32)])
    per_source: dict[str, list[float]] = {}
    pooled = {k: np.zeros((num_classes, 3)) for k in ("restyled", "simulated")}  # intersection, |a|, |b| per class

    def pool(key: str, a: torch.Tensor, b: torch.Tensor) -> None:
        for c in range(1, num_classes):
            x, y = a == c, b == c
            pooled[key][c] += (int((x & y).sum()), int(x.sum()), int(y.sum()))

    gt_restyled, gt_content = [], [dice_fg(seg_content[i], labels[i], num_classes) for i in range(len(items))]
    simulated: list[float] = []
    for i, e in enumerate(test):
        x = images[i]
        k_subj = subjects.index(e["subject"])
        ref_subject = subjects[(k_subj + 1) % len(subjects)]  # another anatomy as the style reference
        restyled, names = [], []
        for j, s in enumerate(styles):
            ref = images[by_key[(ref_subject, s)]]
            restyled.append(st(x, source="reference", seed=args.seed * 100000 + 100 * i + j, spread=1.0, style_image=ref))
            names.append(f"reference:{s}")
        for j, spread in enumerate((1.0, 1.5)):
            restyled.append(st(x, source="prior", seed=args.seed * 100000 + 100 * i + 50 + j, spread=spread))
            names.append(f"prior:spread{spread}")
        segs = segment(torch.stack(restyled))
        for name, sg in zip(names, segs):
            per_source.setdefault(name, []).append(dice_fg(seg_content[i], sg, num_classes))
            pool("restyled", seg_content[i], sg)
            gt_restyled.append(dice_fg(sg, labels[i], num_classes))
        for s in styles:  # the same anatomy simulated in the other styles
            if s != e["style"]:
                simulated.append(dice_fg(seg_content[i], seg_content[by_key[(e["subject"], s)]], num_classes))
                pool("simulated", seg_content[i], seg_content[by_key[(e["subject"], s)]])
    timings["restyle_and_segment_s"] = round(time.time() - t, 1)
    all_d = [d for v in per_source.values() for d in v]
    res = {
        "segmenter": [str(c) for c in seg_ckpts] if len(seg_ckpts) > 1 else str(seg_ckpts[0]),
        "segmenter_training": judge or "evaluate.yaml train_set=all_styles on the bundle's data set",
        "segmenter_channels": list(cfg["seg_channels"]),
        "style_model": args.model,
        "test_images": len(items),
        "restyles_per_image": len(per_source),
        "pairs": len(all_d),
        "dice_content_vs_restyled_mean": float(np.mean(all_d)),
        "dice_content_vs_restyled_std": float(np.std(all_d)),
        "dice_content_vs_restyled_median": float(np.median(all_d)),
        "fraction_pairs_ge_0.9": float(np.mean(np.asarray(all_d) >= 0.9)),
        "per_source_mean": {k: float(np.mean(v)) for k, v in per_source.items()},
        "dice_content_vs_simulated_other_style_mean": float(np.mean(simulated)),
        "dice_pooled_per_class_content_vs_restyled": {
            str(c): float(2 * pooled["restyled"][c, 0] / max(1.0, pooled["restyled"][c, 1:].sum()))
            for c in range(1, num_classes)},
        "dice_pooled_per_class_content_vs_simulated_other_style": {
            str(c): float(2 * pooled["simulated"][c, 0] / max(1.0, pooled["simulated"][c, 1:].sum()))
            for c in range(1, num_classes)},
        "dice_gt_content_mean": float(np.mean(gt_content)),
        "dice_gt_restyled_mean": float(np.mean(gt_restyled)),
        "timings": timings,
        "seed": args.seed,
    }
    (out / "content_preservation.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BUNDLE.parents[1]))
    sys.exit(main())
