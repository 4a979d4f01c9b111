"""The evaluation suite of "Evaluating GANs in Medical Imaging" (Wang et al., DGM4MICCAI 2021) for any generator of
2D images: a domain-trained classifier two-sample test, Frechet and Mahalanobis distances in that classifier's
feature space with a PCA view, and structural checks for memorisation and mode collapse (per image the highest
MS-SSIM to the training set and to the other generated images, and template matching against a training mosaic).
Every number comes with its real-data reference: held-out real images take the place of the generated ones.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from monai.metrics import FIDMetric

from ..io import atomic_directory, require_empty_folder
from ..metrics.mahalanobis import MahalanobisDistanceMetric
from ..metrics.max_ms_ssim import MaxMSSSIMSimilarity
from ..metrics.template_matching import TemplateMatchingScore
from .two_sample_test import classifier_two_sample_test, network_features

__all__ = ["GAN_REPORT_FLAGS", "gan_evaluation_report", "gan_report_markdown"]

GAN_REPORT_FLAGS = ("told_apart", "memorisation", "mode_collapse", "less_diverse_than_real")


def _unit_images(x: torch.Tensor, what: str) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
    if x.ndim != 4:
        raise ValueError(f"{what}: expected 2D images (N, C, H, W), got shape {tuple(x.shape)} (take slices of volumes first).")
    if len(x) < 4:
        raise ValueError(f"{what}: need at least 4 images, got {len(x)}.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: images contain NaN or infinite values.")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{what}: intensities must lie in [0, 1] (map them with the same window as the real images), got [{lo:.4g}, {hi:.4g}].")
    return x.clamp(0, 1)


def _subset_index(size: int, n: int, rng: np.random.Generator) -> torch.Tensor:
    """Sorted indices of ``n`` of ``size`` items drawn without replacement (all of them when ``size <= n``)."""
    return torch.arange(size) if size <= n else torch.as_tensor(np.sort(rng.choice(size, n, replace=False)))


def _subset(x: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    return x[_subset_index(len(x), n, rng)]


def _groups(groups, x: torch.Tensor, what: str) -> torch.Tensor | None:
    if groups is None:
        return None
    g = torch.as_tensor(groups).reshape(-1)
    if len(g) != len(x):
        raise ValueError(f"{what}: {len(g)} group ids for {len(x)} images.")
    return g


def _summary(v: torch.Tensor) -> dict:
    a = v.numpy().astype(np.float64)
    return {"median": float(np.median(a)), "q05": float(np.quantile(a, 0.05)), "q95": float(np.quantile(a, 0.95)),
            "max": float(a.max())}


def _fraction_above(values: torch.Tensor, reference: torch.Tensor, floor: float) -> tuple[float, float]:
    """The threshold ``max(floor, 99th percentile of reference)`` and the fraction of ``values`` at or above it."""
    threshold = max(float(floor), float(np.quantile(reference.numpy(), 0.99)))
    return float((values >= threshold - 1e-6).float().mean()), threshold


def _mean_sd(rows: list[dict]) -> dict:
    """Mean of each key over ``rows`` plus ``<key>_sd`` (sample SD; 0 for one row)."""
    out = {}
    for key in rows[0]:
        v = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(v.mean())
        out[key + "_sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return out


def _ellipse(ax, points: np.ndarray, colour: str) -> None:
    from matplotlib.patches import Ellipse

    if len(points) < 3:
        return
    cov = np.cov(points.T)
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    ax.add_patch(Ellipse(points.mean(0), 2 * math.sqrt(max(vals[1], 0)), 2 * math.sqrt(max(vals[0], 0)), angle=angle,
                         fill=False, color=colour, lw=2))


def _save_figure(plt, fig, ax, xlabel: str, title: str, path: Path) -> None:
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _figures(folder: Path, features: dict, similarity: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    real, syn = features["real_test"].numpy(), features["synthetic_test"].numpy()
    pca = PCA(n_components=2).fit(real)
    fig, ax = plt.subplots(figsize=(5, 5))
    for pts, colour, label in ((pca.transform(real), "tab:blue", "real (held out)"), (pca.transform(syn), "tab:red", "synthetic")):
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.5, color=colour, label=label)
        _ellipse(ax, pts, colour)
    ax.set_ylabel("PC 2")
    _save_figure(plt, fig, ax, "PC 1 (fitted on real)", f"{title}: two-sample CNN features, 1-SD ellipses", folder / "feature_pca.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 51)
    for key, label in (("synthetic_vs_synthetic", "synthetic vs synthetic"), ("synthetic_vs_real_train", "synthetic vs real train"),
                       ("real_train_vs_real_train", "real vs real (train)"), ("real_test_vs_real_train", "real held out vs real train")):
        ax.hist(similarity[key].numpy(), bins=bins, histtype="step", lw=2, label=label, density=True)
    _save_figure(plt, fig, ax, "per image: highest MS-SSIM to the other set", f"{title}: highest MS-SSIM per image", folder / "ms_ssim.png")


def gan_evaluation_report(
    real_train: torch.Tensor,
    real_test: torch.Tensor,
    synthetic: torch.Tensor,
    out_dir: str | Path | None = None,
    real_train_groups: torch.Tensor | None = None,
    synthetic_groups: torch.Tensor | None = None,
    title: str = "generator",
    epochs: int = 20,
    min_iterations: int = 200,
    repeats: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    channels: tuple[int, ...] = (32, 64, 128, 256),
    feature_dim: int = 128,
    max_images: int = 128,
    max_reference: int = 512,
    ms_ssim_scales: int = 3,
    ms_ssim_kernel: int = 7,
    copy_threshold: float = 0.95,
    flag_fraction: float = 0.1,
    told_apart_auc: float = 0.9,
    diversity_margin: float = 0.02,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict:
    """Judge ``synthetic`` images against the ``real_train`` images the generator learnt from and held-out
    ``real_test`` images (patient-disjoint), all ``(N, C, H, W)`` in [0, 1] on one grid and intensity window.

    - Two-sample test: the synthetic images are split in two halves (a training and a test sample); the CNN
      learns ``real_train`` vs the first half and is tested on ``real_test`` vs the second; both sides are
      subsampled to equal counts. Reports recall (synthetic recognised), specificity, accuracy and ROC AUC,
      mean and SD over ``repeats`` runs (new split and CNN initialisation each; the paper: 50 runs).
    - In the CNN's penultimate features, on sets it never trained on: Frechet distance (MONAI ``FIDMetric``)
      and mean Mahalanobis distance of synthetic test images to one random half of the held-out real images,
      next to the same distance of the other half (the real reference, same count); mean and SD over runs.
    - Structure on ``max_images`` images per set: per image the highest MS-SSIM (``ms_ssim_scales`` scales,
      ``ms_ssim_kernel``-pixel window) synthetic vs synthetic and real train vs real train (within the set), and
      synthetic vs real train and real held-out vs real train (against up to ``max_reference`` training
      images); template matching (highest normalised cross-correlation) against a mosaic of those training
      images.
    - Flags: ``memorisation`` when at least ``flag_fraction`` of the synthetic images are as close to a training
      image as ``max(copy_threshold, 99th percentile of held-out real images)``; ``mode_collapse`` when that many
      are as close to another synthetic image as ``max(copy_threshold, 99th percentile of real vs real)``;
      ``less_diverse_than_real`` when the median synthetic-vs-synthetic MS-SSIM exceeds the real-vs-real one by
      more than ``diversity_margin`` (the paper's criterion, with a margin for sampling noise); ``told_apart``
      when the two-sample test's ROC AUC reaches ``told_apart_auc`` (threshold-free: a CNN trained on a few
      hundred images is often not calibrated at 0.5).

    With ``out_dir`` (missing or empty) it writes ``report.json``, ``report.md``, ``feature_pca.png`` and
    ``ms_ssim.png`` there, all or nothing. Returns the report (JSON-serialisable numbers and flags).

    ``real_train_groups`` / ``synthetic_groups``: one id per image (e.g. the volume a slice comes from); the
    within-set MS-SSIM then skips pairs of one group, so that neighbouring slices of a volume are not counted as
    near-duplicates (needed when the two sets hold different numbers of slices per volume).
    """
    real_train = _unit_images(real_train, "real_train")
    real_test = _unit_images(real_test, "real_test")
    synthetic = _unit_images(synthetic, "synthetic")
    for name, x in (("real_test", real_test), ("synthetic", synthetic)):
        if x.shape[1:] != real_train.shape[1:]:
            raise ValueError(f"{name}: images of shape {tuple(x.shape[1:])}, expected {tuple(real_train.shape[1:])} as real_train.")
    train_groups = _groups(real_train_groups, real_train, "real_train_groups")
    syn_groups = _groups(synthetic_groups, synthetic, "synthetic_groups")
    target = require_empty_folder(out_dir, "out_dir") if out_dir is not None else None
    rng = np.random.default_rng(seed)

    runs, run_distances, feats = [], [], None
    fid, mahalanobis = FIDMetric(), MahalanobisDistanceMetric()
    for k in range(int(repeats)):
        order = torch.as_tensor(rng.permutation(len(synthetic)))
        syn_train, syn_test = synthetic[order[: len(order) // 2]], synthetic[order[len(order) // 2 :]]
        n_train, n_test = min(len(real_train), len(syn_train)), min(len(real_test), len(syn_test))
        test = classifier_two_sample_test(
            _subset(real_train, n_train, rng), _subset(syn_train, n_train, rng), _subset(real_test, n_test, rng),
            _subset(syn_test, n_test, rng), epochs=epochs, min_iterations=min_iterations, batch_size=batch_size, lr=lr,
            channels=channels, feature_dim=feature_dim, seed=seed + k, device=device,
        )
        runs.append({key: test[key] for key in ("recall_synthetic", "specificity_real", "accuracy", "roc_auc")})
        dev = next(test["network"].parameters()).device
        f = {"real_test": network_features(test["network"], real_test, dev)[0],  # every held-out image, not the subsample
             "synthetic_test": network_features(test["network"], syn_test, dev)[0]}
        feats = feats or f
        # distances between sets the CNN never trained on: held-out real half A is the reference distribution,
        # held-out real half B (real reference) and as many synthetic test images are compared with it
        half = torch.as_tensor(rng.permutation(len(f["real_test"])))
        ref_a, ref_b = f["real_test"][half[: len(half) // 2]], f["real_test"][half[len(half) // 2 :]]
        syn_b = _subset(f["synthetic_test"], len(ref_b), rng)
        with warnings.catch_warnings():  # scipy's sqrtm warns on singular covariances (fewer samples than features)
            warnings.simplefilter("ignore")
            run_distances.append({
                "frechet_synthetic": float(fid(syn_b, ref_a)),
                "frechet_real_reference": float(fid(ref_b, ref_a)),
                "mahalanobis_synthetic": float(mahalanobis(syn_b, ref_a)),
                "mahalanobis_real_reference": float(mahalanobis(ref_b, ref_a)),
            })
        print(f"two-sample test {k + 1}/{repeats}: recall {runs[-1]['recall_synthetic']:.3f}, specificity "
              f"{runs[-1]['specificity_real']:.3f}, AUC {runs[-1]['roc_auc']:.3f}", flush=True)
    two_sample = _mean_sd(runs)
    distances = _mean_sd(run_distances)

    n = min(int(max_images), len(synthetic), len(real_train), len(real_test))
    syn_i, train_i = _subset_index(len(synthetic), n, rng), _subset_index(len(real_train), n, rng)
    syn_s, train_s, test_s = synthetic[syn_i], real_train[train_i], _subset(real_test, n, rng)
    syn_g = None if syn_groups is None else syn_groups[syn_i]
    train_g = None if train_groups is None else train_groups[train_i]
    reference = _subset(real_train, int(max_reference), rng)  # memorisation: against (up to max_reference) training images
    ms_ssim = MaxMSSSIMSimilarity(spatial_dims=2, kernel_size=ms_ssim_kernel, num_scales=ms_ssim_scales)
    similarity = {
        "synthetic_vs_synthetic": ms_ssim(syn_s, groups=syn_g),
        "synthetic_vs_real_train": ms_ssim(syn_s, reference),
        "real_train_vs_real_train": ms_ssim(train_s, groups=train_g),
        "real_test_vs_real_train": ms_ssim(test_s, reference),
    }
    matching = TemplateMatchingScore()
    template = {"synthetic_vs_real_train": matching(syn_s, reference), "real_test_vs_real_train": matching(test_s, reference)}
    memorised, memo_threshold = _fraction_above(similarity["synthetic_vs_real_train"], similarity["real_test_vs_real_train"], copy_threshold)
    collapsed, collapse_threshold = _fraction_above(similarity["synthetic_vs_synthetic"], similarity["real_train_vs_real_train"], copy_threshold)
    report = {
        "title": title,
        "counts": {"real_train": len(real_train), "real_test": len(real_test), "synthetic": len(synthetic),
                   "two_sample_train_per_side": n_train, "two_sample_test_per_side": n_test, "structure_per_set": n,
                   "memorisation_reference": len(reference)},
        "image_shape": list(real_train.shape[1:]),
        "two_sample_test": two_sample,
        "two_sample_runs": runs,
        "feature_distances": distances,
        "ms_ssim": {k: _summary(v) for k, v in similarity.items()},
        "template_matching": {k: _summary(v) for k, v in template.items()},
        "memorised_fraction": memorised,
        "memorisation_threshold": memo_threshold,
        "collapsed_fraction": collapsed,
        "collapse_threshold": collapse_threshold,
        "flags": {
            "told_apart": two_sample["roc_auc"] >= told_apart_auc,
            "memorisation": memorised >= flag_fraction,
            "mode_collapse": collapsed >= flag_fraction,
            "less_diverse_than_real": float(similarity["synthetic_vs_synthetic"].median())
            > float(similarity["real_train_vs_real_train"].median()) + float(diversity_margin),
        },
        "settings": {"epochs": int(epochs), "min_iterations": int(min_iterations), "repeats": int(repeats), "batch_size": int(batch_size), "lr": float(lr), "channels": list(channels),
                     "feature_dim": int(feature_dim), "max_images": int(max_images),
                     "max_reference": int(max_reference), "ms_ssim_scales": int(ms_ssim_scales), "ms_ssim_kernel": int(ms_ssim_kernel),
                     "copy_threshold": float(copy_threshold), "flag_fraction": float(flag_fraction),
                     "diversity_margin": float(diversity_margin), "seed": int(seed),
                     "grouped": {"real_train": train_groups is not None, "synthetic": syn_groups is not None}},
    }
    if target is not None:
        def fill(folder: Path) -> None:
            (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            (folder / "report.md").write_text(gan_report_markdown(report) + "\n")
            _figures(folder, feats, similarity, title)

        if not atomic_directory(target, fill):
            raise FileExistsError(f"out_dir {target} was filled by another writer meanwhile; the report was not written.")
        print(f"monai_ext: GAN evaluation report of {title} in {target}")
    return report


def gan_report_markdown(report: dict) -> str:
    """The report as a Markdown table: each number next to its real-data reference, then the flags."""
    t, d, s, m = report["two_sample_test"], report["feature_distances"], report["ms_ssim"], report["template_matching"]
    def pm(group: dict, key: str, fmt: str = ".3f") -> str:
        return f"{group[key]:{fmt}} +- {group[key + '_sd']:{fmt}}"

    runs = report["settings"]["repeats"]
    rows = [
        (f"two-sample CNN: recall of synthetic / specificity ({runs} runs)",
         f"{pm(t, 'recall_synthetic')} / {pm(t, 'specificity_real')}", "0.5 / 0.5 (chance)"),
        ("two-sample CNN: accuracy, ROC AUC", f"{pm(t, 'accuracy')}, {pm(t, 'roc_auc')}", "0.5, 0.5"),
        ("Frechet distance to held-out real (CNN features)", pm(d, "frechet_synthetic", ".3g"), f"{pm(d, 'frechet_real_reference', '.3g')} (held-out real)"),
        ("mean Mahalanobis distance to held-out real", pm(d, "mahalanobis_synthetic", ".3g"), f"{pm(d, 'mahalanobis_real_reference', '.3g')} (held-out real)"),
        ("median max MS-SSIM to real train (memorisation: about 1)", f"{s['synthetic_vs_real_train']['median']:.3f}", f"{s['real_test_vs_real_train']['median']:.3f} (held-out real)"),
        ("median max MS-SSIM among themselves (collapse: high)", f"{s['synthetic_vs_synthetic']['median']:.3f}", f"{s['real_train_vs_real_train']['median']:.3f} (real vs real)"),
        ("median template match (NCC) in real-train mosaic", f"{m['synthetic_vs_real_train']['median']:.3f}", f"{m['real_test_vs_real_train']['median']:.3f} (held-out real)"),
        ("fraction memorised / collapsed", f"{report['memorised_fraction']:.3f} / {report['collapsed_fraction']:.3f}", "about 0.01 each"),
    ]
    c = report["counts"]
    lines = [f"GAN evaluation of **{report['title']}** ({c['synthetic']} synthetic, {c['real_train']} real training and "
             f"{c['real_test']} held-out real images of {' x '.join(map(str, report['image_shape']))})", "",
             "| measure | synthetic | real reference |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {r} |" for a, b, r in rows]
    flags = [k for k in GAN_REPORT_FLAGS if report["flags"][k]]
    lines += ["", "flags: " + (", ".join(flags) if flags else "none")]
    return "\n".join(lines)
