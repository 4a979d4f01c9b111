"""The style-transfer bundle's study steps, called by its studies (``configs/study.yaml``,
``configs/study_content_preservation.yaml``):

- :func:`score_fewshot_segmenter`: one few-shot segmenter of ``configs/evaluate.yaml`` scored on the
  target-style images of many new synthetic subjects (the 12 test images of the bundle leave one run's Dice
  with a large error);
- :func:`content_preservation`: do restyled images keep their anatomy? Dice between a judge segmenter's
  segmentation of each test image and of its restyled versions;
- :func:`style_fidelity`: does the texture move to the reference's? Speckle statistics of restyled images
  against their style references (:class:`monai_ext.metrics.SpeckleStyleFidelity`);
- :func:`us_style_grid`: the content x style PNG grid of ``docs/README.md``;
- :func:`prepare_style_classifier`, :func:`loss_network_probe`: the measurements that chose the loss network
  (``configs/study_loss_network.yaml``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.metrics import ConfusionMatrixMetric, DiceMetric, MeanIoU
from monai.networks.utils import one_hot

from ...bundle_helpers import bundle_config_parser
from ...datalists import ultrasound_style_datalist
from ...io import atomic_write
from ...metrics.speckle_texture import SpeckleStyleFidelity
from ...transforms import LoadUltrasound
from .losses import gram_matrix
from .loss_networks import train_us_style_classifier, us_loss_network
from .transforms import StyleInterpolate, StyleTransfer

__all__ = [
    "score_fewshot_segmenter",
    "content_preservation",
    "style_fidelity",
    "style_report",
    "restyled_image_sets",
    "us_style_grid",
    "prepare_style_classifier",
    "loss_network_probe",
]


def _load_segmenter(cfg: ConfigParser, ckpt: str | Path) -> torch.nn.Module:
    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"{ckpt}: no segmenter; run configs/evaluate.yaml first (it writes segmenter.pt).")
    net = cfg.get_parsed_content("network", instantiate=True, lazy=False)
    state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"] if "model" in state else state)
    return net.eval()


def _us_write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=1)))


def score_fewshot_segmenter(
    segmenter: str,
    out: str,
    dataset_dir: str,
    config_file: str,
    subjects: int = 400,
    data_seed: int = 7,
    config_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score one ``segmenter.pt`` of ``configs/evaluate.yaml`` on the target-style image of every subject of
    a second synthetic data set (``subjects`` subjects, data seed ``data_seed``, rendered into ``dataset_dir``
    when missing): anatomies that neither the segmenters nor the style-transfer model saw. Metrics as in
    ``evaluate.yaml`` (MONAI ``DiceMetric``, ``MeanIoU``, ``ConfusionMatrixMetric``; classes 1..n-1, background
    excluded, mean over images). ``config_file`` is the bundle's ``evaluate.yaml`` (network, loading, target
    style) and ``config_overrides`` the run's config overrides. Writes ``out`` (JSON) and returns the scores."""
    if int(data_seed) == 0:
        raise ValueError("data_seed 0 renders the bundle's own subjects; choose another seed for new anatomies.")
    cfg = bundle_config_parser(config_file, config_overrides)
    num_classes, target, size = int(cfg["num_classes"]), str(cfg["target_style"]), int(cfg["image_size"])
    lists = ultrasound_style_datalist(dataset_dir, subjects=subjects, shape=[size, size], seed=data_seed)
    items = [e for split in ("training", "validation", "test") for e in lists[split] if e["style"] == target]
    if not items:
        raise ValueError(f"{dataset_dir} holds no image of the target style {target!r}.")
    loading = cfg.get_parsed_content("loading")
    loaded = [loading(dict(e)) for e in items]
    images = torch.stack([d["image"] for d in loaded])
    labels = torch.stack([d["label"] for d in loaded])
    if int(labels.max()) >= num_classes or int(labels.min()) < 0:
        raise ValueError(f"labels in {dataset_dir} outside 0..{num_classes - 1}.")
    y = one_hot(labels, num_classes)
    net = _load_segmenter(cfg, segmenter)
    with torch.no_grad():
        pred = torch.cat([net(images[i:i + 64]).argmax(1, keepdim=True) for i in range(0, len(images), 64)])
    yp = one_hot(pred, num_classes)
    dice = DiceMetric(include_background=False)(yp, y)
    iou = MeanIoU(include_background=False)(yp, y)
    cm = ConfusionMatrixMetric(include_background=False, metric_name=("precision", "recall"))
    cm(yp, y)
    precision, recall = (float(v) for v in cm.aggregate())
    res = {"segmenter": str(segmenter), "data": str(dataset_dir), "target_style": target, "images": len(items),
           "dice": float(torch.nanmean(dice)), "dice_per_class": [float(v) for v in torch.nanmean(dice, 0)],
           "iou": float(torch.nanmean(iou)), "precision": precision, "recall": recall}
    _us_write_json(out, res)
    return res


