"""The frames of the AdaptOR bundle: training (simulator frames, optionally CycleGAN-translated, and the intraop
training surgeries), validation and test (intraop surgeries), with the per-sample weight of the joint training.

When ``dataset_dir`` is missing or empty, the embedded default is generated there first: synthetic two-domain
valve frames (:func:`monai_ext.phantoms.synthesize_valve_dataset`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...datalists.adaptor_frames import adaptor_frame_datalist
from ...io import PathLike, ensure_dataset
from ...phantoms.valve_endoscopy import synthesize_valve_dataset

__all__ = ["SIM_FRAME_CHOICES", "adaptor_datalist", "domain_balanced_weights", "translated_sim_items"]

#: what the training set takes from the simulator: nothing, the frames as they are, or their CycleGAN translation
SIM_FRAME_CHOICES = ("none", "raw", "translated")


def adaptor_datalist(
    dataset_dir: PathLike,
    validation_surgeries: Sequence[str] = ("op03",),
    test_surgeries: Sequence[str] = ("op04", "op05"),
    sim_frames: str = "raw",
    lambda_sim: float = 1.0,
    translated_dir: PathLike | None = None,
    intraop_train_frames: int = 0,
    synth_sim_surgeries: int = 8,
    synth_intraop_surgeries: int = 5,
    synth_frames: int = 30,
    synth_seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """``{"training", "validation", "testing", "sim", "intraop_training"}`` lists of ``{"image", "points", "domain",
    "surgery", "frame", "weight", "target_domain"}`` items with labels (``target_domain``: 1.0 for intraop frames,
    0.0 for simulator or translated ones).

    Intraop frames of ``validation_surgeries`` and ``test_surgeries`` are held out; the other labelled intraop frames
    train (the first ``intraop_train_frames`` per surgery when > 0: the scarce target domain), weight 1. Simulator
    frames train with weight ``lambda_sim`` (``sim_frames="raw"``), or their CycleGAN translations under
    ``translated_dir`` do (``"translated"``; same labels), or none do (``"none"``, also when ``lambda_sim`` is 0).
    ``sim`` lists every labelled simulator frame (the CycleGAN's source domain), ``intraop_training`` the intraop
    training frames (its target domain). Raises ``ValueError`` for an unknown choice, a surgery named twice or
    missing, or an empty split.
    """
    if sim_frames not in SIM_FRAME_CHOICES:
        raise ValueError(f"sim_frames must be one of {SIM_FRAME_CHOICES}, got {sim_frames!r}.")
    if float(lambda_sim) < 0:
        raise ValueError(f"lambda_sim must be >= 0, got {lambda_sim!r}.")
    root = ensure_dataset(
        dataset_dir, lambda d: synthesize_valve_dataset(d, synth_sim_surgeries, synth_intraop_surgeries, synth_frames,
                                                        seed=synth_seed),
        f"synthetic valve frames ({synth_sim_surgeries} simulator and {synth_intraop_surgeries} intraop surgeries of "
        f"{synth_frames} frames, seed {synth_seed})",
    )
    items = [i for i in adaptor_frame_datalist(root) if i["points"] is not None]
    held = {"validation": list(validation_surgeries), "testing": list(test_surgeries)}
    if set(held["validation"]) & set(held["testing"]):
        raise ValueError(f"surgeries {sorted(set(held['validation']) & set(held['testing']))} are in both the "
                         "validation and the test split.")
    intraop = [i for i in items if i["domain"] == "intraop"]
    known = {i["surgery"] for i in intraop}
    for part, names in held.items():
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"{part} surgeries {missing} have no labelled intraop frames in {root}; found "
                             f"{sorted(known)}.")
    out: dict[str, list[dict[str, Any]]] = {
        part: [dict(i, weight=1.0, target_domain=1.0) for i in intraop if i["surgery"] in names]
        for part, names in held.items()}
    train_intraop = [i for i in intraop if i["surgery"] not in held["validation"] + held["testing"]]
    if int(intraop_train_frames) > 0:
        train_intraop = [i for s in sorted({i["surgery"] for i in train_intraop})
                         for i in [j for j in train_intraop if j["surgery"] == s][: int(intraop_train_frames)]]
    sim = [dict(i, weight=float(lambda_sim), target_domain=0.0) for i in items if i["domain"] == "sim"]
    out["sim"], out["intraop_training"] = sim, [dict(i, weight=1.0, target_domain=1.0) for i in train_intraop]
    source: list[dict[str, Any]] = []
    if float(lambda_sim) > 0 and sim_frames == "raw":
        source = sim
    elif float(lambda_sim) > 0 and sim_frames == "translated":
        if translated_dir is None:
            raise ValueError("sim_frames='translated' needs translated_dir (the folder train_cyclegan.yaml writes).")
        source = translated_sim_items(sim, translated_dir)
    out["training"] = out["intraop_training"] + source
    for part in ("training", "validation", "testing"):
        if not out[part]:
            raise ValueError(f"the {part} split is empty (dataset_dir {root}).")
    return out


def translated_sim_items(sim: list[dict[str, Any]], translated_dir: PathLike) -> list[dict[str, Any]]:
    """The simulator items with their images replaced by the CycleGAN translations
    ``translated_dir/<surgery>/<frame>.png``; raises ``FileNotFoundError`` naming the first missing one."""
    folder = Path(translated_dir).expanduser()
    out = []
    for item in sim:
        path = folder / item["surgery"] / f"{item['frame']}.png"
        if not path.is_file():
            raise FileNotFoundError(f"translated frame {path} not found: run train_cyclegan.yaml (it writes every "
                                    f"simulator frame's translation to {folder}) or set sim_frames: raw.")
        out.append(dict(item, image=str(path), domain="translated"))
    return out


def domain_balanced_weights(items: list[dict[str, Any]]) -> list[float]:
    """Sampling weights that draw each domain's frames (intraop / simulator or translated, by ``target_domain``)
    equally often, whatever the domains' sizes (for ``torch.utils.data.WeightedRandomSampler``)."""
    counts: dict[float, int] = {}
    for item in items:
        counts[item["target_domain"]] = counts.get(item["target_domain"], 0) + 1
    return [1.0 / counts[item["target_domain"]] for item in items]
