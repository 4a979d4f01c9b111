"""``python -m monai_ext consistency SCAN``: label-free consistency checks of the COVID-19 lung model on a real CT."""

from __future__ import annotations

from pathlib import Path

from ..apps.covid19_ct_fewshot_seg.consistency import DEFAULT_VARIANTS, consistency_check
from .catalog import resolve_bundle
from .demo import save_overlay_png

__all__ = ["consistency"]


def consistency(
    scan: str,
    out: str | None = None,
    bundle: str = "covid19_ct_fewshot_seg",
    device: str | None = None,
    variants: str | None = None,
    min_dice: float = 0.97,
    ckpt: str | None = None,
) -> dict:
    """Segment SCAN (NIfTI file or DICOM series folder, HU) and transformed copies of it; print the Dice between
    the predictions on their common region, one line per copy. With ``out``, keep the copies, predictions,
    ``consistency.json`` and ``crop_lateral.png`` (the side-cropped copy with its labels) there.
    ``variants``: comma-separated names (default: all of them). ``ckpt``: other weights than the bundle's
    ``models/model.pt``. ``device``: e.g. ``cpu`` or ``cuda:0`` (default: the bundle's, the first GPU when there is
    one)."""
    names = tuple(v.strip() for v in variants.split(",")) if variants else DEFAULT_VARIANTS
    report = consistency_check(scan, resolve_bundle(bundle), out_dir=out, variants=names, device=device,
                               min_dice=min_dice, ckpt=ckpt)
    if out and "crop_lateral" in names:
        o = Path(out)
        save_overlay_png(o / "predictions" / "crop_lateral_seg.nii.gz", o / "inputs" / "crop_lateral.nii.gz",
                         o / "crop_lateral.png", n_slices=4)
    ml = report["original_ml"]
    print(f"{scan}: original prediction: left lung {ml['left_lung']:.1f} ml, right lung {ml['right_lung']:.1f} ml, "
          f"infection {ml['infection']:.1f} ml; {'all copies agree' if report['passed'] else 'BELOW ' + str(min_dice)}"
          f" ({report['seconds']:.0f} s)")
    return report