def _dice_fg(a: torch.Tensor, b: torch.Tensor, num_classes: int) -> float:
    """Mean Dice over foreground classes present in a or b (label maps (H, W)); 1.0 when both are empty."""
    ds = []
    for c in range(1, num_classes):
        x, y = a == c, b == c
        s = int(x.sum()) + int(y.sum())
        if s == 0:
            continue
        ds.append(2.0 * float((x & y).sum()) / s)
    return float(np.mean(ds)) if ds else 1.0


def content_preservation(
    segmenter: str | Sequence[str],
    model: str,
    out: str,
    config_file: str,
    seed: int = 0,
    config_overrides: Mapping[str, Any] | None = None,
    segmenter_training: Any = None,
) -> dict[str, Any]:
    """Content preservation of the style-transfer ``model`` (Hung & Galeotti 2021: restyled images keep their
    anatomy), judged by ``segmenter`` (one ``segmenter.pt`` of ``evaluate.yaml``, or several: their mean
    softmax). Every test image of ``config_file``'s data set (all styles; ``evaluate.yaml`` with
    ``config_overrides``, e.g. the judge's ``seg_channels``) is restyled 8 times: the posterior of one
    reference image of each of the 6 styles (a different test subject, one draw, spread 1) and two prior draws
    (spread 1.0 and 1.5), with seeds from ``seed``; the score is the Dice (classes 1-3) between the segmentation
    of the content image and that of each restyled version. As a reference point the same Dice between the
    content image and the same anatomy simulated in each other style, and Dice against the ground truth.
    Writes ``out`` (JSON) and returns it."""
    cfg = bundle_config_parser(config_file, config_overrides)
    ckpts = [segmenter] if isinstance(segmenter, (str, Path)) else list(segmenter)
    nets = [_load_segmenter(cfg, c) for c in ckpts]
    res = _content_preservation(nets, cfg.get_parsed_content("loading"), cfg.get_parsed_content("datalist_all")["test"],
                                int(cfg["num_classes"]), model, seed)
    res = {"segmenter": [str(c) for c in ckpts] if len(ckpts) > 1 else str(ckpts[0]),
           "segmenter_training": segmenter_training, "segmenter_channels": list(cfg["seg_channels"]), **res}
    _us_write_json(out, res)
    return res


