"""Check the learned nodule injector / eraser (models/nodule_injector.pt, models/nodule_eraser.pt) on VOIs of
held-out synthetic phantoms and write metrics.json + a PNG montage of centre slices.

Run:  python bundles/ctsgan_chest_ct_synthesis/scripts/evaluate_inpainting.py --out DIR [--cases 4] [--seed 5]

Measured (all in HU; phantom seeds ``seed * 1000 + i``, never trained on with the default ``seed`` 5):

- injector, on nodule-free VOIs, target balls of 6 / 10 / 16 mm: median HU inside the ball (the phantoms'
  solid nodules are -50..+100 HU) and mean absolute error (MAE) over the region against the real VOI for VOIs
  centred on the phantoms' own nodules (blanked region + their ball as input);
- eraser: MAE over the region against the pair's nodule-free target, and |mean| / |std| differences between
  the erased nodule ball and the lung of the VOI outside the region (the issue's 30 HU criterion).
Each also for an untrained generator of the same architecture (seed 0) as the reference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from monai_ext.apps.ctsgan_chest_ct_synthesis import (
    NODULE_HU_WINDOW,
    NoduleInpaintingGenerator,
    central_region_mask,
    eraser_pairs,
    phantom_nodule_vois,
    sphere_mask,
)
from monai_ext.transforms import hu_to_unit, unit_to_hu


def _run(g, voi, region, nodule=None):
    with torch.no_grad():
        x = hu_to_unit(torch.as_tensor(voi)[None], NODULE_HU_WINDOW)
        r = torch.as_tensor(region)[None]
        y = g(x, r, None if nodule is None else torch.as_tensor(nodule)[None])
    return unit_to_hu(y, NODULE_HU_WINDOW)[0].numpy()


def _load(mode, path, features):
    g = NoduleInpaintingGenerator(mode, features=features)
    if path is not None:
        g.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return g.eval()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=str(Path(__file__).resolve().parents[1] / "models"))
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=3, default=[176, 128, 144])
    ap.add_argument("--features", type=int, nargs=6, default=[8, 16, 32, 64, 64, 8])
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sp = (2.0, 2.0, 2.0)
    samples = phantom_nodule_vois(a.cases, seed=a.seed, voi_size=32, shape=a.shape, spacing=sp)
    region = central_region_mask(32, 16)
    rin = region[0] > 0.5
    pos = [s for s in samples if s["label"] == 1]
    neg = [s for s in samples if s["label"] == 0]
    gens = {"trained": {m: _load(m, Path(a.models) / f"nodule_{n}.pt", a.features)
                        for m, n in (("inject", "injector"), ("erase", "eraser"))}}
    torch.manual_seed(0)
    gens["untrained"] = {m: _load(m, None, a.features) for m in ("inject", "erase")}
    metrics: dict = {"cases": [a.seed * 1000 + i for i in range(a.cases)], "positives": len(pos), "negatives": len(neg)}
    montage = []
    for name, g in gens.items():
        m: dict = {}
        for d in (6.0, 10.0, 16.0):
            ball = sphere_mask(32, d, sp)
            med = [float(np.median(_run(g["inject"], s["image"], region, ball)[0][ball[0] > 0.5])) for s in neg]
            m[f"inject_{int(d)}mm_median_hu_in_ball"] = [round(float(np.mean(med)), 1), round(float(np.std(med)), 1)]
        mae = [float(np.abs(_run(g["inject"], s["image"], region, sphere_mask(32, s["diameter_mm"], sp))[0] - s["image"][0])[rin].mean())
               for s in pos]
        m["inject_real_nodule_mae_hu"] = round(float(np.mean(mae)), 1)
        pairs = eraser_pairs(samples, 16, seed=1)
        mae_e, dmean, dstd = [], [], []
        for p in pairs:
            y = _run(g["erase"], p["image"], region)[0]
            mae_e.append(float(np.abs(y - p["target"][0])[rin].mean()))
            ball = sphere_mask(32, p["diameter_mm"], sp)[0] > 0.5
            lung = (~rin) & (p["target"][0] < -500)
            dmean.append(abs(float(y[ball].mean() - p["target"][0][lung].mean())))
            dstd.append(abs(float(y[ball].std() - p["target"][0][lung].std())))
        m["erase_mae_hu"] = round(float(np.mean(mae_e)), 1)
        m["erase_identity_mae_hu"] = round(float(np.mean([np.abs(p["image"][0] - p["target"][0])[rin].mean() for p in pairs])), 1)
        m["erase_ball_vs_lung_abs_mean_diff_hu"] = [round(float(np.mean(dmean)), 1), round(float(np.max(dmean)), 1)]
        m["erase_ball_vs_lung_abs_std_diff_hu"] = [round(float(np.mean(dstd)), 1), round(float(np.max(dstd)), 1)]
        m["erase_within_30hu_fraction"] = round(float(np.mean([(a_ <= 30) and (b_ <= 30) for a_, b_ in zip(dmean, dstd)])), 3)
        metrics[name] = m
    # montage: rows = 4 nodule-free VOIs (orig | learned 10 mm) then 4 real-nodule VOIs (orig | learned erase)
    g = gens["trained"]
    ball = sphere_mask(32, 10.0, sp)
    for s in neg[:4]:
        montage.append([s["image"][0], _run(g["inject"], s["image"], region, ball)[0]])
    for s in pos[:4]:
        montage.append([s["image"][0], _run(g["erase"], s["image"], region)[0]])
    try:
        from PIL import Image

        rows = [np.concatenate([np.clip((v[:, :, 16].T + 1000) / 1400, 0, 1) for v in r], 1) for r in montage]
        grid = np.concatenate([np.concatenate(rows[:4], 0), np.concatenate(rows[4:], 0)], 1)
        Image.fromarray((grid * 255).astype(np.uint8)).resize((grid.shape[1] * 4, grid.shape[0] * 4), 0).save(
            out / "inpainting_montage.png")
    except ImportError:
        pass
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
