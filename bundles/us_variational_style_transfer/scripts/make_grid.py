"""PNG grid of the trained model's results for docs/README.md: content x style (each content image restyled with
the posterior mean of one reference image per machine style), prior samples (spread 1 and 2), and a latent
interpolation row (t = -0.5 ... 1.5 between two reference styles; t outside [0, 1] extrapolates).

    cd bundles/us_variational_style_transfer
    python scripts/make_grid.py [--out docs/style_grid.png] [--scale 2]

Images are test-split images of the synthetic data set (data/synthetic_us, generated when missing).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

BUNDLE = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(BUNDLE / "models" / "model.pt"))
    p.add_argument("--dataset_dir", default=str(BUNDLE / "data" / "synthetic_us"))
    p.add_argument("--out", default=str(BUNDLE / "docs" / "style_grid.png"))
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--contents", type=int, default=4)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from PIL import Image, ImageDraw

    from monai_ext.apps.us_variational_style_transfer import (
        StyleInterpolate,
        StyleTransfer,
    )
    from monai_ext.datalists import ultrasound_style_datalist
    from monai_ext.transforms import LoadUltrasound

    dl = ultrasound_style_datalist(args.dataset_dir, subjects=80, shape=[64, 64], seed=0)["test"]
    styles = sorted({e["style"] for e in dl})
    subjects = sorted({e["subject"] for e in dl})
    load = LoadUltrasound()
    img = {(e["subject"], e["style"]): torch.nn.functional.interpolate(load(e["image"]).as_tensor()[None], size=(64, 64), mode="area")[0]
           for e in dl}
    st = StyleTransfer(args.model, device="cpu")
    si = StyleInterpolate(args.model, device="cpu")
    ref_subject = subjects[-1]
    content_styles = [styles[k % len(styles)] for k in range(args.contents)]
    contents = [img[(subjects[k], content_styles[k])] for k in range(args.contents)]
    refs = [img[(ref_subject, s)] for s in styles]

    rows, labels = [], []
    rows.append([None] + refs + [None, None])
    labels.append("style refs")
    for k, x in enumerate(contents):
        row = [x] + [st(x, source="reference", spread=0.0, style_image=r) for r in refs]
        row += [st(x, source="prior", seed=k, spread=1.0), st(x, source="prior", seed=100 + k, spread=2.0)]
        rows.append(row)
        labels.append(f"content {k}")
    ts = [-0.5, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5][: len(styles) + 3]
    a, b = refs[0], refs[-1]
    x = contents[0]
    rows.append([si(x, t=float(t), style_a=a, style_b=b) for t in ts])
    labels.append("interp.")
    col_titles = ["content"] + [s.replace("_", " ") for s in styles] + ["prior s=1", "prior s=2"]
    interp_titles = [f"t={t:+.2f}" for t in ts]

    s = args.scale
    h = w = 64 * s
    margin, top, gap, title_h = 70, 14, 3, 12
    ncol = len(col_titles)
    H = top + len(rows) * (h + gap) + title_h
    W = margin + ncol * (w + gap)
    canvas = Image.new("L", (W, H), 255)
    draw = ImageDraw.Draw(canvas)
    for c, t in enumerate(col_titles):
        draw.text((margin + c * (w + gap) + 2, 1), t[:22], fill=0)
    for r, (row, lab) in enumerate(zip(rows, labels)):
        y = top + r * (h + gap) + (title_h if r == len(rows) - 1 else 0)
        draw.text((2, y + h // 2 - 5), lab, fill=0)
        for c, tile in enumerate(row):
            if tile is None:
                continue
            a8 = np.rint(np.clip(np.asarray(tile)[0], 0, 1) * 255).astype(np.uint8)
            canvas.paste(Image.fromarray(a8, mode="L").resize((w, h), Image.NEAREST), (margin + c * (w + gap), y))
    y_it = top + (len(rows) - 1) * (h + gap)
    for c, t in enumerate(interp_titles):
        draw.text((margin + c * (w + gap) + 2, y_it), t + (" (A)" if abs(ts[c]) < 1e-9 else " (B)" if abs(ts[c] - 1) < 1e-9 else ""), fill=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    canvas.save(tmp)
    os.replace(tmp, out)
    print(f"wrote {out} ({W}x{H}); interpolation between {styles[0]} (A) and {styles[-1]} (B) of subject {ref_subject}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BUNDLE.parents[1]))
    sys.exit(main())
