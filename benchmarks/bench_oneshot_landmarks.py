"""Seconds per volume of the one-shot landmark pipeline (bundles/oneshot_cochlea_landmarks): each method of
:class:`monai_ext.apps.oneshot_cochlea_landmarks.OneShotLandmarkLocator` on synthetic temporal-bone CT volumes, against
the plain-MONAI baseline of running the same slice network over the whole volume along X, Y and Z with MONAI's
``SliceInferer`` (what applying a 2D network to a volume costs without the method's cube), in the same run.

Run: ``python benchmarks/bench_oneshot_landmarks.py [--volumes 3] [--device cuda] [--checkpoint PATH]``. Without a
checkpoint the bundle's committed ``models/model.pt`` is used if present (else random weights: the localisation then
wanders, so only the timing means anything). The first demons call loads ITK's registration module (~10 s); it is
warmed up before timing. Prints seconds per volume per method and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.inferers import SliceInferer

from monai_ext.apps.oneshot_cochlea_landmarks import OneShotLandmarkLocator, ShallowSliceUNet, oneshot_datalist
from monai_ext.bundle_helpers import load_weights
from monai_ext.io import read_landmarks
from monai_ext.phantoms import synthesize_temporal_bone_dataset

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "oneshot_cochlea_landmarks"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint", default=str(BUNDLE / "models" / "model.pt"))
    args = ap.parse_args()
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.yaml"))
    loading = parser.get_parsed_content("volume_loading")
    net = ShallowSliceUNet(features=parser.get_parsed_content("features"))
    if Path(args.checkpoint).is_file():
        net = load_weights(net, args.checkpoint)
    net = net.to(args.device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        synthesize_temporal_bone_dataset(Path(tmp) / "data", test=args.volumes, progress=False)
        data = oneshot_datalist(Path(tmp) / "data", generate=False)
        ref = loading({"image": data["reference"]["image"], "label": data["reference"]["mask"]})
        targets = [loading({"image": t["image"]})["image"] for t in data["test"]]
        landmarks = read_landmarks(data["reference"]["landmarks"])
        inferer = SliceInferer(roi_size=(96, 96), sw_batch_size=48, spatial_dim=0)
        times = {}
        with torch.no_grad():
            t0 = time.perf_counter()
            for vol in targets:
                for axis in range(3):
                    inferer.spatial_dim = axis
                    torch.sigmoid(inferer(vol[None].to(args.device), net))
            _sync()
            times["MONAI SliceInferer, whole volume, 3 axes"] = (time.perf_counter() - t0) / len(targets)
        for method in ("translation", "rigid", "naive", "auto"):
            locator = OneShotLandmarkLocator(net, ref["image"], ref["label"], landmarks, method=method)
            if method == "naive":
                locator(targets[0])  # loads ITK's registration module
            t0 = time.perf_counter()
            for vol in targets:
                locator(vol)
            _sync()
            times[f"one-shot pipeline, {method}"] = (time.perf_counter() - t0) / len(targets)
    base = times["MONAI SliceInferer, whole volume, 3 axes"]
    print(f"{len(targets)} volumes of 96^3 voxels, device {args.device}, {torch.get_num_threads()} threads")
    for name, sec in times.items():
        print(f"{name:45s} {sec:7.2f} s per volume   ratio {sec / base:5.2f}")


if __name__ == "__main__":
    main()
