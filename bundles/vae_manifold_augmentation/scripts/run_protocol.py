"""The paper's protocol on this bundle: per-class RHVAEs trained once, then the classifier trained and tested
over several seeds in each regime (real only, real + prior samples, real + manifold samples, manifold samples
only, ...). Writes results.json and results.md (mean and std of test balanced accuracy) into --work, and a PNG
grid of real vs generated images per class.

    python bundles/vae_manifold_augmentation/scripts/run_protocol.py --work /tmp/vae_da --seeds 0 1 2 3 4

Everything is written under --work (bundle_root of every run); nothing goes into the bundle folder unless
--work points there.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

BUNDLE = Path(__file__).resolve().parents[1]

# regime name -> (train_mode, sampler)
REGIMES = {
    "real": ("real", "hmc"),
    "real+prior": ("real+generated", "prior"),
    "real+manifold": ("real+generated", "hmc"),
    "generated-prior": ("generated", "prior"),
    "generated-manifold": ("generated", "hmc"),
    "real+rrw": ("real+generated", "rrw"),
    # *-ensemble: the generated images of each class come evenly from the RHVAE pairs of all --ensemble_seeds
    "real+manifold-ensemble": ("real+generated", "hmc"),
    "real+prior-ensemble": ("real+generated", "prior"),
}


def _read_metric(eval_dir: Path, name: str) -> float:
    with open(eval_dir / "metrics.csv") as f:
        for row in csv.reader(f):
            if row and row[0] == name:
                return float(row[1])
    raise KeyError(f"{name} not in {eval_dir / 'metrics.csv'}")


def save_grid(real: list[np.ndarray], generated: dict[str, list[np.ndarray]], path: Path, rows_label: list[str]) -> None:
    """A gray PNG: for each class, one row of real images then one row per sampler (no extra dependencies)."""
    from PIL import Image, ImageDraw

    tiles = []
    labels = []
    for c, reals in enumerate(real):
        tiles.append(reals)
        labels.append(f"{rows_label[c]} real")
        for name, per_class in generated.items():
            tiles.append(per_class[c])
            labels.append(f"{rows_label[c]} {name}")
    h, w = tiles[0][0].shape
    ncol = max(len(t) for t in tiles)
    margin = 110
    canvas = np.ones((len(tiles) * (h + 2), margin + ncol * (w + 2)), dtype=np.uint8) * 255
    for r, row in enumerate(tiles):
        for k, im in enumerate(row):
            y, x = r * (h + 2), margin + k * (w + 2)
            canvas[y : y + h, x : x + w] = (np.clip(im, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for r, text in enumerate(labels):
        draw.text((4, r * (h + 2) + h // 2 - 5), text, fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="bundle_root of every run (models, generated images, results)")
    p.add_argument("--dataset_dir", default=None, help="data set folder (default: <work>/data/brain_ad, synthesised)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--regimes", nargs="+", default=["real", "real+prior", "real+manifold", "generated-manifold"])
    p.add_argument("--num_generated", type=int, default=500, help="generated images per class")
    p.add_argument("--vae_epochs", type=int, default=1000)
    p.add_argument("--max_epochs", type=int, default=30)
    p.add_argument("--iters_per_epoch", type=int, default=20)
    p.add_argument(
        "--vae_per_seed", action="store_true",
        help="train the per-class RHVAEs anew for every seed (train_vae.yaml seed=S, models/rhvae_class<C>_seed<S>.pt); "
        "default: the seed-0 pair, shared by all seeds",
    )
    p.add_argument("--ensemble_seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="RHVAE seeds whose pairs (models/rhvae_class<C>_seed<S>.pt, trained when missing) feed the *-ensemble regimes")
    p.add_argument("--vae_set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra train_vae.yaml overrides for the RHVAEs, e.g. max_log_diag=8 (values read as JSON, else kept as text)")
    p.add_argument("--grid", default=None, help="PNG path of the real vs generated grid (default <work>/real_vs_generated.png)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(BUNDLE.parents[1]))
    from monai_ext.bundle_helpers import run_bundle

    vae_overrides = {}
    for kv in args.vae_set:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise ValueError(f"--vae_set: expected KEY=VALUE, got {kv!r}.")
        try:
            vae_overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            vae_overrides[key] = value
    work = Path(args.work).resolve()
    data = Path(args.dataset_dir).resolve() if args.dataset_dir else work / "data" / "brain_ad"
    models = work / "models"
    timings = {}

    def rhvaes(vae_seed: int) -> dict[int, str]:
        """The per-class RHVAE checkpoints of train_vae.yaml with ``seed=vae_seed``, trained when missing."""
        paths = {c: models / f"rhvae_class{c}_seed{vae_seed}.pt" for c in (0, 1)}
        for c, path in paths.items():
            if not path.is_file():
                t = time.time()
                run_bundle(BUNDLE, ["train_vae.yaml"], bundle_root=str(work), dataset_dir=str(data), ckpt_dir=str(models),
                           vae_class=c, seed=vae_seed, vae_epochs=args.vae_epochs, **vae_overrides)  # fmt: skip
                timings[f"train_vae_class{c}_seed{vae_seed}_s"] = round(time.time() - t, 1)
        return {c: str(path) for c, path in paths.items()}

    unknown = [r for r in args.regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regime(s) {unknown}; expected some of {sorted(REGIMES)}.")
    uses_vae = any(r != "real" and not r.endswith("-ensemble") for r in args.regimes)
    generators = rhvaes(0) if uses_vae and not args.vae_per_seed else {}
    ensemble = {}
    if any(r.endswith("-ensemble") for r in args.regimes):
        pairs = [rhvaes(s) for s in args.ensemble_seeds]
        ensemble = {c: [pair[c] for pair in pairs] for c in (0, 1)}

    results: dict[str, list[float]] = {}
    for regime in args.regimes:
        mode, sampler = REGIMES[regime]
        for seed in args.seeds:
            run_dir = work / "runs" / f"{regime}_seed{seed}"
            t = time.time()
            if regime.endswith("-ensemble"):
                generators = ensemble
            elif args.vae_per_seed and regime != "real":
                generators = rhvaes(seed)
            ov = dict(
                bundle_root=str(work), dataset_dir=str(data), ckpt_dir=str(run_dir), output_dir=str(run_dir),
                log_dir=str(run_dir / "logs"), gen_cache_dir=str(work / "generated"), generators=generators, seed=seed,
                train_mode=mode, sampler=sampler, num_generated_per_class=args.num_generated,
                max_epochs=args.max_epochs, iters_per_epoch=args.iters_per_epoch,
            )  # fmt: skip
            run_bundle(BUNDLE, ["train.yaml"], **ov)
            run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **ov)
            ba = _read_metric(run_dir, "test_balanced_accuracy")
            results.setdefault(regime, []).append(ba)
            timings[f"{regime}_seed{seed}_s"] = round(time.time() - t, 1)
            print(f"[protocol] {regime} seed {seed}: test balanced accuracy {ba:.4f} ({time.time() - t:.0f} s)", flush=True)
            (work / "results.json").write_text(json.dumps({"balanced_accuracy": results, "timings_s": timings, "args": vars(args)}, indent=1))

    lines = ["| regime | test balanced accuracy (mean +- std) | runs |", "| --- | --- | --- |"]
    for regime, vals in results.items():
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        lines.append(f"| {regime} | {100 * statistics.mean(vals):.1f} +- {100 * sd:.1f} | {len(vals)} |")
    (work / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    if not generators:  # real only: no RHVAE, no grid
        return 0
    # grid: 8 real and 8 generated images per class and sampler (the last seed's RHVAEs with --vae_per_seed)
    from monai.transforms import LoadImage

    from monai_ext.apps.vae_manifold_augmentation import (
        brain_ad_split_lists,
        class_items,
        generate_images,
        load_rhvae,
    )

    dl = brain_ad_split_lists(data)
    real = [[np.asarray(LoadImage(image_only=True)(d["image"])) for d in class_items(dl["training"], c)[:8]] for c in (0, 1)]
    # an ensemble's grid shows its first pair
    generators = {c: g[0] if isinstance(g, list) else g for c, g in generators.items()}
    gen = {}
    for name in ("prior", "hmc"):
        gen["manifold" if name == "hmc" else name] = [generate_images(load_rhvae(generators[c]), 8, name, seed=123)[0][:, 0].numpy() for c in (0, 1)]
    save_grid(real, gen, Path(args.grid) if args.grid else work / "real_vs_generated.png", ["CN", "AD"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
