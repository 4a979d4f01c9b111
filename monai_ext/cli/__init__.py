"""Command line: ``python -m monai_ext COMMAND``.

Commands:
    list                      bundles and their tasks
    synth --out DIR [--variety]  synthetic chest-CT phantoms with labels, dataset.json and few-shot folds
    demo BUNDLE               generate data, fine-tune, evaluate next to the committed model, segment the real CT
    consistency SCAN [--out DIR]  label-free checks of the lung model on a real CT: cut, resampled, noisy copies
    infer BUNDLE INPUT OUTPUT  a bundle's inference on a scan, a DICOM folder or a folder of scans; clean errors
    verify BUNDLE | --all     the Model Zoo checks (layout, metadata, network shapes, TorchScript export)
    package BUNDLE [--out DIR]  the Model Zoo zip (checks first), loadable by monai.bundle.download/load
    label-app BUNDLE --studies DIR [--python PY] [--run]   serve a bundle with MONAI Label, offline
    gan-report --real_train DIR --real_test DIR --synthetic DIR --out DIR
                              judge a generator: two-sample CNN, feature distances, memorisation, mode collapse
    study BUNDLE [STUDY] [--arms A ..] [--seeds S ..] [--work DIR] [--set KEY=VALUE ..] [--docs]
                              run a study the bundle declares (configs/study*.yaml): arms x seeds, paired tests
"""

# Each command imports what it runs when it runs (not at the top), so that ``--help`` and ``list`` stay fast.

from __future__ import annotations

import sys

import fire

from .. import import_components

__all__ = ["COMMANDS", "main"]


def list_bundles_command(bundles_dir: str | None = None) -> None:
    """Print the bundles (name, version, task)."""
    from .catalog import list_bundles as _list

    rows = _list(bundles_dir)
    if not rows:
        print("no bundles found")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  v{r['version']:<7} {r['task']}")


def synth_command(
    out: str,
    cases: int = 10,
    seed: int = 0,
    shape: str | tuple = "128,128,96",
    spacing: str | tuple = "3.0,3.0,3.0",
    dicom: bool = False,
    nodules: bool = False,
    variety: bool = False,
) -> None:
    """Write synthetic chest-CT phantoms (NIfTI in HU), labels, dataset.json and a 5-fold few-shot datalist.
    --variety draws per case the acquisition and patient variety of real CT (truncated field of view, arms,
    contrast, kernel, dose, slice thickness, patient size, inspiration, effusion, atelectasis, emphysema)."""
    from ..phantoms.chest_ct_dataset import synth as _synth

    _synth(out=out, cases=cases, seed=seed, shape=shape, spacing=spacing, dicom=dicom, nodules=nodules, variety=variety)


def demo_command(
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
) -> None:
    """Generate phantoms (--variety: with acquisition and patient variety), fine-tune the committed model on 4 of
    them (40 epochs; --from_scratch: train a new one, 100 epochs; --max_epochs to change), evaluate it next to the
    committed model, segment the real CT and check its consistency. The trained weights go to WORK_DIR/models;
    --install_weights replaces the bundle's models/model.pt only if the new model scores at least as well on the
    same held-out cases and on the real-CT consistency check. --time_limit_sec stops training
    early: the run is then partial, never installed, and exits with status 3 unless --allow_partial."""
    from .demo import run_demo

    result = run_demo(
        bundle, work_dir=work_dir, cases=cases, seed=seed, fold=fold, max_epochs=max_epochs,
        time_limit_sec=time_limit_sec, allow_partial=allow_partial, install_weights=install_weights,
        real_ct=real_ct, augmentation=augmentation, train_overrides=train_overrides, from_scratch=from_scratch,
        variety=variety,
    )  # fmt: skip
    if result["partial"] and not allow_partial:
        sys.exit(3)


def infer_command(
    bundle: str,
    input: str,
    output: str,
    device: str | None = None,
    debug: bool = False,
    hu_slope: float | None = None,
    hu_intercept: float | None = None,
) -> None:
    """Run BUNDLE's inference.yaml on INPUT (a scan, a DICOM series folder or a folder of scans), writing into
    OUTPUT, with a progress line per scan. Bad input: one line naming it, exit status 2 (--debug: the traceback).
    --hu_slope / --hu_intercept: rescale of CT images not stored in HU (HU = stored * slope + intercept), for
    bundles whose inference.yaml has these keys."""
    from .infer import BAD_INPUT_EXIT_CODE, infer, input_error_message

    overrides = {k: v for k, v in (("hu_slope", hu_slope), ("hu_intercept", hu_intercept)) if v is not None}
    try:
        infer(bundle, input, output, device=device, overrides=overrides)
    except Exception as e:
        message = input_error_message(e)
        if message is None or debug:
            print(getattr(e, "run_log", ""), file=sys.stderr)
            raise
        print(f"infer: {message}", file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)