def _content_preservation(nets: Sequence[torch.nn.Module], loading: Any, test: Sequence[Mapping[str, Any]],
                          num_classes: int, model: str, seed: int) -> dict[str, Any]:
    items = [loading(dict(e)) for e in test]
    styles = sorted({e["style"] for e in test})
    subjects = sorted({e["subject"] for e in test})
    by_key = {(e["subject"], e["style"]): i for i, e in enumerate(test)}

    t = time.time()
    st = StyleTransfer(model, device="cpu")

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

    gt_restyled, gt_content = [], [_dice_fg(seg_content[i], labels[i], num_classes) for i in range(len(items))]
    simulated: list[float] = []
    for i, e in enumerate(test):
        x = images[i]
        k_subj = subjects.index(e["subject"])
        ref_subject = subjects[(k_subj + 1) % len(subjects)]  # another anatomy as the style reference
        restyled, names = [], []
        for j, s in enumerate(styles):
            ref = images[by_key[(ref_subject, s)]]
            restyled.append(st(x, source="reference", seed=seed * 100000 + 100 * i + j, spread=1.0, style_image=ref))
            names.append(f"reference:{s}")
        for j, spread in enumerate((1.0, 1.5)):
            restyled.append(st(x, source="prior", seed=seed * 100000 + 100 * i + 50 + j, spread=spread))
            names.append(f"prior:spread{spread}")
        segs = segment(torch.stack(restyled))
        for name, sg in zip(names, segs):
            per_source.setdefault(name, []).append(_dice_fg(seg_content[i], sg, num_classes))
            pool("restyled", seg_content[i], sg)
            gt_restyled.append(_dice_fg(sg, labels[i], num_classes))
        for s in styles:  # the same anatomy simulated in the other styles
            if s != e["style"]:
                simulated.append(_dice_fg(seg_content[i], seg_content[by_key[(e["subject"], s)]], num_classes))
                pool("simulated", seg_content[i], seg_content[by_key[(e["subject"], s)]])
    all_d = [d for v in per_source.values() for d in v]
    return {
        "style_model": str(model),
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
        "timings": {"restyle_and_segment_s": round(time.time() - t, 1)},
        "seed": seed,
    }


def style_report(
    segmenter: torch.nn.Module,
    model: str,
    test: Sequence[Mapping[str, Any]],
    loading: Any,
    num_classes: int,
    report_dataset_dir: str,
    output_dir: str,
    seed: int = 0,
) -> dict[str, Any]:
    """The style model's report of ``configs/evaluate.yaml`` (``train_set: all_styles``): content preservation
    judged by ``segmenter`` (the all-styles segmenter just trained) on the ``test`` items, and
    :func:`style_fidelity` on the test split of ``report_dataset_dir``. Writes
    ``output_dir/content_preservation.json`` and ``output_dir/style_fidelity.json``; returns the headline numbers."""
    segmenter = segmenter.eval()
    cp = {"segmenter": "the all-styles segmenter of this run", **_content_preservation(
        [segmenter.cpu()], loading, test, int(num_classes), model, seed)}
    _us_write_json(Path(output_dir) / "content_preservation.json", cp)
    fid = style_fidelity(model, report_dataset_dir, str(Path(output_dir) / "style_fidelity.json"))
    print(f"content preservation (Dice, content vs restyled) {cp['dice_content_vs_restyled_mean']:.3f}; "
          f"style fidelity ratio {fid['mean_ratio']:.3f} (0 = reference texture, 1 = unchanged)")
    return {"content_preservation": cp["dice_content_vs_restyled_mean"], "style_fidelity_ratio": fid["mean_ratio"]}


def _split_images(dataset_dir: str, split: str) -> tuple[torch.Tensor, list[Mapping[str, Any]]]:
    items = ultrasound_style_datalist(dataset_dir, subjects=80, shape=[64, 64], seed=0)[split]
    load = LoadUltrasound()
    x = torch.stack([torch.nn.functional.interpolate(load(e["image"]).as_tensor()[None].float(), size=(64, 64),
                                                     mode="area")[0] for e in items])
    return x, items


def _test_images(dataset_dir: str) -> tuple[list[Mapping[str, Any]], dict[tuple[str, str], torch.Tensor]]:
    x, test = _split_images(dataset_dir, "test")
    return test, {(e["subject"], e["style"]): x[i] for i, e in enumerate(test)}


