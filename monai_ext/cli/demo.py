"""End-to-end demos: synthetic data -> training on the bundle runner -> evaluation -> real CT."""

from __future__ import annotations

import csv
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from ignite.engine import Events
from monai.bundle import ConfigParser

from ..apps.covid19_ct_fewshot_seg.consistency import DEFAULT_VARIANTS, consistency_check
from ..bundle_helpers import run_bundle, shared_data_dir
from ..io import atomic_write
from ..phantoms.chest_ct_dataset import synthesize_dataset
from .catalog import resolve_bundle
from .quiet import captured_run_output

__all__ = ["describe_label_volume", "install_if_not_worse", "read_metric_summary", "run_demo", "save_overlay_png"]

CLASS_NAMES = ("left lung", "right lung", "infection")
FINE_TUNE_EPOCHS = 40
FINE_TUNE_LR = 5e-4


def read_metric_summary(eval_dir: str | Path, metric: str) -> dict[str, float]:
    """Mean per class from the ``<metric>_summary.csv`` that MONAI's MetricsSaver writes."""
    path = Path(eval_dir) / f"{metric}_summary.csv"
    with open(path) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    mean_col = header.index("mean")
    return {r[0]: float(r[mean_col]) for r in body if r and r[0] != "mean"}


def describe_label_volume(label_path: str | Path, image_path: str | Path) -> dict[str, float]:
    """Volume (ml) per class of a label NIfTI that must share its image's grid."""
    import nibabel as nib

    lab_img, img = nib.load(str(label_path)), nib.load(str(image_path))
    if lab_img.shape != img.shape or not np.allclose(lab_img.affine, img.affine, atol=1e-3):
        raise ValueError(f"{label_path}: geometry {lab_img.shape} differs from its image {image_path} {img.shape}")
    lab = np.asarray(lab_img.dataobj)
    voxel_ml = float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0
    return {name: float((lab == i + 1).sum() * voxel_ml) for i, name in enumerate(CLASS_NAMES)}


def save_overlay_png(label_path: str | Path, image_path: str | Path, out_png: str | Path, n_slices: int = 6) -> Path:
    """Axial slices (lung window) with the labels in colour: left lung blue, right lung green, infection red.

    The slices are spread over the labelled range, so a person can see at a glance whether stomach or
    bowel gas was taken for lung. Radiological convention: the patient's right on the viewer's left,
    anterior up.
    """
    import nibabel as nib
    from PIL import Image

    hu = np.asarray(nib.as_closest_canonical(nib.load(str(image_path))).dataobj).astype(np.float32)
    lab = np.asarray(nib.as_closest_canonical(nib.load(str(label_path))).dataobj)
    zs = np.flatnonzero(lab.any(axis=(0, 1))) if lab.any() else np.arange(hu.shape[2])
    picks = np.unique(np.linspace(max(zs.min() - 6, 0), zs.max(), n_slices).round().astype(int))
    grey = (np.clip((hu + 1000.0) / 1400.0, 0, 1) * 255).astype(np.float32)
    tiles = []
    for z in picks:
        rgb = np.repeat(grey[:, :, z, None], 3, axis=2)
        for k, colour in {1: (0, 0, 255), 2: (0, 255, 0), 3: (255, 0, 0)}.items():
            m = lab[:, :, z] == k
            rgb[m] = 0.55 * rgb[m] + 0.45 * np.array(colour, np.float32)
        tiles.append(rgb[::-1, ::-1].transpose(1, 0, 2))  # RAS array -> rows anterior first, columns right first
    image = np.concatenate(tiles, axis=1).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(image)).resize((image.shape[1] * 2, image.shape[0] * 2)).save(out_png)
    return Path(out_png)


def _train(bundle_dir: Path, progress=None, **overrides) -> dict:
    """Run ``train.yaml`` through MONAI's ``ConfigWorkflow`` (what ``python -m monai.bundle run`` does) and report
    how the training ended: ``{"epochs": done, "time_limited": stopped by the time limit}``. ``progress``: a text
    stream that gets one line per validation round."""
    from monai.bundle import ConfigWorkflow

    configs = bundle_dir / "configs"
    overrides.setdefault("bundle_root", str(bundle_dir))
    workflow = ConfigWorkflow(
        config_file=str(configs / "train.yaml"),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type="train",
        **overrides,
    )
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    start = time.perf_counter()

    def _progress(engine) -> None:
        dice = engine.state.metrics.get("val_mean_dice", float("nan"))
        print(f"      epoch {trainer.state.epoch:>3}/{trainer.state.max_epochs}: validation mean Dice {dice:.3f} "
              f"({time.perf_counter() - start:.0f} s)", file=progress, flush=True)

    if progress is not None:
        evaluator.add_event_handler(Events.COMPLETED, _progress)
    workflow.run()
    state = trainer.state
    info = {"epochs": int(state.epoch), "time_limited": bool(getattr(state, "time_limit_reached", False))}
    workflow.finalize()
    return info