def verify_command(*bundles: str, all: bool = False, export: bool = True) -> None:
    """Model Zoo checks for the named bundles (or ``--all``); exits non-zero when a check fails."""
    from .zoo import verify as _verify

    code = _verify(list(bundles) or None, all=all, check_export=export)
    if code:
        sys.exit(code)


def package_command(bundle: str, out: str = ".", verify: bool = True) -> None:
    """Zip a bundle the Model Zoo way (after the ``verify`` checks); prints the zip's path."""
    from .packaging import BundlePackageError, package_bundle

    try:
        path = package_bundle(bundle, out_dir=out, verify=verify)
    except (BundlePackageError, FileNotFoundError) as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    print(path)


def label_app_command(bundle: str, studies: str, apps_dir: str = "monailabel_apps", port: int = 8000, python: str | None = None, run: bool = False) -> None:
    """Copy the bundle into MONAI Label's monaibundle app and print (or ``--run``) the server command."""
    from .label_app import label_app as _label_app

    _label_app(bundle, studies, apps_dir=apps_dir, port=port, python=python or sys.executable, run=run)


def consistency_command(
    scan: str, out: str | None = None, bundle: str = "covid19_ct_fewshot_seg", device: str | None = None,
    variants: str | None = None, min_dice: float = 0.97, ckpt: str | None = None,
) -> None:
    """Label-free consistency checks on a real CT (NIfTI or DICOM folder): the lung model's prediction on SCAN
    and on copies cut at the sides, front/back and top/bottom, resampled to 1.5/3/5 mm slices, with low-dose
    noise and a sharp kernel must agree (Dice >= --min_dice on the common region); exit status 1 when not."""
    from .consistency import consistency

    report = consistency(scan, out=out, bundle=bundle, device=device, variants=variants, min_dice=min_dice, ckpt=ckpt)
    if not report["passed"]:
        sys.exit(1)


def gan_report_command(
    real_train: str, real_test: str, synthetic: str, out: str, title: str | None = None, size: int = 64,
    slices: str = "middle3", intensity_range: str | None = None, epochs: int = 20, max_images: int = 128, seed: int = 0,
    device: str | None = None, repeats: int = 3, min_iterations: int = 200,
) -> None:
    """Judge a generator's images (SYNTHETIC) against the real images it learnt from (REAL_TRAIN) and held-out real
    ones (REAL_TEST): real-vs-synthetic CNN (recall, specificity), Frechet and Mahalanobis distances in its features,
    MS-SSIM memorisation and mode-collapse checks, template matching. Writes report.json, report.md and figures into
    OUT. --intensity_range "lo,hi" (default: 0.5-99.5 percentiles of REAL_TRAIN); --slices middle|middle3|all;
    --repeats two-sample runs (3) of at least --min_iterations CNN steps (200)."""
    from .gan_report import run_gan_report

    run_gan_report(real_train, real_test, synthetic, out, title=title, size=size, slices=slices, intensity_range=intensity_range,
               epochs=epochs, max_images=max_images, seed=seed, device=device, repeats=repeats,
               min_iterations=min_iterations)


def study_command(*argv: str) -> None:
    """Run a study a bundle declares (``configs/study.yaml`` or ``configs/study_<name>.yaml``); see
    ``python -m monai_ext study --help`` and ``monai_ext.cli.study``."""
    from .study import study_main

    code = study_main([str(a) for a in argv])
    if code:
        sys.exit(code)


COMMANDS = {
    "list": list_bundles_command,
    "synth": synth_command,
    "demo": demo_command,
    "infer": infer_command,
    "verify": verify_command,
    "package": package_command,
    "label-app": label_app_command,
    "study": study_command,
    "consistency": consistency_command,
    "gan-report": gan_report_command,
}


def main() -> None:
    """``python -m monai_ext COMMAND``: ``study`` parses its own options (repeatable ``--set``), the rest go
    through fire."""
    args = sys.argv[1:]
    if args[:1] == ["study"]:  # imports the components itself when it runs configs (--list, --help stay fast)
        study_command(*args[1:])
        return
    if args and args[0] != "list" and not {"--help", "-h"} & set(args):
        import_components()  # what the commands' bundle configs name by short _target_ (see monai_ext/__init__.py)
    fire.Fire(COMMANDS, name="python -m monai_ext")
