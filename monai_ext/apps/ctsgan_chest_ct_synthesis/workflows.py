"""CT-SGAN generation, montage and evaluation steps called by the bundle's inference and evaluate configs.

- :func:`generate_ctsgan_volumes`: N volumes of any depth (the BiLSTM runs over any number of slices) from
  a trained :class:`~monai_ext.apps.ctsgan_chest_ct_synthesis.CTSGANGenerator`, optionally resized (e.g. to the paper's 224^3),
  written as int16 HU NIfTI files (temporary file, then rename).
- :func:`ctsgan_montage`: PNG of axial / coronal / sagittal centre slices of rows of volumes.
- :func:`evaluate_ctsgan`: slice-wise FID and the Inception-score analogue (see
  :mod:`monai_ext.metrics.slice_fid`) of generated vs held-out real volumes, with the real-vs-real reference
  and an untrained-generator baseline; writes ``metrics.json``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from ...io import atomic_write
from ...metrics.lung_parenchyma import lung_texture
from ...metrics.slice_consistency import (
    adjacent_slice_mad,
    bright_columns,
    highpass_z_correlation,
    seam_ratio,
    slice_mean_std,
    z_spectrum_log_distance,
)
from ...metrics.slice_fid import (
    slice_level_classifier,
    slice_level_inception_score,
    slicewise_fid,
    train_slice_level_classifier,
)
from ...transforms.hu_window import unit_to_hu
from .data import VOLUME_HU_WINDOW
from .networks import CTSGANGenerator, slice_overlap_disagreement, slices_to_volume

__all__ = ["generate_ctsgan_volumes", "sample_ctsgan_volumes", "ctsgan_montage", "evaluate_ctsgan"]


def _generated_batches(generator: CTSGANGenerator, num_volumes: int, num_slices: int, seed: int, batch_size: int):
    """3-channel slices ``(b, L, 3, H, W)`` of ``num_volumes`` volumes, batch by batch, in eval mode and without
    gradients; the noise is reproducible from ``seed``."""
    if int(num_volumes) < 1:
        raise ValueError(f"num_volumes must be >= 1, got {num_volumes}.")
    g = torch.Generator().manual_seed(int(seed))
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    try:
        left = int(num_volumes)
        while left > 0:
            b = min(left, int(batch_size))
            with torch.no_grad():
                sl = generator.slices(generator.sample_noise(b, int(num_slices), generator=g, device=device))
            yield sl
            left -= b
    finally:
        generator.train(was_training)


def sample_ctsgan_volumes(
    generator: CTSGANGenerator, num_volumes: int, num_slices: int, seed: int = 0, batch_size: int = 4
) -> torch.Tensor:
    """``num_volumes`` volumes ``(N, 1, H, W, num_slices)`` in ``[-1, 1]`` (CPU), reproducible from ``seed``."""
    return torch.cat([slices_to_volume(sl).cpu() for sl in
                      _generated_batches(generator, num_volumes, num_slices, seed, batch_size)])


def _sample_with_overlap(
    generator: CTSGANGenerator, num_volumes: int, num_slices: int, seed: int = 0, batch_size: int = 4
) -> tuple[torch.Tensor, float]:
    """The volumes of :func:`sample_ctsgan_volumes` and, from the same generated slices, their mean
    :func:`~monai_ext.apps.ctsgan_chest_ct_synthesis.slice_overlap_disagreement` (``[-1, 1]`` intensity units)."""
    vols, total = [], 0.0
    for sl in _generated_batches(generator, num_volumes, num_slices, seed, batch_size):
        vols.append(slices_to_volume(sl).cpu())
        total += float(slice_overlap_disagreement(sl)) * sl.shape[0]
    return torch.cat(vols), total / int(num_volumes)


def generate_ctsgan_volumes(
    generator: CTSGANGenerator,
    output_dir: str | os.PathLike,
    num_volumes: int = 4,
    num_slices: int = 48,
    pixdim: Sequence[float] = (6.0, 6.0, 6.0),
    output_size: Sequence[int] | None = None,
    hu_range: Sequence[float] = VOLUME_HU_WINDOW,
    seed: int = 0,
    prefix: str = "ctsgan",
) -> list[str]:
    """Generate volumes and write ``<prefix>_<seed>_<i>.nii.gz`` (int16 HU, RAS affine, centred at the origin).

    Args:
        generator: trained generator.
        output_dir: created if missing.
        num_volumes: how many.
        num_slices: depth of each generated volume (before resizing).
        pixdim: voxel size (mm) of the generated grid (that of the training volumes).
        output_size: resize (trilinear) to this ``(H, W, D)``, e.g. ``(224, 224, 224)``; the voxel size is
            scaled so the physical extent stays the same. ``None`` keeps the generated size.
        hu_range: the training HU window (``[-1, 1]`` -> HU).
        seed: noise seed; the same seed and weights give the same volumes.

    Returns:
        the written paths.
    """
    vols = sample_ctsgan_volumes(generator, num_volumes, num_slices, seed)
    spacing = np.asarray([float(p) for p in pixdim], dtype=np.float64)
    if output_size is not None:
        size = tuple(int(s) for s in output_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"output_size must be three positive integers, got {output_size}.")
        spacing = spacing * np.asarray(vols.shape[2:], dtype=np.float64) / np.asarray(size, dtype=np.float64)
        vols = F.interpolate(vols, size=size, mode="trilinear", align_corners=False)
    hu = unit_to_hu(vols, hu_range).round().to(torch.int16).numpy()
    shape = np.asarray(hu.shape[2:], dtype=np.float64)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -spacing * (shape - 1) / 2.0
    out_dir = Path(output_dir).expanduser()
    paths = []
    for i in range(hu.shape[0]):
        img = nib.Nifti1Image(hu[i, 0], affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
        path = out_dir / f"{prefix}_{int(seed)}_{i:04d}.nii.gz"
        atomic_write(path, lambda tmp, img=img: nib.save(img, tmp))
        paths.append(str(path))
    return paths


def _views(vol: np.ndarray, pixdim: Sequence[float]) -> list[np.ndarray]:
    """Centre axial, coronal, sagittal slices of an RAS volume ``(H, W, D)``, radiological display, isotropic."""
    h, w, d = vol.shape
    # rows: anterior/superior at the top; columns: patient right on the image left (RAS: flip both axes)
    ax = vol[::-1, ::-1, d // 2].T
    co = vol[::-1, w // 2, ::-1].T
    sa = vol[h // 2, ::-1, ::-1].T
    px, py, pz = (float(p) for p in pixdim)
    out = []
    for img, (row_mm, col_mm) in ((ax, (py, px)), (co, (pz, px)), (sa, (pz, py))):
        t = torch.as_tensor(np.ascontiguousarray(img), dtype=torch.float32)[None, None]
        scale = min(row_mm, col_mm)
        size = (max(1, round(img.shape[0] * row_mm / scale)), max(1, round(img.shape[1] * col_mm / scale)))
        out.append(F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy())
    return out


def ctsgan_montage(
    rows: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    pixdim: Sequence[float] = (6.0, 6.0, 6.0),
    per_row: int = 3,
    zoom: int = 2,
) -> str:
    """Save a PNG: one block per entry of ``rows`` (label -> volumes ``(N, 1, H, W, D)`` in ``[-1, 1]``), showing
    the first ``per_row`` volumes as axial | coronal | sagittal centre slices side by side."""
    from PIL import Image, ImageDraw

    tiles: list[list[np.ndarray]] = []
    labels = []
    for label, vols in rows.items():
        v = torch.as_tensor(vols).float()
        if v.ndim != 5 or v.shape[1] != 1:
            raise ValueError(f"montage row {label!r}: volumes must be (N, 1, H, W, D), got {tuple(v.shape)}.")
        row = []
        for i in range(min(int(per_row), v.shape[0])):
            row += _views(v[i, 0].numpy(), pixdim)
        tiles.append(row)
        labels.append(str(label))
    gap, text_h = 4, 14
    widths = [sum(t.shape[1] for t in row) + gap * (len(row) - 1) for row in tiles]
    heights = [max(t.shape[0] for t in row) for row in tiles]
    canvas = np.zeros((sum(heights) + len(tiles) * (text_h + gap), max(widths)), dtype=np.float32) - 1.0
    y = 0
    for row, hgt in zip(tiles, heights):
        y += text_h
        x = 0
        for t in row:
            canvas[y : y + t.shape[0], x : x + t.shape[1]] = t
            x += t.shape[1] + gap
        y += hgt + gap
    img8 = np.clip((canvas + 1.0) * 127.5, 0, 255).astype(np.uint8)
    im = Image.fromarray(img8).resize((img8.shape[1] * zoom, img8.shape[0] * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(im)
    y = 0
    for label, hgt in zip(labels, heights):
        draw.text((4, y * zoom + 2), label, fill=255)
        y += text_h + hgt + gap
    out = Path(path).expanduser()
    atomic_write(out, lambda tmp: im.save(tmp, format="PNG"))
    return str(out)


def _slice_consistency(vols: torch.Tensor, reference: torch.Tensor, bone: torch.Tensor | None = None) -> dict:
    segment = min(16, int(vols.shape[-1]))

    def zdist(pool: int, columns: torch.Tensor | None = None) -> float:
        # a spectrum along z needs at least 4 slices, and pool x pool blocks an image at least that wide
        if segment < 4 or min(vols.shape[2:4]) < pool:
            return float("nan")
        try:
            return float(z_spectrum_log_distance(vols, reference, segment=segment, pool=pool, columns=columns))
        except ValueError:
            if pool == 1 and columns is None:
                raise
            return float("nan")  # no block (or no bone column) lies wholly inside the body

    return {"adjacent_slice_mad": adjacent_slice_mad(vols), "slice_mean_std": slice_mean_std(vols),
            "highpass_z_correlation": highpass_z_correlation(vols), "seam_ratio": seam_ratio(vols),
            "z_spectrum_distance": zdist(1), "z_spectrum_distance_blocks4": zdist(4),
            "z_spectrum_distance_bone": zdist(1, bright_columns(reference) if bone is None else bone)}


def evaluate_ctsgan(
    generator: CTSGANGenerator,
    train_volumes: torch.Tensor,
    test_volumes: torch.Tensor,
    output_dir: str | os.PathLike,
    feature_net_path: str | os.PathLike | None = None,
    num_generated: int = 8,
    num_pairs: int = 20,
    scans_per_group: int = 1,
    num_bins: int = 8,
    feature_epochs: int = 10,
    seed: int = 0,
    pixdim: Sequence[float] = (6.0, 6.0, 6.0),
    montage: bool = True,
    hu_range: Sequence[float] = VOLUME_HU_WINDOW,
) -> dict:
    """Slice-wise FID / IS of ``generator`` against held-out real volumes; writes ``metrics.json`` (and a montage).

    The feature network (:func:`~monai_ext.metrics.train_slice_level_classifier`) is trained on
    ``train_volumes`` (never on the test volumes) unless ``feature_net_path`` holds one; a newly trained one is
    saved there. Reported, each against ``test_volumes``:

    - ``real``: as many training volumes as generated ones (the real-vs-real reference; the paper's
      "two splits of the real data");
    - ``ctsgan``: ``num_generated`` volumes from ``generator``;
    - ``untrained``: the same architecture with random weights (a floor).

    Each also gets the slice-consistency measures of :mod:`monai_ext.metrics.slice_consistency`, among them
    ``z_spectrum_distance``: the log distance of its power spectrum along z (16-slice segments) from that of
    ``test_volumes``, and ``z_spectrum_distance_blocks4``: the same for the columns of 4 x 4 in-plane block
    means (variation along z that is coherent in-plane, as a vertebra's is), nan where no block lies in the body,
    and ``z_spectrum_distance_bone``: the same for the voxel columns where ``train_volumes`` have their brightest
    voxels (:func:`~monai_ext.metrics.slice_consistency.bright_columns`: spine and sternum), nan where none.
    Each also gets :func:`~monai_ext.metrics.lung_parenchyma.lung_texture` (volumes in the HU window ``hu_range``):
    ``lung_fraction``, ``lung_hu_p90`` and ``lung_texture_rms_hu``.
    """

    t0 = time.perf_counter()
    if train_volumes.shape[2:] != test_volumes.shape[2:]:
        raise ValueError(f"train {tuple(train_volumes.shape)} and test {tuple(test_volumes.shape)} volumes differ in size.")
    size, depth = int(test_volumes.shape[2]), int(test_volumes.shape[-1])
    if generator.image_size != size:
        raise ValueError(f"the generator makes {generator.image_size}^2 slices, the real volumes are {size}^2.")
    net = None
    fpath = Path(feature_net_path).expanduser() if feature_net_path else None
    if fpath is not None and fpath.is_file():
        state = torch.load(str(fpath), map_location="cpu", weights_only=True)
        net = slice_level_classifier(num_bins=int(state["fc.weight"].shape[0]))
        net.load_state_dict(state)
        net.eval()
        net.train_accuracy = float("nan")
    if net is None:
        net = train_slice_level_classifier(train_volumes, num_bins=num_bins, epochs=feature_epochs, seed=seed)
        if fpath is not None:
            atomic_write(fpath, lambda tmp: torch.save(net.state_dict(), tmp))
    n = int(num_generated)
    k = min(int(scans_per_group), test_volumes.shape[0])
    fake, fake_overlap = _sample_with_overlap(generator, n, depth, seed=seed + 1)
    untrained = copy.deepcopy(generator)
    torch.manual_seed(int(seed) + 2)
    for m in untrained.modules():
        if hasattr(m, "reset_parameters") and m is not untrained:
            m.reset_parameters()
    rand, rand_overlap = _sample_with_overlap(untrained, n, depth, seed=seed + 1)
    g = torch.Generator().manual_seed(int(seed))
    real = train_volumes[torch.randperm(train_volumes.shape[0], generator=g)[: min(n, train_volumes.shape[0])]]
    bone = bright_columns(train_volumes)
    results: dict = {"feature_net_train_accuracy": getattr(net, "train_accuracy", float("nan"))}
    # real volumes hold one value per slice: their 3-channel slices agree by construction
    overlap = {"real": 0.0, "ctsgan": fake_overlap, "untrained": rand_overlap}
    for name, vols in (("real", real), ("ctsgan", fake), ("untrained", rand)):
        r = slicewise_fid(net, test_volumes, vols, num_pairs=num_pairs, scans_per_group=k, seed=seed)
        r["is_mean"], r["is_std"] = slice_level_inception_score(net, vols)
        r["num_volumes"] = int(vols.shape[0])
        r.update(_slice_consistency(vols, test_volumes, bone))
        r.update(lung_texture(vols, hu_range))
        r["overlap_disagreement"] = overlap[name]
        results[name] = r
    results["test_real"] = {"is_mean": slice_level_inception_score(net, test_volumes)[0],
                            **_slice_consistency(test_volumes, test_volumes, bone), **lung_texture(test_volumes, hu_range)}
    results["settings"] = {"num_test_volumes": int(test_volumes.shape[0]), "num_generated": n,
                           "num_pairs": int(num_pairs), "scans_per_group": k, "num_bins": int(num_bins),
                           "volume_shape": list(test_volumes.shape[2:]), "seed": int(seed),
                           "seconds": round(time.perf_counter() - t0, 1)}
    out = Path(output_dir).expanduser()
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    if montage:
        ctsgan_montage({"real (held out)": test_volumes, "CT-SGAN": fake, "untrained generator": rand},
                       out / "montage.png", pixdim=pixdim)
    return results