def style_fidelity(model: str, dataset_dir: str, out: str | None = None, spread: float = 0.0) -> dict[str, Any]:
    """Style fidelity of the style-transfer ``model`` on the test split of the synthetic data set in
    ``dataset_dir`` (80 subjects, data seed 0, 64 x 64; generated when missing): every test image (12 subjects
    x 6 styles) restyled with each style, the reference being the next subject's image of that style (posterior
    mean for ``spread`` 0). Per (content style, reference style) pair, the speckle-statistics distance of
    the restyled images to their references over that of the content images
    (:class:`~monai_ext.metrics.SpeckleStyleFidelity`; 0: the reference's texture, 1: unchanged), and the same
    ratio for the content anatomy simulated in the reference style (``oracle``: what a perfect transfer could
    reach, the anatomies still differ). ``mean_ratio`` averages the 30 pairs of two different styles. Writes
    ``out`` (JSON) when given and returns the result."""
    test, img = _test_images(dataset_dir)
    styles = sorted({e["style"] for e in test})
    subjects = sorted({e["subject"] for e in test})
    t = time.time()
    st = StyleTransfer(model, device="cpu")
    metric = SpeckleStyleFidelity()
    for k, subject in enumerate(subjects):
        ref_subject = subjects[(k + 1) % len(subjects)]
        for cs in styles:
            content = img[(subject, cs)]
            refs = [img[(ref_subject, rs)] for rs in styles]
            restyled = [st(content, source="reference", spread=float(spread), style_image=r) for r in refs]
            metric(restyled, [content] * len(styles), refs, [(cs, rs) for rs in styles],
                   oracle=[img[(subject, rs)] for rs in styles])
    res = {"style_model": str(model), "data": str(dataset_dir), "spread": float(spread),
           "test_images": len(test), **metric.aggregate(), "seconds": round(time.time() - t, 1)}
    if out is not None:
        _us_write_json(out, res)
    print(f"style fidelity of {model}: mean ratio {res['mean_ratio']:.3f} over {res['pairs']} style pairs "
          f"(simulator's own: {res['mean_oracle_ratio']:.3f}; 1 = texture unchanged)")
    return res


