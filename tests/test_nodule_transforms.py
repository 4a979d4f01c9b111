"""Rule-based lung nodule insertion / erasure (CT-SGAN's injector and eraser, issue 4)."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage
from scipy import ndimage

from monai_ext.transforms import (
    NoduleErase,
    NoduleErased,
    NoduleInsert,
    NoduleInsertd,
    RandNoduleInsert,
    RandNoduleInsertd,
    lung_mask_from_hu,
)

torch.set_num_threads(1)

SOLID = (-50.0, 100.0)
GGO = (-750.0, -300.0)


@pytest.fixture(scope="module")
def real_ct(shared_data):
    img = LoadImage(image_only=True, ensure_channel_first=True)(str(shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"))
    lung = lung_mask_from_hu(img)
    return img, lung


def _phantom(shape=(48, 48, 40), spacing=(1.0, 1.0, 1.5), seed=0):
    """Soft tissue (40 HU) around a block of lung (-850 HU), noise 30 HU, one 'vessel' along the last axis."""
    rng = np.random.default_rng(seed)
    img = np.full((1, *shape), 40.0, np.float32)
    inner = tuple(slice(4, s - 4) for s in shape)
    img[(0,) + inner] = -850.0
    img[0, shape[0] // 2 - 1: shape[0] // 2 + 1, shape[1] // 3 - 1: shape[1] // 3 + 1, 4:-4] = 30.0
    img += rng.normal(0, 30, img.shape).astype(np.float32)
    lung = np.zeros((1, *shape), np.uint8)
    lung[(0,) + inner] = 1
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = [-20.0, 10.0, 5.0]
    return MetaTensor(torch.as_tensor(img), affine=torch.as_tensor(aff)), lung


def _lung_centre(lung: np.ndarray, spacing, clearance_mm: float, rng) -> np.ndarray:
    dist = ndimage.distance_transform_edt(np.pad(lung, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    cands = np.argwhere(dist >= clearance_mm)
    assert len(cands), "no room for a test nodule"
    return cands[rng.integers(len(cands))] + rng.uniform(-0.4, 0.4, 3)


@pytest.mark.parametrize("nodule_type,hu_range", [("solid", SOLID), ("ground-glass", GGO)])
def test_insert_then_erase_on_real_ct(real_ct, nodule_type, hu_range):
    img0, lung = real_ct
    spacing = (3.0, 3.0, 3.0)
    rng = np.random.default_rng(1)
    aff = img0.affine.numpy()
    for trial in range(3):
        vox = _lung_centre(lung, spacing, 8.0, rng)
        world = (aff[:3, :3] @ vox + aff[:3, 3]).tolist()
        img = img0.clone()
        label = lung[None].astype(np.uint8)
        img, rec = NoduleInsert(world, 10.0, nodule_type, "round", seed=trial).insert(img, label, lung[None])
        mask = label[0] == 2
        before, after = img0.numpy()[0], img.numpy()[0]
        assert rec["label_value"] == 2 and rec["voxels"] == mask.sum() > 10
        assert hu_range[0] <= np.median(after[mask]) <= hu_range[1]
        far = ndimage.distance_transform_edt(~mask, sampling=spacing) > 2.0
        assert np.array_equal(before[far], after[far])  # bit for bit
        assert np.array_equal(label[0] != lung, mask) and ndimage.label(mask)[1] == 1
        assert img.meta["nodules"][-1]["centre_mm"] == pytest.approx(world)

        img, rec_e = NoduleErase(rec["centre_mm"], 10.0, extent_mm=rec["extent_mm"] + 1.0, seed=trial).erase(
            img, label=label, label_value=2, lung_mask=lung[None])
        erased = img.numpy()[0]
        d = ndimage.distance_transform_edt(~mask, sampling=spacing)
        shell = (d > 2.0) & (d <= 8.0) & lung
        assert abs(erased[mask].mean() - erased[shell].mean()) < 30.0
        assert abs(erased[mask].std() - erased[shell].std()) < 30.0
        assert np.array_equal(label[0], lung.astype(np.uint8))  # nodule label back to lung
        assert rec_e["voxels"] == mask.sum() and img.meta["nodules_erased"][-1]["background_value"] == 1


def test_lung_mask_from_hu_skips_bowel_gas(real_ct):
    img, lung = real_ct
    a = img.numpy()[0]
    comps, n = ndimage.label(lung)
    assert n == 2  # the two lung bases
    assert -930 < np.median(a[lung]) < -600
    assert lung[..., :10].sum() == 0  # the lower slices are abdomen only (gas there is bowel)


def test_lung_mask_from_hu_on_a_scan_whose_field_of_view_cuts_the_lungs(real_ct):
    """Issue 29, point 2: with the body cut at both sides (lungs running into the image edge) the mask is the
    uncut scan's mask on the common region (today's code found no lung at all there)."""
    img, lung = real_ct
    a = img.numpy()[0]
    xs = np.flatnonzero((a > -500).any(axis=(1, 2)))
    width = xs[-1] - xs[0] + 1
    x0 = xs[0] + int(0.15 * width)
    box = slice(x0, x0 + int(0.7 * width))
    cut = MetaTensor(img[:, box].clone(), affine=img.affine, meta=dict(img.meta))
    cut_lung = lung_mask_from_hu(cut)
    assert cut_lung[0].any() and cut_lung[-1].any()  # lungs at both side edges
    ref = lung[box]
    assert 2.0 * (ref & cut_lung).sum() / (ref.sum() + cut_lung.sum()) > 0.97  # 0.979: a lung piece the cut splits off (< 5 ml) is dropped


def test_random_insert_records_and_replays(real_ct):
    img0, lung = real_ct
    t = RandNoduleInsertd("image", label_key="label", diameter_range=(6, 10), num_nodules=2)
    outs = []
    for _ in range(2):
        t.set_random_state(7)
        d = t({"image": img0.clone(), "label": np.zeros(img0.shape, np.uint8)})
        outs.append(d)
    assert torch.equal(outs[0]["image"], outs[1]["image"])
    recs = outs[0]["image"].meta["nodules"]
    assert len(recs) == 2 and [r["label_value"] for r in recs] == [1, 2]
    for r in recs:
        assert 6.0 <= r["diameter_mm"] <= 10.0 and lung[tuple(np.rint(r["centre_voxel"]).astype(int))]
    replay = img0.clone()
    lab = np.zeros(img0.shape, np.uint8)
    for r in recs:
        replay = NoduleInsert.from_record(r)(replay, lab)
    assert torch.equal(replay, outs[0]["image"]) and np.array_equal(lab, outs[0]["label"])
    t.set_random_state(8)
    other = t({"image": img0.clone(), "label": np.zeros(img0.shape, np.uint8)})
    assert not torch.equal(other["image"], outs[0]["image"])
    assert not torch.equal(img0, outs[0]["image"])


def test_numpy_and_torch_agree_and_work_in_place():
    img, lung = _phantom()
    spacing = (1.0, 1.0, 1.5)
    arr = img.numpy().copy()
    ten = img.as_tensor().clone()
    kw = dict(nodule_type="part-solid", irregularity="spiculated", seed=3, pixdim=spacing, centre_frame="voxel")
    out_np = NoduleInsert([24.3, 20.0, 19.6], 12.0, **kw, inplace=True)(arr)
    out_t = NoduleInsert([24.3, 20.0, 19.6], 12.0, **kw, inplace=True)(ten)
    assert out_np is arr and out_t is ten  # in place, no copy
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-3)
    kept = img.numpy().copy()
    out = NoduleInsert([24.3, 20.0, 19.6], 12.0, **kw, copy=True)(kept)
    assert np.array_equal(kept, img.numpy()) and not np.array_equal(out, kept)


def test_size_in_mm_independent_of_spacing():
    vols = []
    for sp in [(0.8, 0.8, 0.8), (1.6, 1.6, 2.5)]:
        shape = tuple(int(60 / s) for s in sp)
        img, _ = _phantom(shape, sp)
        centre = (img.affine.numpy()[:3, :3] @ (np.asarray(shape) / 2.0) + img.affine.numpy()[:3, 3]).tolist()
        _, rec = NoduleInsert(centre, 12.0, texture_std=0.0).insert(img)
        vols.append(rec["volume_mm3"])
    sphere = 4.0 / 3.0 * np.pi * 6.0**3
    assert all(abs(v / sphere - 1.0) < 0.2 for v in vols), (vols, sphere)


def test_2d_slice_gets_a_disc():
    img, lung = _phantom((64, 64, 12), (0.7, 0.7, 1.0))
    sl = img.numpy()[:, :, :, 6].copy()  # (1, H, W)
    label = np.zeros_like(sl, dtype=np.uint8)
    _, rec = NoduleInsert([22.4, 22.4], 10.0, "solid", pixdim=(0.7, 0.7), label_value=5, inplace=True).insert(sl, label)
    area = (label == 5).sum() * 0.49
    assert abs(area / (np.pi * 25.0) - 1.0) < 0.15
    assert SOLID[0] <= np.median(sl[label == 5]) <= SOLID[1]
    NoduleErase(rec["centre_mm"], 10.0, pixdim=(0.7, 0.7), inplace=True).erase(sl, label=label, label_value=5)
    assert (label == 5).sum() == 0 and np.median(sl[0, 26:38, 26:38]) < -600


def test_dict_insert_then_erase_recorded():
    img, lung = _phantom()
    d = {"image": img, "lung": lung}
    centre = (img.affine.numpy()[:3, :3] @ np.array([24.0, 24.0, 20.0]) + img.affine.numpy()[:3, 3]).tolist()
    d = NoduleInsertd("image", centre, 8.0, nodule_mask_key="nodule", lung_key="lung", irregularity="lobulated")(d)
    assert d["nodule"].shape == img.shape and d["nodule"].sum() == d["image"].meta["nodules"][0]["voxels"] > 100
    d = NoduleErased("image", nodule_mask_key="nodule", lung_key="lung")(d)
    assert d["nodule"].sum() == 0 and d["image"].meta["nodules"] == []
    assert len(d["image"].meta["nodules_erased"]) == 1
    plain = {"image": img.numpy().copy(), "image_meta_dict": {"affine": img.affine}}
    plain = NoduleInsertd("image", centre, 8.0)(plain)
    assert plain["image_meta_dict"]["nodules"][0]["centre_mm"] == pytest.approx(centre)


def test_bad_input_errors():
    img, lung = _phantom()
    aff = img.affine.numpy()
    inside = (aff[:3, :3] @ np.array([24.0, 24.0, 20.0]) + aff[:3, 3]).tolist()
    with pytest.raises(ValueError, match="outside the image"):
        NoduleInsert([1000.0, 0.0, 0.0], 10.0)(img.clone())
    with pytest.raises(ValueError, match="outside the lung mask"):
        NoduleInsert((aff[:3, :3] @ np.array([1.0, 1.0, 1.0]) + aff[:3, 3]).tolist(), 10.0)(img.clone(), lung_mask=lung)
    for bad in (2.0, 31.0):
        with pytest.raises(ValueError, match="3-30 mm"):
            NoduleInsert(inside, bad)
    scaled = MetaTensor((img.as_tensor() + 1000.0) / 2000.0, affine=img.affine)
    with pytest.raises(ValueError, match="Hounsfield"):
        NoduleInsert(inside, 10.0)(scaled)
    with pytest.raises(ValueError, match="spacing is missing"):
        NoduleInsert([20.0, 20.0, 20.0], 10.0)(img.numpy().copy())
    with pytest.raises(ValueError, match="1 channel"):
        NoduleInsert(inside, 10.0)(MetaTensor(img.as_tensor().repeat(2, 1, 1, 1), affine=img.affine))
    with pytest.raises(ValueError, match="channel-first"):
        NoduleInsert(inside, 10.0, pixdim=1.0)(np.zeros((40, 40)))
    with pytest.raises(ValueError, match="nodule_type"):
        NoduleInsert(inside, 10.0, nodule_type="calcified")
    with pytest.raises(ValueError, match="no label voxels"):
        NoduleErase(inside, 10.0)(img.clone(), label=np.zeros(img.shape, np.uint8), label_value=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_tensor_stays_on_device():
    img, lung = _phantom()
    gpu = img.to("cuda")
    lab = torch.zeros(img.shape, dtype=torch.uint8, device="cuda")
    out, rec = NoduleInsert([24.0, 24.0, 20.0], 10.0, centre_frame="voxel", label_value=1).insert(gpu, lab)
    assert out.device.type == "cuda" and int(lab.sum()) == rec["voxels"]
    cpu = NoduleInsert([24.0, 24.0, 20.0], 10.0, centre_frame="voxel", label_value=1)(img.clone())
    assert torch.allclose(out.cpu(), cpu, atol=1e-3)
    NoduleErase([24.0, 24.0, 20.0], 10.0, centre_frame="voxel")(out, label=lab, label_value=1)
    assert int(lab.sum()) == 0


def test_erase_keeps_a_crossing_vessel_and_the_far_voxels():
    img, _ = _phantom()  # vessel at voxels x 23-24, y 15-16, along the last axis
    arr = img.numpy().copy()
    _, rec = NoduleErase([23.5, 15.5, 20.0], 8.0, centre_frame="voxel", pixdim=(1.0, 1.0, 1.5), inplace=True).erase(arr)
    vessel = arr[0, 23:25, 15:17, 18:23].mean()
    lung = arr[0, 18:21, 11:14, 18:23].mean()
    assert vessel > lung + 250.0, (vessel, lung)
    changed = arr[0] != img.numpy()[0]
    assert changed.sum() == rec["filled_voxels"] and not changed[:, :, :14].any()


def test_soft_edge_stays_within_limit_and_mask_only_erase():
    sp = (0.5, 0.5, 0.5)
    img, _ = _phantom((48, 48, 48), sp)
    before = img.numpy().copy()
    nod = np.zeros(img.shape, np.uint8)
    _, rec = NoduleInsert([24.2, 23.7, 24.1], 8.0, "ground-glass", "lobulated", centre_frame="voxel", seed=2,
                          inplace=True).insert(img, nodule_mask=nod)
    mask = nod[0] > 0
    changed = img.numpy()[0] != before[0]
    d = ndimage.distance_transform_edt(~mask, sampling=sp)
    assert changed[~mask].any()  # partial-volume edge outside the mask
    assert d[changed].max() <= rec["max_outside_mm"] + 1e-6 and changed.sum() == rec["changed_voxels"]
    _, rec_e = NoduleErase().erase(img, nodule_mask=nod)  # no centre: the whole mask
    assert nod.sum() == 0 and rec_e["voxels"] == mask.sum()
    assert abs(rec_e["equivalent_diameter_mm"] - 8.0) < 2.0
    with pytest.raises(ValueError, match="nothing to erase"):
        NoduleErase()(img)


def test_large_erase_on_fine_grid_matches_surround_and_keeps_vessel():
    """A 24 mm erasure at 0.7 mm voxels (region about 40 voxels across: solved on the coarse grid)."""
    from monai_ext.transforms.nodule_geometry import bounding_box

    spacing = (0.7, 0.7, 1.0)
    img, lung = _phantom(shape=(96, 96, 64), spacing=spacing, seed=3)  # vessel at x 47-48, y 31-32
    arr = img.numpy().copy()
    _, rec = NoduleErase([47.5, 31.5, 32.0], 24.0, centre_frame="voxel", pixdim=spacing, dilate_mm=0.0,
                         inplace=True).erase(arr)
    d = np.sqrt(sum(((np.indices(arr.shape[1:]) - np.array([47.5, 31.5, 32.0])[:, None, None, None]) * np.array(
        spacing)[:, None, None, None]) ** 2))
    region = d <= 12.0
    assert max(s.stop - s.start for s in bounding_box(region)) > 20  # the coarse path is taken
    shell = (d > 14.0) & (d <= 20.0) & (lung[0] > 0)
    vessel_mask = np.zeros_like(region)
    vessel_mask[47:49, 31:33, :] = True
    region_lung = region & ~ndimage.binary_dilation(vessel_mask, iterations=3)
    # the fill matches the surround's mean and standard deviation (vessel included, as NoduleErase does)
    assert abs(arr[0][region].mean() - arr[0][shell].mean()) < 30.0
    assert abs(arr[0][region].std() - arr[0][shell].std()) < 30.0
    # the vessel is continued (about 520 HU above the lung at full resolution, 340 from the coarse grid)
    assert arr[0][region & vessel_mask].mean() > arr[0][region_lung].mean() + 250.0
    changed = arr[0] != img.numpy()[0]
    assert changed.sum() >= 0.99 * rec["filled_voxels"] and not changed[d > 12.0 + 1.0].any()


def test_fill_exact_and_coarse_shell_close_on_large_crops():
    from monai_ext.transforms.nodule_geometry import fill_and_shell

    spacing = np.array([0.7, 0.7, 1.0])
    idx = np.indices((70, 66, 50))
    centre = np.array([35.2, 30.7, 24.4])[:, None, None, None]
    region = np.sqrt((((idx - centre) * spacing[:, None, None, None]) ** 2).sum(0)) <= 10.0
    region[40:44, 30:33, :] = True  # an irregular part: a tube through the ball
    exact_fill, exact_shell = fill_and_shell(region, spacing, 1.5, 6.0, coarse_above=10**9)
    fill, shell = fill_and_shell(region, spacing, 1.5, 6.0, coarse_above=1000)
    assert np.array_equal(fill, exact_fill)
    assert not (shell & fill).any()
    assert (shell & exact_shell).sum() / exact_shell.sum() > 0.85 and (shell & exact_shell).sum() / shell.sum() > 0.85


def test_geometry_helpers_match_plain_formulas():
    """The fast helpers give what the plain formulas give: block reductions of a (c0, f, c1, f, ...)
    reshape, and the norm of the world offsets for an oblique affine."""
    from monai_ext.transforms.nodule_geometry import _block_reduce, distance_mm, image_geometry, offsets_mm

    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 9, 5))
    for f in (2, 3):
        pad = [(0, -n % f) for n in a.shape]
        blocks = np.pad(a, pad, mode="edge").reshape(-1, f, -(-9 // f), f, -(-5 // f), f)
        np.testing.assert_allclose(_block_reduce(a, f, "mean"), blocks.mean((1, 3, 5)))
        np.testing.assert_array_equal(_block_reduce(a, f, "max"), blocks.max((1, 3, 5)))
        m = a > 1.2
        mb = np.pad(m, pad).reshape(blocks.shape)
        np.testing.assert_array_equal(_block_reduce(m, f, "any"), mb.any((1, 3, 5)))
    aff = np.eye(4)
    aff[:3, :3] = rng.normal(size=(3, 3))
    geo = image_geometry(MetaTensor(torch.zeros(1, 12, 14, 16), affine=torch.as_tensor(aff)), None)
    box, centre = (slice(2, 10), slice(0, 14), slice(5, 16)), np.array([5.5, 6.2, 9.9])
    plain = np.sqrt(np.sum(offsets_mm(box, centre, geo) ** 2, axis=0))
    np.testing.assert_allclose(distance_mm(box, centre, geo), plain, atol=1e-9)


# ------------------------------------------------------------------------------ RandNoduleInsert (array)

RAND_KW = dict(num_nodules=(1, 3), diameter_range=(4.0, 8.0))


def test_rand_array_prob_zero_is_identity():
    img, lung = _phantom()
    before = img.clone()
    t = RandNoduleInsert(prob=0.0, **RAND_KW)
    lab = np.zeros(img.shape, np.uint8)
    out = t(img, label=lab, lung_mask=lung)
    assert out is img and torch.equal(img, before) and "nodules" not in img.meta
    assert lab.sum() == 0 and t.last_records == []


def test_rand_array_seeded_reproducible_and_replays_from_records():
    img, lung = _phantom()
    before = img.clone()
    t = RandNoduleInsert(**RAND_KW)
    runs = []
    for _ in range(2):
        t.set_random_state(11)
        lab = np.zeros(img.shape, np.uint8)
        out = t(img, label=lab, lung_mask=lung)
        runs.append((out, lab, list(t.last_records)))
    (out, lab, recs), (out2, lab2, recs2) = runs
    assert torch.equal(out, out2) and np.array_equal(lab, lab2) and recs == recs2
    assert torch.equal(img, before) and "nodules" not in img.meta  # the input is not changed by default
    assert out.meta["nodules"] == recs and 1 <= len(recs) <= 3 and not torch.equal(out, img)
    assert [r["label_value"] for r in recs] == list(range(1, len(recs) + 1))
    for r in recs:
        assert 4.0 <= r["diameter_mm"] <= 8.0 and lung[0][tuple(np.rint(r["centre_voxel"]).astype(int))]
    # every recorded insertion replays exactly through the deterministic NoduleInsert
    replay, rlab = img.clone(), np.zeros(img.shape, np.uint8)
    for r in recs:
        replay = NoduleInsert.from_record(r)(replay, rlab, lung)
    assert torch.equal(replay.as_tensor(), out.as_tensor()) and np.array_equal(rlab, lab)
    # randomize=False re-applies the last parameters; another seed gives other nodules
    assert torch.equal(t(img.clone(), lung_mask=lung, randomize=False), out)
    t.set_random_state(12)
    assert not torch.equal(t(img, lung_mask=lung), out)
    # the dictionary version draws the same nodules from the same seed
    d = RandNoduleInsertd("image", lung_key="lung", label_key="label", **RAND_KW).set_random_state(11)(
        {"image": img, "lung": lung, "label": np.zeros(img.shape, np.uint8)})
    assert torch.equal(d["image"], out) and d["image"].meta["nodules"] == recs and np.array_equal(d["label"], lab)


def test_rand_array_plain_numpy_records_and_inplace():
    img, lung = _phantom()
    spacing = (1.0, 1.0, 1.5)
    arr = img.numpy().copy()
    t = RandNoduleInsert(pixdim=spacing, **RAND_KW).set_random_state(3)
    out, recs = t.insert(arr, lung_mask=lung)
    assert isinstance(out, np.ndarray) and out is not arr and np.array_equal(arr, img.numpy())
    assert recs == t.last_records and len(recs) >= 1
    replay = arr.copy()
    for r in recs:
        replay = NoduleInsert.from_record(r, pixdim=spacing)(replay, lung_mask=lung)  # with the same lung mask
    assert np.array_equal(replay, out)
    replay = arr.copy()
    for r in recs:
        replay = NoduleInsert.from_record(r, pixdim=spacing)(replay)  # from the record alone
    assert np.array_equal(replay, out)
    t_in = RandNoduleInsert(pixdim=spacing, inplace=True, **RAND_KW).set_random_state(3)
    assert t_in(arr, lung_mask=lung) is arr and np.array_equal(arr, out)


# ------------------------------------------------------------------------------ inplace

def _as(kind: str, img: MetaTensor):
    if kind == "numpy":
        return img.numpy().copy()
    if kind == "torch":
        return img.as_tensor().clone()
    return img.clone()


def _equal(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kind", ["numpy", "torch", "metatensor"])
def test_insert_and_erase_leave_the_input_unchanged_unless_inplace(kind):
    img, _ = _phantom()
    kw = dict(centre_frame="voxel", pixdim=(1.0, 1.0, 1.5))
    x = _as(kind, img)
    before = _as(kind, img)
    out = NoduleInsert([24.0, 24.0, 20.0], 10.0, **kw)(x)
    assert type(out) is type(x) and out is not x
    assert _equal(x, before) and not _equal(out, x)
    if kind == "metatensor":
        assert "nodules" not in x.meta and len(out.meta["nodules"]) == 1
    y = _as(kind, img)
    out_in = NoduleInsert([24.0, 24.0, 20.0], 10.0, inplace=True, **kw)(y)
    assert out_in is y and _equal(y, out)

    z = _as(kind, img) if kind != "metatensor" else out.clone()
    if kind != "metatensor":
        z[...] = out[...] if kind == "torch" else out
    z_before = z.clone() if kind != "numpy" else z.copy()
    erased = NoduleErase([24.0, 24.0, 20.0], 10.0, **kw)(z)
    assert type(erased) is type(z) and erased is not z and _equal(z, z_before) and not _equal(erased, z)
    if kind == "metatensor":
        assert "nodules_erased" not in z.meta and len(erased.meta["nodules_erased"]) == 1
    erased_in = NoduleErase([24.0, 24.0, 20.0], 10.0, inplace=True, **kw)(z)
    assert erased_in is z and _equal(z, erased)


def test_dictionary_versions_copy_unless_inplace():
    img, lung = _phantom()
    aff = img.affine.numpy()
    centre = (aff[:3, :3] @ np.array([24.0, 24.0, 20.0]) + aff[:3, 3]).tolist()
    data = {"image": img, "lung": lung, "label": np.zeros(img.shape, np.uint8)}
    before = img.clone()
    out = NoduleInsertd("image", centre, 8.0, label_key="label", lung_key="lung")(data)
    assert out["image"] is not img and out["label"] is not data["label"]
    assert torch.equal(img, before) and "nodules" not in img.meta and data["label"].sum() == 0
    assert out["label"].max() == 1 and len(out["image"].meta["nodules"]) == 1
    erased = NoduleErased("image", label_key="label", lung_key="lung")(out)
    assert erased["label"].max() == 0 and erased["image"].meta["nodules"] == []
    assert out["label"].max() == 1 and len(out["image"].meta["nodules"]) == 1  # its input is unchanged
    rand = RandNoduleInsertd("image", label_key="label", lung_key="lung", **RAND_KW).set_random_state(0)(data)
    assert torch.equal(img, before) and data["label"].sum() == 0 and rand["label"].max() >= 1

    d = {"image": img.clone(), "lung": lung, "label": np.zeros(img.shape, np.uint8)}
    res = NoduleInsertd("image", centre, 8.0, label_key="label", lung_key="lung", inplace=True)(d)
    assert res["image"] is d["image"] and res["label"] is d["label"] and d["label"].max() == 1
    res = NoduleErased("image", label_key="label", lung_key="lung", inplace=True)(res)
    assert res["image"] is d["image"] and d["label"].max() == 0
    res = RandNoduleInsertd("image", label_key="label", lung_key="lung", inplace=True, **RAND_KW)(d)
    assert res["image"] is d["image"] and d["label"].max() >= 1
    for cls, args in ((NoduleInsert, (centre, 8.0)), (NoduleErase, (centre, 8.0))):
        with pytest.raises(ValueError, match="contradict"):
            cls(*args, copy=True, inplace=True)
    with pytest.raises(ValueError, match="contradict"):
        NoduleInsertd("image", centre, 8.0, copy=True, inplace=True)


def test_from_record_reuses_the_noise_level_that_was_estimated():
    """A record of an insert whose noise level was estimated holds ``texture_std: None`` next to the level used
    (``texture_std_hu``); the replay must use that level, not estimate a new one (issue: replays with a lung mask)."""
    record = {"centre_mm": [0.0, 0.0, 0.0], "diameter_mm": 8.0, "texture_std": None, "texture_std_hu": 37.5}
    assert NoduleInsert.from_record(record).texture_std == 37.5
    given = {**record, "texture_std": 12.0, "texture_std_hu": 12.0}
    assert NoduleInsert.from_record(given).texture_std == 12.0


def test_random_insert_says_when_no_lung_was_found_and_which_key_helps():
    """A scan without any air-filled lung region (e.g. lungs cut by the field of view, where lung_mask_from_hu
    finds nothing): the error says the lung mask was empty and names lung_mask= / lung_key=."""
    soft_tissue = np.full((1, 40, 40, 30), 40.0, np.float32)
    soft_tissue[:, :2] = -1000.0  # air outside the body only, so the HU check passes
    t = RandNoduleInsert(prob=1.0, pixdim=(1.0, 1.0, 1.0))
    t.set_random_state(0)
    with pytest.raises(ValueError, match="no lung at all.*lung_key="):
        t(soft_tissue)
    with pytest.raises(ValueError, match="no lung at all in the lung mask given"):
        t(soft_tissue, lung_mask=np.zeros_like(soft_tissue))


def test_dictionary_inserts_create_the_nodule_mask_with_the_image_geometry(tmp_path):
    """The mask that NoduleInsertd / RandNoduleInsertd add is a MetaTensor with the image's affine, so SaveImaged
    writes it on the image's grid (it was a plain tensor)."""
    from monai.transforms import SaveImage

    from monai_ext.phantoms import generate_chest_ct
    from monai_ext.transforms import NoduleInsertd, RandNoduleInsertd

    case = generate_chest_ct((64, 64, 40), (4.0, 4.0, 4.0), seed=1, lesions=False, nodules=False)
    affine = torch.as_tensor(case.affine)
    img = MetaTensor(torch.as_tensor(case.image[None]).float(), affine=affine)
    lung = MetaTensor(torch.as_tensor(((case.label == 1) | (case.label == 2))[None]).float(), affine=affine)
    centre = np.argwhere(lung[0].numpy() > 0)[len(np.argwhere(lung[0].numpy() > 0)) // 2]
    outs = [
        NoduleInsertd(keys="image", nodule_mask_key="nodule", lung_key="lung", centre=centre.tolist(), diameter_mm=8.0,
                      centre_frame="voxel", seed=0)({"image": img, "lung": lung}),
    ]  # fmt: skip
    r = RandNoduleInsertd(keys="image", nodule_mask_key="nodule", lung_key="lung", prob=1.0)
    r.set_random_state(0)
    outs.append(r({"image": img, "lung": lung}))
    for d in outs:
        mask = d["nodule"]
        assert isinstance(mask, MetaTensor) and torch.allclose(mask.affine.double(), affine.double())
        assert mask.dtype == torch.uint8 and int(mask.sum()) > 0
    SaveImage(output_dir=str(tmp_path), output_postfix="nodule", separate_folder=False, print_log=False)(outs[0]["nodule"])
    import nibabel as nib

    saved = nib.load(str(next(tmp_path.glob("*.nii.gz"))))
    assert np.allclose(saved.affine, case.affine, atol=1e-4) and int(np.asarray(saved.dataobj).sum()) > 0


def test_erase_fills_with_the_air_filled_lung_not_the_vessels_of_the_lung_mask():
    """The fill's level comes from the aerated parenchyma around the region: a lung mask also covers vessels,
    whose soft-tissue HU made the erased region tens of HU brighter than the lung it replaced."""
    rng = np.random.default_rng(0)
    img = rng.normal(-850.0, 20.0, (1, 48, 48, 48)).astype(np.float32)
    img[:, :, :, :3] = -1000.0  # outside air, so the HU check passes
    vessels = np.zeros_like(img, bool)
    for x in range(4, 44, 5):  # a grid of 2-voxel vessels through the whole lung (about 15 % of it)
        vessels[:, x:x + 2, :, :] |= True if x % 10 == 4 else False
        vessels[:, :, x:x + 2, :] |= True if x % 10 == 9 else False
    img[vessels] = 40.0
    lung = np.ones_like(img, np.uint8)
    mask = np.zeros_like(img, np.uint8)
    mask[:, 17:21, 12:16, 22:26] = 1  # the region to erase, between the vessels (vessels in its shell)
    img[mask > 0] = 30.0
    out = NoduleErase(seed=0, pixdim=(1.0, 1.0, 1.0)).erase(img, mask=mask, lung_mask=lung)[0]
    filled = np.asarray(out)[np.asarray(out) != img]  # the filled region: the mask and its soft edge
    assert abs(float(filled.mean()) - (-850.0)) < 30.0, float(filled.mean())


def test_replay_without_the_lung_mask_keeps_the_cut_at_the_pleura(real_ct):
    """Issue 29, point 1: a nodule that the lung mask cut (juxtapleural) replays exactly from its record alone:
    the record holds which voxels near it were outside the mask."""
    img0, lung = real_ct
    edge = lung & ~ndimage.binary_erosion(lung, iterations=1)  # lung voxels at the pleura
    rng = np.random.default_rng(0)
    pick = np.argwhere(edge)[rng.choice(int(edge.sum()), 6, replace=False)]
    aff = img0.affine.numpy()
    cut = differs = 0
    for k, vox in enumerate(pick):
        world = (aff[:3, :3] @ vox + aff[:3, 3]).tolist()
        out, rec = NoduleInsert(world, 12.0, "solid", "lobulated", seed=k).insert(img0.clone(), lung_mask=lung[None])
        cut += rec["outside_lung"] is not None
        replay = NoduleInsert.from_record(rec)(img0.clone())  # no lung mask
        assert torch.equal(replay.as_tensor(), out.as_tensor())
        unconfined = NoduleInsert.from_record({**rec, "outside_lung": None})(img0.clone())
        differs += not torch.equal(unconfined.as_tensor(), out.as_tensor())  # without the record: not exact
    assert cut >= 4 and differs >= 2
    with pytest.raises(ValueError, match="not this nodule's box"):
        moved = dict(rec, outside_lung=dict(rec["outside_lung"] or {"bits": "", "box": [[0, 1]] * 3}))
        moved["outside_lung"]["box"] = [[b[0] + 1, b[1] + 1] for b in moved["outside_lung"]["box"]]
        NoduleInsert.from_record(moved)(img0.clone())
