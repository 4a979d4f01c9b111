"""Re-score trained classifiers on a large test set of new synthetic subjects.

The protocol's test split has 100 subjects per class, so one run's balanced accuracy has a standard error of
about 3 points and paired comparisons between regimes need many seeds. This script loads the classifiers that
``run_protocol.py`` left under ``<work>/runs/<regime>_seed<k>/model.pt`` and scores each on ``--test_per_class``
subjects per class rendered by the embedded benchmark with the same data seed but test indices from
``--skip_first`` on, i.e. subjects that no classifier, RHVAE or checkpoint selection ever saw. It then compares
each regime with ``real`` seed by seed (paired t-test and Wilcoxon signed-rank test).

    python bundles/vae_manifold_augmentation/scripts/rescore_test.py --work /tmp/vae_da [/tmp/vae_da_more ...] \\
        --test_per_class 900

Writes <out>/rescore.json (default <first work>/rescore/).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

BUNDLE = Path(__file__).resolve().parents[1]
RUN_NAME = re.compile(r"^(?P<regime>.+)_seed(?P<seed>\d+)$")


def find_runs(work_dirs: list[Path]) -> dict[str, dict[int, Path]]:
    """``{regime: {seed: model.pt}}`` from ``<work>/runs/<regime>_seed<k>/model.pt``; a run in two work
    folders is an error (which one to score would be a guess)."""
    runs: dict[str, dict[int, Path]] = {}
    for work in work_dirs:
        run_root = work / "runs"
        if not run_root.is_dir():
            raise FileNotFoundError(f"{run_root} not found: --work must be a run_protocol.py work folder.")
        for d in sorted(run_root.iterdir()):
            m = RUN_NAME.match(d.name)
            if not m or not (d / "model.pt").is_file():
                continue
            regime, seed = m["regime"], int(m["seed"])
            if seed in runs.get(regime, {}):
                raise ValueError(f"run {d.name} is in two work folders: {runs[regime][seed].parent} and {d}.")
            runs.setdefault(regime, {})[seed] = d / "model.pt"
    if not runs:
        raise FileNotFoundError(f"no <regime>_seed<k>/model.pt under {[str(w / 'runs') for w in work_dirs]}.")
    return runs


def balanced_accuracy(pred: np.ndarray, label: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[label == c] == c) for c in np.unique(label)]))


def paired(a: list[float], b: list[float]) -> dict:
    d = np.asarray(b) - np.asarray(a)
    out = {"seeds": len(d), "difference_mean": float(d.mean()), "better": int((d > 0).sum()),
           "worse": int((d < 0).sum())}
    if len(d) > 1:
        out["difference_std"] = float(d.std(ddof=1))
        try:
            from scipy import stats

            out["t_test_p"] = float(stats.ttest_rel(b, a).pvalue)
            if np.any(d != 0):
                out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
        except ImportError:  # scipy is optional
            pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", nargs="+", required=True, help="run_protocol.py work folders (their runs/ are scored)")
    p.add_argument("--test_per_class", type=int, default=900, help="new test subjects per class")
    p.add_argument("--skip_first", type=int, default=100, help="test indices below this are the protocol's own")
    p.add_argument("--data_seed", type=int, default=0, help="the benchmark seed the classifiers were trained on")
    p.add_argument("--dataset_dir", default=None, help="default: <first work>/data/brain_ad_test<N>")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from monai.bundle import ConfigParser

    from monai_ext.apps.vae_manifold_augmentation import brain_ad_split_lists
    from monai_ext.phantoms import synthesize_brain_ad_dataset

    works = [Path(w) for w in args.work]
    runs = find_runs(works)
    total = args.skip_first + args.test_per_class
    data_dir = Path(args.dataset_dir or works[0] / "data" / f"brain_ad_test{total}")
    if not (data_dir / "dataset.json").is_file():
        print(f"rendering {total} test subjects per class into {data_dir} ...", flush=True)
        t = time.time()
        synthesize_brain_ad_dataset(data_dir, train_per_class=1, val_per_class=1, test_per_class=total, dim=2,
                                    seed=args.data_seed, progress=False)
        print(f"  {time.time() - t:.0f} s", flush=True)
    per_class: dict[int, list[dict]] = {}
    for e in brain_ad_split_lists(data_dir, synthesize_if_missing=False)["test"]:  # absolute paths, in index order
        per_class.setdefault(e["label"], []).append(e)
    items = [e for c in sorted(per_class) for e in per_class[c][args.skip_first:total]]
    if any(len(per_class[c][args.skip_first:total]) < args.test_per_class for c in per_class):
        raise ValueError(f"{data_dir} holds fewer than {total} test subjects per class; delete it to re-render.")

    cfg = ConfigParser()
    cfg.read_config(str(BUNDLE / "configs" / "train.yaml"))
    cfg["bundle_root"] = str(works[0])
    cfg["device"] = "$torch.device('cpu')"
    pre = cfg.get_parsed_content("preprocessing")
    images = torch.stack([pre({"image": e["image"]})["image"] for e in items])
    labels = np.asarray([e["label"] for e in items])

    scores: dict[str, dict[int, float]] = {}
    for regime, by_seed in sorted(runs.items()):
        for seed, ckpt in sorted(by_seed.items()):
            net = cfg.get_parsed_content("network_def", instantiate=True, lazy=False)
            state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
            net.load_state_dict(state["model"] if "model" in state else state)
            net.eval()
            with torch.no_grad():
                pred = torch.cat([net(images[i:i + 256]).argmax(1) for i in range(0, len(images), 256)]).numpy()
            scores.setdefault(regime, {})[seed] = balanced_accuracy(pred, labels)
    summary = {r: {"mean": statistics.mean(v.values()), "std": statistics.stdev(v.values()) if len(v) > 1 else 0.0,
                   "runs": len(v)} for r, v in scores.items()}
    comparisons = {}
    if "real" in scores:
        for r, v in scores.items():
            common = sorted(set(v) & set(scores["real"]))
            if r != "real" and common:
                comparisons[f"{r} - real"] = paired([scores["real"][s] for s in common], [v[s] for s in common])
    if "real+manifold" in scores and "real+prior" in scores:
        common = sorted(set(scores["real+manifold"]) & set(scores["real+prior"]))
        comparisons["real+manifold - real+prior"] = paired([scores["real+prior"][s] for s in common],
                                                           [scores["real+manifold"][s] for s in common])
    res = {"test_data": str(data_dir), "test_subjects_per_class": args.test_per_class, "skip_first": args.skip_first,
           "per_run": {r: {str(s): b for s, b in v.items()} for r, v in scores.items()},
           "summary": summary, "comparisons": comparisons}
    out = Path(args.out) if args.out else works[0] / "rescore"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rescore.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({"summary": summary, "comparisons": comparisons}, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BUNDLE.parents[1]))
    sys.exit(main())