def restyled_image_sets(model: str, dataset_dir: str, spread: float = 0.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """The three image sets of the GAN evaluation suite (:func:`monai_ext.engines.gan_evaluation_report`) for the
    style-transfer ``model`` on the synthetic data set in ``dataset_dir`` (80 subjects, data seed 0, 64 x 64):
    ``real_train`` = the training split (every style), ``real_test`` = the validation and test splits, and
    ``synthetic`` = every held-out image restyled (``spread`` 0: posterior mean) with the style of a randomly drawn
    training image of another style, so the synthetic set has held-out anatomy in the real styles' proportions.
    All ``(N, 1, 64, 64)`` in [0, 1]."""
    real_train, train = _split_images(dataset_dir, "training")
    held = [_split_images(dataset_dir, split) for split in ("validation", "test")]
    real_test = torch.cat([x for x, _ in held])
    held_items = [e for _, items in held for e in items]
    rng = np.random.default_rng(seed)
    st = StyleTransfer(model, device="cpu")
    synthetic = []
    for k, e in enumerate(held_items):
        others = [i for i, t in enumerate(train) if t["style"] != e["style"]]
        ref = real_train[others[int(rng.integers(len(others)))]]
        synthetic.append(torch.as_tensor(st(real_test[k], source="reference", spread=float(spread), seed=seed + k, style_image=ref)))
    return {"real_train": real_train, "real_test": real_test, "synthetic": torch.stack(synthetic).float().clamp(0, 1)}


def us_style_grid(model: str, dataset_dir: str, out: str, scale: int = 2, contents: int = 4,
                  fidelity: bool = True) -> str:
    """PNG grid of the style-transfer ``model``: content x style (each content image restyled with the posterior
    mean of one reference image per machine style), prior samples (spread 1 and 2), and a latent interpolation
    row (t = -0.5 ... 1.5 between two reference styles; t outside [0, 1] extrapolates). Images are test-split
    images of the synthetic data set in ``dataset_dir`` (80 subjects, data seed 0, generated when missing).
    ``fidelity``: a last line gives, under each style column, the :func:`style_fidelity` ratio of that reference
    style (mean over the 5 other content styles of all test subjects; 1 = texture unchanged).
    Writes ``out`` and returns its path."""
    from PIL import Image, ImageDraw

    dl, img = _test_images(dataset_dir)
    styles = sorted({e["style"] for e in dl})
    subjects = sorted({e["subject"] for e in dl})
    st = StyleTransfer(model, device="cpu")
    si = StyleInterpolate(model, device="cpu")
    ref_subject = subjects[-1]
    content_styles = [styles[k % len(styles)] for k in range(contents)]
    content_imgs = [img[(subjects[k], content_styles[k])] for k in range(contents)]
    refs = [img[(ref_subject, s)] for s in styles]

    rows, labels = [[None] + refs + [None, None]], ["style refs"]
    for k, x in enumerate(content_imgs):
        row = [x] + [st(x, source="reference", spread=0.0, style_image=r) for r in refs]
        row += [st(x, source="prior", seed=k, spread=1.0), st(x, source="prior", seed=100 + k, spread=2.0)]
        rows.append(row)
        labels.append(f"content {k}")
    ts = [-0.5, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5][: len(styles) + 3]
    a, b = refs[0], refs[-1]
    rows.append([si(content_imgs[0], t=float(t), style_a=a, style_b=b) for t in ts])
    labels.append("interp.")
    col_titles = ["content"] + [s.replace("_", " ") for s in styles] + ["prior s=1", "prior s=2"]
    interp_titles = [f"t={t:+.2f}" for t in ts]

    h = w = 64 * scale
    margin, top, gap, title_h = 70, 14, 3, 12
    foot_h = 14 if fidelity else 0
    H = top + len(rows) * (h + gap) + title_h + foot_h
    W = margin + len(col_titles) * (w + gap)
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
    if fidelity:
        fid = style_fidelity(model, dataset_dir)
        y_foot = H - foot_h + 1
        draw.text((2, y_foot), "fidelity", fill=0)
        for c, s in enumerate(styles, start=1):
            r = np.mean([v["restyled_ratio"]["mean"] for k, v in fid["per_pair"].items()
                         if k.endswith("->" + s) and not k.startswith(s + "->")])
            draw.text((margin + c * (w + gap) + 2, y_foot), f"ratio {r:.2f}", fill=0)
        draw.text((margin + 2, y_foot), f"mean {fid['mean_ratio']:.2f}", fill=0)
    atomic_write(out, lambda p: canvas.save(p, format="PNG"))
    print(f"wrote {out} ({W}x{H}); interpolation between {styles[0]} (A) and {styles[-1]} (B) of subject {ref_subject}")
    return str(out)


def prepare_style_classifier(dataset_dir: str, out: str, epochs: int = 30, seed: int = 0) -> dict[str, Any]:
    """Train the ``style_classifier`` loss-network candidate (:func:`~.loss_networks.train_us_style_classifier`:
    style of random 32 x 32 crops) on the training split of the synthetic data set in ``dataset_dir``, validated
    on its validation split. Writes the checkpoint ``out``; returns its training record."""
    x, items = _split_images(dataset_dir, "training")
    vx, vitems = _split_images(dataset_dir, "validation")
    styles = sorted({e["style"] for e in items})
    _, info = train_us_style_classifier(x, [styles.index(e["style"]) for e in items], out=out, epochs=epochs,
                                        seed=seed, val_images=vx, val_styles=[styles.index(e["style"]) for e in vitems])
    return info


def loss_network_probe(
    network: str,
    dataset_dir: str,
    out: str,
    content_autoencoder: str | None = None,
    style_classifier: str | None = None,
    steps: int = 300,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """How well does the loss network ``network`` (:func:`~.loss_networks.us_loss_network`) see ultrasound texture?
    Two measurements on the test split of the synthetic data set in ``dataset_dir`` (12 subjects x 6 styles):

    - ``retrieval_accuracy``: the share of test images whose nearest image of another subject, in Gram-matrix
      distance (every layer, each scaled by its median Gram norm), has the same machine style;
    - ``texture_synthesis_ratio``: each subject's image in one style (styles cycle over subjects) is optimised
      pixel by pixel (Adam, ``steps`` steps, ``learning_rate``, values kept in [0, 1]) to match the Gram
      matrices of the next subject's image in each of the 5 other styles (every layer's term divided by its
      value at the start), as in Gatys et al.'s texture synthesis; the result is scored with the network-free
      speckle statistics (:class:`~monai_ext.metrics.SpeckleStyleFidelity`: 0 = the reference's texture,
      1 = unchanged). What a generator trained with this loss could reach at best.

    Writes ``out`` (JSON) and returns the result."""
    torch.manual_seed(int(seed))
    ext = us_loss_network(network, content_autoencoder=content_autoencoder, style_classifier=style_classifier,
                          seed=int(seed))
    x, test = _split_images(dataset_dir, "test")
    styles = sorted({e["style"] for e in test})
    subjects = sorted({e["subject"] for e in test})
    key = {(e["subject"], e["style"]): i for i, e in enumerate(test)}
    t0 = time.time()
    with torch.no_grad():
        grams = [gram_matrix(f).flatten(1) for f in ext(x)]
    dist = sum(torch.cdist(g / g.norm(dim=1).median(), g / g.norm(dim=1).median()) for g in grams).numpy()
    subj = np.array([e["subject"] for e in test])
    style = np.array([e["style"] for e in test])
    dist[subj[:, None] == subj[None, :]] = np.inf
    retrieval = float(np.mean(style[dist.argmin(1)] == style))

    content_idx, ref_idx, oracle_idx, pairs = [], [], [], []
    for k, s in enumerate(subjects):
        cs, ref_subject = styles[k % len(styles)], subjects[(k + 1) % len(subjects)]
        for rs in styles:
            if rs != cs:
                content_idx.append(key[(s, cs)])
                ref_idx.append(key[(ref_subject, rs)])
                oracle_idx.append(key[(s, rs)])
                pairs.append((cs, rs))
    content, ref = x[content_idx], x[ref_idx]
    with torch.no_grad():
        target = [gram_matrix(f) for f in ext(ref)]

    def per_layer(img: torch.Tensor) -> list[torch.Tensor]:
        return [((gram_matrix(f) - g) ** 2).flatten(1).mean(1) for f, g in zip(ext(img), target)]

    with torch.no_grad():
        start = [v.mean() + 1e-20 for v in per_layer(content)]
    img = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([img], lr=float(learning_rate))
    for _ in range(int(steps)):
        loss = sum((v / s0).mean() for v, s0 in zip(per_layer(img), start)) / len(start)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            img.clamp_(0.0, 1.0)
    fid = SpeckleStyleFidelity()
    fid(img.detach(), content, ref, pairs, oracle=x[oracle_idx])
    agg = fid.aggregate()
    res = {
        "network": network, "layers": len(grams), "retrieval_accuracy": retrieval,
        "texture_synthesis_ratio": agg["mean_ratio"],
        "texture_synthesis_ratio_per_statistic": agg["mean_ratio_per_statistic"],
        "simulator_ratio": agg["mean_oracle_ratio"],
        "relative_gram_loss_after": float(loss.detach()),
        "mean_abs_change_from_content": float((img.detach() - content).abs().mean()),
        "pairs": len(pairs), "steps": int(steps), "seconds": round(time.time() - t0, 1),
    }
    _us_write_json(out, res)
    print(f"loss network {network}: style retrieval {retrieval:.3f}, texture synthesis ratio {agg['mean_ratio']:.3f}")
    return res
