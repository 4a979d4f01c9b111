"""FBPAug's evaluation (Saparov et al., DGM4MICCAI/DALI 2021, Sect. 3): do a model's predictions on the same scan
agree when it is reconstructed with a smooth and with a sharp kernel?

Each test case (a CT in HU) is re-reconstructed with two fixed reference kernels that lie outside the families FBPAug
draws from in training (otherwise the test would only check the augmentation against itself), by the literal
filtered back-projection of :class:`~monai_ext.transforms.FBPKernel`:

- smooth reference: k_{a,b} with a = -1, b = 2 (the smooth family has b <= 1);
- sharp reference: a = 8, b = 2 (the sharpen family has a >= 10). On the liver phantoms (3 mm pixels) it raises the
  noise in the liver from about 22 to 89 HU with the median unchanged, about what a sharp clinical kernel does;
  the sharpen family's a = 10-40 gives 150-400 HU there, and a = 60 (tried first) 590 HU, an image no model reads.

The model segments both copies with the bundle's ``inference.yaml`` preprocessing and slice inferer, and the Dice
between the two predictions (liver = labels 1 + 2, and tumour = label 2) is the agreement; the paper reports 0.54
without and 0.92 with FBPAug (its own task and data).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ...bundle_helpers import bundle_config_parser, load_weights, locate_bundle_root
from ...io import atomic_write
from ...metrics.mask_overlap import mask_dice
from ...transforms.fbp_kernel import FBPKernel
from ...transforms.input_checks import LoadScan
from .datalist import liver_tumor_datalist

__all__ = ["REFERENCE_KERNELS", "kernel_agreement"]

#: the fixed (a, b) of the two reference reconstructions, outside FBPAug's training draws
REFERENCE_KERNELS: dict[str, tuple[float, float]] = {"smooth": (-1.0, 2.0), "sharp": (8.0, 2.0)}



def kernel_agreement(
    ckpt: str | Path,
    dataset_dir: str | Path,
    out: str | Path,
    num_val: int = 4,
    num_test: int = 8,
    bundle_dir: str | Path | None = None,
    overrides: dict | None = None,
    device: str = "cpu",
) -> dict:
    """Agreement of the predictions of the weights ``ckpt`` on the smooth- and sharp-kernel copies of the test cases of
    ``dataset_dir`` (the bundle's split with ``num_val`` / ``num_test``).

    Writes ``out`` (JSON) and returns ``{"cases": [{"image", "dice_liver", "dice_tumour"}], "agreement_liver",
    "agreement_tumour", "kernels"}`` (means over the cases; tumour over the cases where either prediction has tumour).
    ``overrides``: ``inference.yaml`` keys (e.g. ``context_slices`` of a 2.5D model).
    """
    bundle = Path(bundle_dir) if bundle_dir is not None else Path(locate_bundle_root("liver_tumor_ct_seg"))
    cfg = bundle_config_parser(bundle / "configs" / "inference.yaml", overrides, device=device)
    network = load_weights(cfg.get_parsed_content("network"), ckpt).eval()
    preprocessing = cfg.get_parsed_content("preprocessing")
    inferer = cfg.get_parsed_content("inferer")
    kernels = {name: FBPKernel(a, b, allow_any=True) for name, (a, b) in REFERENCE_KERNELS.items()}
    cases = []
    with tempfile.TemporaryDirectory(prefix="monai_ext_kernel_agreement_") as tmp:
        for item in liver_tumor_datalist(dataset_dir, num_val=num_val, num_test=num_test)["testing"]:
            img = LoadScan(image_only=True)(item["image"])
            hu = np.asarray(img, dtype=np.float32)
            preds = {}
            for name, kernel in kernels.items():
                path = Path(tmp) / f"{name}.nii.gz"
                nib.save(nib.Nifti1Image(kernel(hu[None])[0], np.asarray(img.affine, dtype=np.float64)), path)
                x = preprocessing({"image": str(path)})["image"].unsqueeze(0).to(device)
                with torch.no_grad():
                    preds[name] = inferer(x, network).argmax(1)[0].cpu().numpy()
            s, h = preds["smooth"], preds["sharp"]
            cases.append({"image": str(item["image"]), "dice_liver": mask_dice(s > 0, h > 0),
                          "dice_tumour": mask_dice(s == 2, h == 2)})
    tumour = [c["dice_tumour"] for c in cases if np.isfinite(c["dice_tumour"])]
    report = {"cases": cases, "kernels": {k: list(v) for k, v in REFERENCE_KERNELS.items()},
              "agreement_liver": float(np.nanmean([c["dice_liver"] for c in cases])),
              "agreement_tumour": float(np.mean(tumour)) if tumour else float("nan")}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out), lambda p: p.write_text(json.dumps(report, indent=1)))
    return report
