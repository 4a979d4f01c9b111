"""Dataset list of a BraTS brain-tumour data set on disk: four MR contrasts (FLAIR, T1, T1c, T2) per case and the
tumour label, in the layouts the challenge has used.

- BraTS 2015 (Menze et al. 2015, the data of Kayalibay et al. 2017): ``HGG/`` and ``LGG/`` folders of cases, each
  case a folder of ``VSD.Brain.XX.O.MR_<Flair|T1|T1c|T2>.<id>/`` and ``VSD.Brain_<n>more.XX.O.OT.<id>/``
  sub-folders holding one ``.mha`` each (read through ITK); labels 1 necrosis, 2 edema, 3 non-enhancing core,
  4 enhancing core.
- BraTS 2017-2021: a folder per case with ``<case>_flair``, ``_t1``, ``_t1ce``, ``_t2`` and ``_seg`` NIfTI files;
  labels 1 necrotic / non-enhancing core, 2 edema, 4 enhancing.
- BraTS 2023 glioma: a folder per case with ``<case>-t2f`` (FLAIR), ``-t1n``, ``-t1c``, ``-t2w`` and ``-seg``;
  labels 1, 2 as above and 3 enhancing.

Every layout is mapped to one set of model classes, :py:data:`BRATS_CLASSES`: 0 background, 1 necrotic and
non-enhancing core, 2 edema, 3 enhancing tumour (``label_mapping`` of the result, for
:py:class:`monai_ext.transforms.MapLabelsd`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import PathLike, folder_listing

__all__ = ["BRATS_CLASSES", "BRATS_LABEL_MAPPINGS", "BRATS_MODALITIES", "brats_datalist", "check_modalities"]

#: the contrasts, in the order the image channels are stacked
BRATS_MODALITIES: tuple[str, ...] = ("flair", "t1", "t1c", "t2")

#: model classes of every BraTS layout
BRATS_CLASSES: dict[int, str] = {0: "background", 1: "necrotic and non-enhancing core", 2: "edema", 3: "enhancing"}

#: source label value -> model class, per layout (values not listed are an error when labels are checked)
BRATS_LABEL_MAPPINGS: dict[str, dict[int, int]] = {
    "brats2015": {0: 0, 1: 1, 2: 2, 3: 1, 4: 3},
    "brats2017": {0: 0, 1: 1, 2: 2, 4: 3},
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 3},
}

_NIFTI = r"\.nii(\.gz)?"
_SUFFIXES: dict[str, dict[str, str]] = {
    "brats2017": {"flair": "_flair", "t1": "_t1", "t1c": "_t1ce", "t2": "_t2", "label": "_seg"},
    "brats2023": {"flair": "-t2f", "t1": "-t1n", "t1c": "-t1c", "t2": "-t2w", "label": "-seg"},
}
#: BraTS 2015 sub-folder names: VSD.Brain.XX.O.MR_T1c.54513, VSD.Brain_3more.XX.O.OT.54517
_VSD = {"flair": r"MR_Flair", "t1": r"MR_T1", "t1c": r"MR_T1c", "t2": r"MR_T2", "label": r"OT"}


def check_modalities(modalities: Sequence[str] | str) -> tuple[str, ...]:
    """``modalities`` (names of :py:data:`BRATS_MODALITIES`) in the canonical channel order; a ``ValueError`` for
    an empty selection, unknown names or repeats."""
    mods = (modalities,) if isinstance(modalities, str) else tuple(modalities)
    unknown = [m for m in mods if m not in BRATS_MODALITIES]
    if not mods or unknown or len(set(mods)) != len(mods):
        raise ValueError(
            f"modalities {list(mods)}: expected a non-empty subset of {list(BRATS_MODALITIES)} without repeats"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    return tuple(m for m in BRATS_MODALITIES if m in mods)  # channel order is always the canonical one


def _nifti_case(folder: Path) -> tuple[str, dict[str, Path]] | None:
    """The layout and the files of a BraTS 2017-2023 case folder, or ``None`` when it holds none."""
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    for layout, suffixes in _SUFFIXES.items():
        found = {}
        for key, suffix in suffixes.items():
            pattern = re.compile(re.escape(folder.name) + re.escape(suffix) + _NIFTI + "$")
            hits = [p for n, p in files.items() if pattern.match(n)]
            if hits:
                found[key] = hits[0]
        if len(found) >= 2:  # at least two of its files: this folder uses this layout
            return layout, found
    return None


def _vsd_case(folder: Path) -> dict[str, Path] | None:
    """The ``.mha`` files of a BraTS 2015 case folder, or ``None`` when it holds none."""
    found = {}
    for sub in folder.iterdir():
        if not sub.is_dir():
            continue
        for key, tag in _VSD.items():
            if re.search(r"\." + tag + r"\.\d+$", sub.name):
                mha = sorted(sub.glob("*.mha"))
                if mha:
                    found[key] = mha[0]
    return found or None


def _case_folders(root: Path) -> list[Path]:
    """Case folders below ``root``: its sub-folders, and those of ``HGG/``, ``LGG/`` or training/validation
    folders one level down (BraTS archives nest them)."""
    if _nifti_case(root) is not None or _vsd_case(root) is not None:
        return [root]  # dataset_dir is one case
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(s.is_file() for s in d.iterdir()) or any(re.search(r"\.(MR_|OT\.)", s.name) for s in d.iterdir()):
            out.append(d)
        else:
            out.extend(sorted(s for s in d.iterdir() if s.is_dir() and not s.name.startswith(".")))
    return out


def brats_datalist(
    dataset_dir: PathLike, modalities: Sequence[str] | str = BRATS_MODALITIES, require_label: bool = True
) -> dict[str, Any]:
    """The BraTS cases under ``dataset_dir`` as MONAI items (absolute paths).

    Args:
        dataset_dir: the data set's folder (case folders directly below it, or one level down, e.g. ``HGG/``), or
            one case folder.
        modalities: the contrasts to load, any subset of :py:data:`BRATS_MODALITIES`; the channels are stacked in
            that canonical order (FLAIR, T1, T1c, T2) whatever order is given.
        require_label: a case without a label is an error (training, evaluation); ``False`` keeps such cases
            without a ``"label"`` key (inference on a validation set).

    Returns:
        ``{"cases": [{"case", "image": [path per contrast], "label"}], "layout": "brats2015" | "brats2017" |
        "brats2023", "modalities": [...], "label_mapping": {source value: class}}``.

    Raises:
        FileNotFoundError: the folder is missing or holds no BraTS case.
        ValueError: unknown modalities; a case misses a selected contrast or its label; cases of different layouts.
    """
    root = Path(dataset_dir)
    mods = check_modalities(modalities)
    if not root.is_dir():
        raise FileNotFoundError(f"BraTS dataset_dir {root}: no such folder.")
    cases, layouts, problems = [], set(), []
    for folder in _case_folders(root):
        nifti = _nifti_case(folder)
        if nifti is not None:
            layout, files = nifti
        else:
            vsd = _vsd_case(folder)
            if vsd is None:
                continue
            layout, files = "brats2015", vsd
        layouts.add(layout)
        missing = [m for m in mods if m not in files] + (["label"] if require_label and "label" not in files else [])
        if missing:
            problems.append(f"{folder}: no {', '.join(missing)} (found: {folder_listing(folder)})")
            continue
        item: dict[str, Any] = {"case": folder.name, "image": [str(files[m].resolve()) for m in mods]}
        if "label" in files:
            item["label"] = str(files["label"].resolve())
        cases.append(item)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(
            f"BraTS case(s) without a selected contrast or label (modalities {list(mods)}): " + "; ".join(problems[:5])
            + more
        )
    if not cases:
        raise FileNotFoundError(
            f"{root}: no BraTS case found (expected case folders with <case>_flair/_t1/_t1ce/_t2/_seg.nii.gz, "
            f"<case>-t2f/-t1n/-t1c/-t2w/-seg.nii.gz, or BraTS 2015 VSD.Brain.*.MR_*/ .mha folders). "
            f"Found: {folder_listing(root)}"
        )
    if len(layouts) > 1:
        raise ValueError(f"{root}: cases of different BraTS layouts ({', '.join(sorted(layouts))}); their label "
                         "values differ, so keep one layout per dataset_dir.")
    (layout,) = layouts
    return {"cases": cases, "layout": layout, "modalities": list(mods),
            "label_mapping": dict(BRATS_LABEL_MAPPINGS[layout])}
