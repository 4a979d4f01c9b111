"""Score the few-shot segmenters of ``configs/evaluate.yaml`` on many new target-style images.

``evaluate.yaml`` tests on the target-style images of the bundle's 12 test subjects, so one run's Dice has a
large standard error. This script re-scores the saved segmenters (``eval/seg_fewshot_<augmentation>_seed<k>/
segmenter.pt``) on the target-style image of every subject of a second synthetic data set rendered with another
data seed (default 400 subjects, data seed 7): anatomies that neither the segmenters nor the style-transfer model
ever saw. Metrics as in ``evaluate.yaml`` (MONAI DiceMetric, MeanIoU, ConfusionMatrixMetric; classes 1-3,
background excluded, mean over images), then paired differences between the two arms per seed.

    cd bundles/us_variational_style_transfer
    python scripts/fewshot_new_subjects.py --seeds 0 1 2 3 4

Writes <out>/fewshot_new_subjects.json (default eval/fewshot_new_subjects/).
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
ARMS = ("traditional", "style_transfer")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--subjects", type=int, default=400)
    p.add_argument("--data_seed", type=int, default=7)
    p.add_argument("--dataset_dir", default=None, help="default: data/synthetic_us_judge_<subjects>_<data_seed>")
    p.add_argument("--eval_dir", default=str(BUNDLE / "eval"), help="where the seg_fewshot_* folders are")
    p.add_argument("--out", default=str(BUNDLE / "eval" / "fewshot_new_subjects"))
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS,
                   help="score only these arms (the paired comparison needs both)")
    args = p.parse_args(argv)
    if args.data_seed == 0:
        raise ValueError("--data_seed 0 renders the bundle's own subjects; choose another seed for new anatomies.")
    torch.set_num_threads(1)
    from monai.bundle import ConfigParser
    from monai.metrics import ConfusionMatrixMetric, DiceMetric, MeanIoU
    from monai.networks.utils import one_hot

    from monai_ext.datalists import ultrasound_style_datalist

    cfg = ConfigParser()
    cfg.read_config(str(BUNDLE / "configs" / "evaluate.yaml"))
    cfg["bundle_root"] = str(BUNDLE)
    cfg["device"] = "$torch.device('cpu')"
    num_classes, target, size = int(cfg["num_classes"]), str(cfg["target_style"]), int(cfg["image_size"])
    data_dir = args.dataset_dir or str(BUNDLE / "data" / f"synthetic_us_judge_{args.subjects}_{args.data_seed}")
    lists = ultrasound_style_datalist(data_dir, subjects=args.subjects, shape=[size, size], seed=args.data_seed)
    items = [e for split in ("training", "validation", "test") for e in lists[split] if e["style"] == target]
    if not items:
        raise ValueError(f"{data_dir} holds no image of the target style {target!r}.")
    loading = cfg.get_parsed_content("loading")
    loaded = [loading(dict(e)) for e in items]
    images = torch.stack([d["image"] for d in loaded])
    labels = torch.stack([d["label"] for d in loaded])
    if int(labels.max()) >= num_classes or int(labels.min()) < 0:
        raise ValueError(f"labels in {data_dir} outside 0..{num_classes - 1}.")
    y = one_hot(labels, num_classes)

    results: dict = {"data": data_dir, "target_style": target, "images": len(items), "per_run": {}}
    t0 = time.time()
    for arm in args.arms:
        for seed in args.seeds:
            ckpt = Path(args.eval_dir) / f"seg_fewshot_{arm}_seed{seed}" / "segmenter.pt"
            if not ckpt.is_file():
                raise FileNotFoundError(
                    f"{ckpt} not found: run configs/evaluate.yaml --augmentation {arm} --seed {seed} first."
                )
            net = cfg.get_parsed_content("network", instantiate=True, lazy=False)
            state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
            net.load_state_dict(state["model"] if "model" in state else state)
            net.eval()
            with torch.no_grad():
                pred = torch.cat([net(images[i:i + 64]).argmax(1, keepdim=True) for i in range(0, len(images), 64)])
            yp = one_hot(pred, num_classes)
            dice = DiceMetric(include_background=False)(yp, y)
            iou = MeanIoU(include_background=False)(yp, y)
            cm = ConfusionMatrixMetric(include_background=False, metric_name=("precision", "recall"))
            cm(yp, y)
            precision, recall = (float(v) for v in cm.aggregate())
            results["per_run"][f"{arm}_seed{seed}"] = {
                "dice": float(torch.nanmean(dice)),
                "dice_per_class": [float(v) for v in torch.nanmean(dice, 0)],
                "iou": float(torch.nanmean(iou)),
                "precision": precision,
                "recall": recall,
            }
    summary = {}
    for metric in ("dice", "iou", "precision", "recall") if set(args.arms) == set(ARMS) else ():
        a = np.array([results["per_run"][f"traditional_seed{s}"][metric] for s in args.seeds])
        b = np.array([results["per_run"][f"style_transfer_seed{s}"][metric] for s in args.seeds])
        d = b - a
        entry = {"traditional_mean": float(a.mean()), "style_transfer_mean": float(b.mean()),
                 "paired_difference_mean": float(d.mean()), "better_in": int((d > 0).sum()), "seeds": len(d)}
        if len(d) > 1:
            entry["traditional_std"] = float(a.std(ddof=1))
            entry["style_transfer_std"] = float(b.std(ddof=1))
            entry["paired_difference_std"] = float(d.std(ddof=1))
            try:
                from scipy import stats

                entry["paired_t_p"] = float(stats.ttest_rel(b, a).pvalue)
            except ImportError:  # scipy is optional
                pass
        summary[metric] = entry
    results["summary"] = summary
    results["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fewshot_new_subjects.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BUNDLE.parents[1]))
    sys.exit(main())