def _append_log(path: Path, buffer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(buffer.getvalue())


def _evaluate(
    bundle_dir: Path, data_dir: Path, fold: int, ckpt: Path, eval_dir: Path, log_dir: Path, **overrides
) -> tuple[dict, dict]:
    """Per-class mean Dice and NSD of the weights ``ckpt`` on the fold's held-out cases (``evaluate.yaml``)."""
    run_bundle(
        bundle_dir,
        ["train.yaml", "evaluate.yaml"],
        dataset_dir=str(data_dir),
        fold=fold,
        ckpt_path=str(ckpt),
        eval_dir=str(eval_dir),
        log_dir=str(log_dir),
        **overrides,
    )
    return read_metric_summary(eval_dir, "val_mean_dice"), read_metric_summary(eval_dir, "val_mean_nsd")


def install_if_not_worse(
    trained: Path, committed: Path, new_dice: dict[str, float], old_dice: dict[str, float] | None,
    new_consistency: float | None = None, old_consistency: float | None = None,
) -> str:
    """Copy ``trained`` over ``committed`` (atomically) when its mean Dice on the held-out cases is at least the
    committed model's and, when both are given, its real-CT consistency (mean lung Dice between the predictions on
    a real CT and on its transformed copies) is at least the committed model's too; returns what was done."""
    new_mean = float(np.mean(list(new_dice.values())))
    if old_dice is not None:
        old_mean = float(np.mean(list(old_dice.values())))
        if new_mean < old_mean:
            return (f"not installed: mean Dice {new_mean:.3f} is below the committed model's {old_mean:.3f}; "
                    f"{committed} is unchanged")
    if new_consistency is not None and old_consistency is not None and new_consistency < old_consistency:
        return (f"not installed: its real-CT consistency {new_consistency:.3f} is below the committed model's "
                f"{old_consistency:.3f} (a model that fits the phantoms better but real scans worse); {committed} "
                "is unchanged")
    atomic_write(committed, lambda tmp: shutil.copyfile(trained, tmp))
    return f"installed as {committed} (mean Dice {new_mean:.3f})"


def _real_ct_consistency(bundle_dir: Path, real: Path, ckpt: Path, log_dir: Path) -> float:
    """Mean lung Dice between the predictions on ``real`` and on its transformed copies (the ``consistency``
    command's check), for weights ``ckpt``."""
    with captured_run_output() as log:
        report = consistency_check(real, bundle_dir, ckpt=ckpt, progress=False)
    _append_log(log_dir / "demo_runs.log", log)
    return float(np.nanmean([r["dice_lungs"] for r in report["variants"]]))


def run_demo(
    bundle: str = "covid19_ct_fewshot_seg",
    work_dir: str = "demo_output",
    cases: int = 12,
    seed: int = 0,
    fold: int = 0,
    max_epochs: int | None = None,
    time_limit_sec: float = 0.0,
    allow_partial: bool = False,
    install_weights: bool = False,
    real_ct: str | None = None,
    augmentation: str = "none",
    train_overrides: dict | None = None,
    from_scratch: bool = False,
    variety: bool = False,
) -> dict:
    """Generate phantoms, train the bundle on 4 of them for ``max_epochs`` epochs (early stopping may end it
    sooner), evaluate per-class Dice / NSD on the held-out phantoms next to the committed model's, segment the real
    CT (``real_ct`` or ``../shared/data/ct/*.nii.gz`` when present) and print a table.

    ``variety=True`` draws phantoms with random acquisition and patient variety (see
    :func:`monai_ext.phantoms.generate_chest_ct`); the default keeps the plain phantoms, so the demo's scores stay
    comparable from version to version. When the bundle has committed weights, the demo fine-tunes them
    (learning rate ``FINE_TUNE_LR``, default ``FINE_TUNE_EPOCHS`` epochs): the committed weights come from a longer
    run of ``train.yaml`` on other phantoms (the bundle's docs say which) than 4 cases and a few minutes of CPU can
    give. ``from_scratch=True`` trains a new network (default ``max_epochs`` 100).

    The trained weights go to ``<work_dir>/models/model.pt``. The bundle's ``models/model.pt`` is replaced only
    with ``install_weights=True``, and only when the new model's mean Dice on the same held-out cases is at least
    the committed model's. ``time_limit_sec > 0`` stops training at the end of the first epoch past that many
    seconds; such a partial training is reported, is never installed, and makes the result's ``"partial"`` true
    (the command line then exits with status 3 unless ``allow_partial``).

    ``augmentation`` defaults to ``"none"``: in a run of 100 epochs the stacked BigAug transforms slow convergence
    more than they help on phantoms (``train.yaml`` itself defaults to ``"bigaug"``). ``train_overrides``: further
    ``train.yaml`` keys (e.g. ``{"learning_rate": 0.001}``), used for training, evaluation and inference alike.
    """
    if bundle != "covid19_ct_fewshot_seg":
        raise ValueError(f"no demo for bundle {bundle!r}; bundles with a demo: covid19_ct_fewshot_seg")
    bundle_dir = resolve_bundle(bundle)
    work = Path(work_dir).resolve()
    data_dir, eval_dir, real_dir, log_dir = work / "data", work / "eval", work / "real_ct", work / "logs"
    models = work / "models"
    committed = bundle_dir / "models" / "model.pt"
    run_log = log_dir / "demo_runs.log"  # the bundle runs' prints and warnings, kept out of the terminal
    out = sys.stdout
    t0 = time.perf_counter()

    if (data_dir / "datalist_fewshot_5fold.json").is_file():
        print(f"[1/5] synthetic chest-CT phantoms: using those already in {data_dir}")
    else:
        kind = " with acquisition variety" if variety else ""
        print(f"[1/5] synthetic chest-CT phantoms{kind}: {cases} cases (seed {seed}) -> {data_dir}")
        synthesize_dataset(data_dir, cases=cases, seed=seed, variety=variety, progress=False)

    extra = dict(train_overrides or {})
    train_extra = dict(extra)
    fine_tune = committed.is_file() and not from_scratch
    if max_epochs is None:
        max_epochs = FINE_TUNE_EPOCHS if fine_tune else 100
    limit = f", stopping after {time_limit_sec:.0f} s" if time_limit_sec and time_limit_sec > 0 else ""
    if fine_tune:
        train_extra.setdefault("pretrained_ckpt", str(committed))
        train_extra.setdefault("learning_rate", FINE_TUNE_LR)
        print(f"[2/5] fine-tuning the committed model on 4 phantoms (fold {fold}) for {max_epochs} epochs{limit} "
              f"-> {models}")
    else:
        print(f"[2/5] training a new model on 4 phantoms (fold {fold}) for {max_epochs} epochs{limit} -> {models}")
    with captured_run_output() as log:
        trained = _train(
            bundle_dir, progress=out, dataset_dir=str(data_dir), fold=fold, max_epochs=int(max_epochs),
            time_limit_sec=float(time_limit_sec or 0), augmentation=augmentation, ckpt_dir=str(models),
            output_dir=str(work / "train"), log_dir=str(log_dir), **train_extra,
        )  # fmt: skip
    _append_log(run_log, log)
    new_ckpt = models / "model.pt"
    if not new_ckpt.is_file():
        if trained["time_limited"]:
            print(f"\nTraining: {trained['epochs']} of {max_epochs} epochs -- STOPPED BY THE TIME LIMIT before the first "
                  f"validation: no model was saved; {committed} is unchanged")
            return {"epochs": trained["epochs"], "max_epochs": int(max_epochs), "partial": True, "weights": None,
                    "installed": False, "dice": None, "nsd": None, "committed_dice": None, "real_ct": None}
        raise RuntimeError(f"training wrote no {new_ckpt}: it ended before its first validation (val_interval).")

    print(f"[3/5] evaluating the trained model on the held-out phantoms -> {eval_dir}")
    with captured_run_output() as log:
        dice, nsd = _evaluate(bundle_dir, data_dir, fold, new_ckpt, eval_dir, log_dir, **extra)
    _append_log(run_log, log)
    old_dice = old_nsd = None
    if committed.is_file():
        print(f"[4/5] evaluating the committed {committed.relative_to(bundle_dir.parent.parent)} on the same cases")
        try:
            with captured_run_output() as log:
                old_dice, old_nsd = _evaluate(bundle_dir, data_dir, fold, committed, work / "eval_committed", log_dir, **extra)
        except RuntimeError as e:  # e.g. train_overrides changed the network, so the committed weights do not load
            print(f"      the committed model could not be evaluated with these settings ({str(e).splitlines()[0][:160]})")
    else:
        print(f"[4/5] no committed weights at {committed}; nothing to compare with")

    real = Path(real_ct) if real_ct else None
    if real is None and (shared := shared_data_dir()) is not None:
        real = next(iter(sorted((shared / "ct").glob("*.nii*"))), None)
    real_stats = png = None
    if real is not None and real.exists():
        print(f"[5/5] segmenting the real CT {real.name} with the trained model -> {real_dir}")
        inference_config = ConfigParser.load_config_file(str(bundle_dir / "configs" / "inference.yaml"))
        inference_keys = {k: v for k, v in extra.items() if k.split("#")[0] in inference_config}
        with captured_run_output() as log:
            run_bundle(bundle_dir, ["inference.yaml"], dataset_dir=str(real), output_dir=str(real_dir),
                       ckpt_path=str(new_ckpt), **inference_keys)  # fmt: skip
        _append_log(run_log, log)
        seg = next(real_dir.glob("*_seg.nii.gz"))
        real_stats = describe_label_volume(seg, real)
        png = save_overlay_png(seg, real, work / "real_ct_overlay.png")
    else:
        print("[5/5] no real CT found (../shared/data/ct/); skipped")

    partial = trained["time_limited"]
    keys = list(dice)
    names = list(CLASS_NAMES) if len(keys) == len(CLASS_NAMES) else keys
    print(f"\nTraining: {trained['epochs']} of {max_epochs} epochs"
          + (" -- STOPPED BY THE TIME LIMIT: a partial training, not installed" if partial else ""))
    print("Held-out synthetic cases (original resolution), mean over cases:")
    print(f"{'class':<12} {'Dice':>7} {'NSD':>7}   {'committed Dice':>14} {'NSD':>7}")
    for name, k in zip(names, keys):
        old = f"{old_dice.get(k, float('nan')):>14.3f} {old_nsd.get(k, float('nan')):>7.3f}" if old_dice else f"{'-':>14} {'-':>7}"
        print(f"{name:<12} {dice[k]:>7.3f} {nsd.get(k, float('nan')):>7.3f}   {old}")
    new_cons = old_cons = None
    if real_stats:
        print(f"\nReal CT {real.name} (ml): " + ", ".join(f"{k} {v:.1f}" for k, v in real_stats.items()))
        print(f"look at {png}: left lung blue, right lung green, infection red; gas below the diaphragm must stay grey")
        new_cons = _real_ct_consistency(bundle_dir, real, new_ckpt, log_dir)
        if committed.is_file():
            old_cons = _real_ct_consistency(bundle_dir, real, committed, log_dir)
        print(f"real-CT consistency (mean lung Dice, scan vs. {len(DEFAULT_VARIANTS)} cut/resampled/noisy/sharpened "
              f"copies): {new_cons:.3f}" + (f", committed model {old_cons:.3f}" if old_cons is not None else ""))
    if install_weights and not partial and old_dice is None and committed.is_file():
        outcome = f"not installed: the committed model could not be compared; {committed} is unchanged"
    elif install_weights and not partial:
        outcome = install_if_not_worse(new_ckpt, committed, dice, old_dice, new_cons, old_cons)
    elif install_weights:
        outcome = f"not installed: the training was partial; {committed} is unchanged"
    else:
        outcome = f"not installed (--install_weights replaces {committed} when the new model scores at least as well)"
    print(f"\nweights: {new_ckpt}; {outcome}")
    print(f"total time {time.perf_counter() - t0:.0f} s; the bundle runs' prints and warnings: {run_log}")
    return {
        "dice": dict(zip(names, dice.values())),
        "nsd": dict(zip(names, nsd.values())),
        "committed_dice": dict(zip(names, old_dice.values())) if old_dice else None,
        "epochs": trained["epochs"],
        "max_epochs": int(max_epochs),
        "partial": partial,
        "real_ct": real_stats,
        "real_ct_consistency": new_cons,
        "committed_real_ct_consistency": old_cons,
        "weights": str(new_ckpt),
        "installed": outcome.startswith("installed"),
    }
