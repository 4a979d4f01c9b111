"""The paper's augmentation experiment (Hung & Galeotti 2021, Table 1) on this bundle: configs/evaluate.yaml run
once per arm (traditional, style_transfer) and seed, each as its own ``python -m monai.bundle run`` process
(one torch thread), then target-domain Dice / IoU / precision / recall per run and mean +- std per arm.

    cd bundles/us_variational_style_transfer
    python scripts/run_protocol.py --seeds 0 1 2 --seg_epochs 60 [--out eval/protocol]

Needs models/model.pt for the style_transfer arm (configs/train_autoencoder.yaml, then configs/train.yaml).
Each run writes eval/seg_fewshot_<arm>_seed<k>/metrics.csv; this script writes results.json and results.md
(with wall-clock and CPU seconds per run) into --out. Extra ``--set key=value`` pairs go to every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]
METRICS = ("test_dice", "test_iou", "test_precision", "test_recall")


def read_metrics(run_dir: Path) -> dict:
    out = {}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[0] in METRICS:
                out[row[0]] = float(row[1])
    missing = set(METRICS) - set(out)
    if missing:
        raise KeyError(f"{sorted(missing)} not in {run_dir / 'metrics.csv'}")
    return out


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", default=["traditional", "style_transfer"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seg_epochs", type=int, default=20)
    p.add_argument("--out", default=str(BUNDLE / "eval" / "protocol"))
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides key=value for every run")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    extra = []
    for kv in args.set:
        k, v = kv.split("=", 1)
        extra += [f"--{k}", v]
    runs = []
    for arm in args.arms:
        for seed in args.seeds:
            cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "evaluate.yaml"),
                   "--meta_file", str(BUNDLE / "configs" / "metadata.json"),
                   "--logging_file", str(BUNDLE / "configs" / "logging.conf"), "--bundle_root", str(BUNDLE),
                   "--augmentation", arm, "--seed", str(seed), "--seg_epochs", str(args.seg_epochs)] + extra
            t0, c0 = time.time(), _children_cpu()
            with open(out / f"{arm}_seed{seed}.log", "w") as log:
                subprocess.run(cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
            wall, cpu = time.time() - t0, _children_cpu() - c0
            m = read_metrics(BUNDLE / "eval" / f"seg_fewshot_{arm}_seed{seed}")
            runs.append({"arm": arm, "seed": seed, **m, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)})
            print(json.dumps(runs[-1]), flush=True)
            (out / "results.json").write_text(json.dumps({"seg_epochs": args.seg_epochs, "extra": args.set, "runs": runs}, indent=1))
    summary = {}
    for arm in args.arms:
        rs = [r for r in runs if r["arm"] == arm]
        summary[arm] = {
            m: (statistics.mean(r[m] for r in rs), statistics.stdev(r[m] for r in rs) if len(rs) > 1 else 0.0)
            for m in METRICS
        }
    lines = ["| arm | seed | Dice | IoU | precision | recall | wall s | CPU s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        lines.append(f"| {r['arm']} | {r['seed']} | " + " | ".join(f"{r[m]:.3f}" for m in METRICS) + f" | {r['wall_s']:.0f} | {r['cpu_s']:.0f} |")
    for arm, s in summary.items():
        lines.append(f"| **{arm}** | mean +- std | " + " | ".join(f"{s[m][0]:.3f} +- {s[m][1]:.3f}" for m in METRICS) + " | | |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"seg_epochs": args.seg_epochs, "extra": args.set, "runs": runs,
                                                  "summary": summary}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
