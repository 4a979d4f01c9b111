"""Synthetic multi-style B-mode ultrasound, the ultrasound loader and the ultrasound data lists."""

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from monai_ext.datalists import ultrasound_datalist, ultrasound_style_datalist
from monai_ext.phantoms import (
    ULTRASOUND_STYLES,
    UltrasoundStyle,
    blend_ultrasound_styles,
    generate_us_anatomy,
    sample_ultrasound_style,
    simulate_bmode,
    synthesize_us_dataset,
    ultrasound_fov_mask,
)
from monai_ext.transforms import LoadUltrasound, LoadUltrasoundd, ScanInputError

torch.set_num_threads(1)


def _autocorr_width(img: np.ndarray, axis: int) -> float:
    """Lag (pixels) where the normalised autocorrelation of the detrended image along ``axis`` drops to 0.5."""
    x = img - ndimage.uniform_filter(img, 15, mode="nearest")
    spec = np.fft.rfft(x, n=2 * x.shape[axis], axis=axis)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=axis)
    ac = np.take(ac, range(8), axis=axis).mean(axis=1 - axis)
    ac = ac / ac[0]
    i = int(np.argmax(ac < 0.5))
    return i - 1 + (ac[i - 1] - 0.5) / (ac[i - 1] - ac[i])


@pytest.fixture(scope="module")
def anatomy():
    return generate_us_anatomy(11, num_vessels=1, num_cysts=1, num_lesions=1)


@pytest.fixture(scope="module")
def uniform_tissue():
    ones = np.ones((128, 128), np.float32)
    return {"echogenicity": ones, "attenuation": ones}


def test_anatomy_shapes_and_determinism(anatomy):
    again = generate_us_anatomy(11, num_vessels=1, num_cysts=1, num_lesions=1)
    np.testing.assert_array_equal(anatomy["label"], again["label"])
    np.testing.assert_array_equal(anatomy["echogenicity"], again["echogenicity"])
    assert anatomy["echogenicity"].dtype == np.float32 and anatomy["echogenicity"].shape == (128, 128)
    assert anatomy["label"].dtype == np.uint8
    assert set(np.unique(anatomy["label"])) == {0, 1, 2, 3}
    assert anatomy["seed"] == 11 and len(anatomy["structures"]) == 3
    other = generate_us_anatomy(12)
    assert not np.array_equal(other["label"], anatomy["label"])
    # every structure inside the field of view that every built-in style images
    for seed in range(6):
        a = generate_us_anatomy(seed, shape=(96, 112))
        assert a["label"].shape == (96, 112)
        assert a["label"].max() >= 1
        for style in ULTRASOUND_STYLES:
            assert ultrasound_fov_mask((96, 112), style)[a["label"] > 0].all(), (seed, style)
    with pytest.raises(ValueError, match="shape"):
        generate_us_anatomy(0, shape=(16, 16))


def test_bmode_shape_range_determinism(anatomy):
    assert len(ULTRASOUND_STYLES) >= 4
    for name, style in ULTRASOUND_STYLES.items():
        img = simulate_bmode(anatomy, name, seed=3)
        assert img.shape == (1, 128, 128) and img.dtype == np.float32, name
        assert img.min() >= 0.0 and img.max() <= 1.0 and img.std() > 0.02, name
        np.testing.assert_array_equal(img, simulate_bmode(anatomy, style, seed=3))
        other = simulate_bmode(anatomy, style, seed=4)
        assert np.abs(other - img).mean() > 0.005, name  # new speckle realisation
        fov = ultrasound_fov_mask((128, 128), style)
        assert (img[0][~fov] == 0).all(), name
        if style.is_sector:
            assert (~fov).sum() > 500, name  # a visible fan
    t0 = time.perf_counter()
    for _ in range(3):
        simulate_bmode(anatomy, "linear_high_freq", seed=0)
    assert (time.perf_counter() - t0) / 3 < 1.0  # about 0.03 s alone; loose bound for a busy machine


def test_same_content_in_every_style(anatomy):
    """Fluid is darker than the tissue around it in every style; the solid lesion differs from its rim."""
    lab = anatomy["label"]
    hyper = anatomy["structures"][0]["subtype"] == "hyperechoic"
    for name in ULTRASOUND_STYLES:
        img = simulate_bmode(anatomy, name, seed=1)[0]
        for value in (1, 2, 3):
            inside = lab == value
            core = ndimage.binary_erosion(inside, iterations=2)
            ring = ndimage.binary_dilation(inside, iterations=6) & ~ndimage.binary_dilation(inside, iterations=2)
            ring &= lab == 0
            m_in, m_ring = img[core].mean(), img[ring].mean()
            if value in (1, 2):
                assert m_in < 0.6 * m_ring, (name, value, m_in, m_ring)
            elif hyper:
                assert m_in > 1.1 * m_ring, (name, value, m_in, m_ring)
            else:
                assert m_in < 0.9 * m_ring, (name, value, m_in, m_ring)


def test_styles_measurably_distinct(uniform_tissue):
    feats = {}
    for name, style in ULTRASOUND_STYLES.items():
        img = simulate_bmode(uniform_tissue, style, seed=2)[0]
        roi = img[40:90, 44:84]
        fov = ultrasound_fov_mask(img.shape, style)
        top = img[8:24][fov[8:24]].mean()
        bottom = img[104:120][fov[104:120]].mean()
        feats[name] = np.array(
            [roi.mean(), roi.std(), _autocorr_width(roi, 1), _autocorr_width(roi, 0), bottom / max(top, 1e-3)]
        )
    names = list(feats)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rel = np.abs(feats[a] - feats[b]) / np.maximum(np.abs(feats[a]), np.abs(feats[b]))
            assert rel.max() > 0.25, (a, b, feats[a], feats[b])
    # the physics shows: low-frequency curvilinear speckle is coarser laterally than high-frequency linear
    assert feats["curvilinear_low_freq"][2] > 1.5 * feats["linear_high_freq"][2]
    # ... and an under-compensated older probe darkens with depth much more than a well-set modern one
    assert feats["linear_mid_freq"][4] < 0.8 * feats["linear_high_freq"][4]


def test_style_objects():
    with pytest.raises(ValueError, match="centre_frequency_mhz"):
        UltrasoundStyle("bad", centre_frequency_mhz=-1, speckle_density=5, gain_db=0, tgc_db_per_cm=1,
                        dynamic_range_db=50, depth_cm=4)
    with pytest.raises(ValueError, match="unknown ultrasound style"):
        simulate_bmode(generate_us_anatomy(0), "no_such_style", 0)
    hf = ULTRASOUND_STYLES["linear_high_freq"]
    assert hf.wavelength_mm == pytest.approx(1540 / 12e3)
    assert UltrasoundStyle(**hf.to_dict()) == hf
    mid = blend_ultrasound_styles("linear_high_freq", "gel_phantom", 0.5)
    assert min(hf.dynamic_range_db, 42.0) < mid.dynamic_range_db < max(hf.dynamic_range_db, 42.0)
    sampled = sample_ultrasound_style(5)
    a = generate_us_anatomy(2)
    img = simulate_bmode(a, sampled, 0)
    assert img.shape == (1, 128, 128) and 0 <= img.min() and img.max() <= 1
    assert ultrasound_fov_mask((128, 128), sampled)[a["label"] > 0].all()
    with pytest.raises(ValueError, match="echogenicity"):
        simulate_bmode({"echogenicity": np.ones((4, 64, 64))}, hf, 0)


def test_synthesize_dataset_and_reload(tmp_path):
    out = tmp_path / "us"
    styles = ["linear_high_freq", "curvilinear_low_freq"]
    lists = synthesize_us_dataset(out, subjects=4, styles=styles, seed=7, shape=(64, 64), progress=False)
    assert sum(len(v) for v in lists.values()) == 8
    subjects = {k: {e["subject"] for e in v} for k, v in lists.items()}
    assert all(subjects.values())
    assert not (subjects["training"] & subjects["validation"] or subjects["training"] & subjects["test"]
                or subjects["validation"] & subjects["test"])
    assert not list(out.rglob("*.tmp*"))
    desc = json.loads((out / "dataset.json").read_text())
    assert set(desc["styles"]) == set(styles) and desc["labels"]["2"] == "cyst"
    assert not desc["training"][0]["image"].startswith("/")  # portable, relative paths

    loader = LoadUltrasoundd(keys=["image", "label"], label=(False, True))
    entry = lists["training"][0]
    item = loader(entry)
    assert tuple(item["image"].shape) == (1, 64, 64) and tuple(item["label"].shape) == (1, 64, 64)
    anatomy = generate_us_anatomy(next(r["seed"] for r in desc["subjects"] if r["subject"] == entry["subject"]), (64, 64))
    np.testing.assert_array_equal(item["label"][0].numpy(), anatomy["label"])
    expected = simulate_bmode(anatomy, entry["style"], seed=anatomy["seed"])
    assert np.abs(item["image"].numpy() - expected).max() <= 0.5 / 255 + 1e-6

    again = ultrasound_style_datalist(out)
    assert again == lists
    made = ultrasound_style_datalist(tmp_path / "empty", subjects=3, styles=["gel_phantom"], shape=(48, 48))
    assert len(made["training"]) + len(made["validation"]) + len(made["test"]) == 3
    with pytest.raises(ValueError, match="subjects"):
        synthesize_us_dataset(tmp_path / "x", subjects=2)
    with pytest.raises(ValueError, match="unknown ultrasound style"):
        synthesize_us_dataset(tmp_path / "y", subjects=3, styles=["nope"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        ultrasound_style_datalist(tmp_path / "other")


def test_pydicom_ultrasound_loads(tmp_path):
    pydicom_data = pytest.importorskip("pydicom.data")
    import pydicom

    path = pydicom_data.get_testdata_file("US1_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed")
    img = LoadUltrasound()(path)
    assert tuple(img.shape) == (1, 480, 640) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0.05
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64)
    np.testing.assert_allclose(img[0].numpy(), rgb @ [0.299, 0.587, 0.114] / 255.0, atol=1e-5)
    assert img.meta["filename_or_obj"] == path
    png = tmp_path / "grey.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    assert set(LoadUltrasound()(png).meta) == set(img.meta)  # same keys: mixed batches collate

    multi = pydicom_data.get_testdata_file("OBXXXX1A_2frame.dcm")  # palette colour, 2 frames
    if multi is not None:
        one = LoadUltrasound(frame=1)(multi)
        both = LoadUltrasound(frame=None)(multi)
        assert tuple(one.shape) == (1, 600, 800) and tuple(both.shape) == (2, 600, 800)
        torch.testing.assert_close(both[1:], one.as_tensor())
        assert one.meta["pixel_spacing_mm"] == pytest.approx((0.2623, 0.2623), abs=1e-3)
        assert float(one.affine[0, 0]) == pytest.approx(0.2623, abs=1e-3)
        cropped = LoadUltrasound(crop_to_region=True)(multi)
        assert tuple(cropped.shape) == (1, 459, 680)  # region x 120..800, clipped to the 800 columns
        with pytest.raises(ScanInputError, match="frame 5"):
            LoadUltrasound(frame=5)(multi)
        loaded = LoadUltrasoundd(keys="image")({"image": multi, "frame": 1})
        torch.testing.assert_close(loaded["image"].as_tensor(), one.as_tensor())


def test_load_png_and_errors(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    img = LoadUltrasound()(tmp_path / "colour.png")
    assert tuple(img.shape) == (1, 20, 30)  # rows first (depth), unlike MONAI's LoadImage for PNG
    assert float(img[0, 0, 0]) == pytest.approx((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, abs=1e-5)
    Image.fromarray(np.full((20, 30), 4096, np.uint16)).save(tmp_path / "deep.png")
    assert float(LoadUltrasound()(tmp_path / "deep.png").max()) == pytest.approx(4096 / 65535, abs=1e-6)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 3
    Image.fromarray(mask).save(tmp_path / "mask.png")
    lab = LoadUltrasound(label=True)(tmp_path / "mask.png")
    assert set(torch.unique(lab).tolist()) == {0.0, 3.0}
    with pytest.raises(ScanInputError, match="colour"):
        LoadUltrasound(label=True)(tmp_path / "colour.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        LoadUltrasound()(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ScanInputError, match="junk.png"):
        LoadUltrasound()(tmp_path / "junk.png")
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1\2\3")
    with pytest.raises(ScanInputError, match="junk.dcm"):
        LoadUltrasound()(tmp_path / "junk.dcm")


def test_ultrasound_datalist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ultrasound_datalist(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no ultrasound images"):
        ultrasound_datalist(tmp_path / "empty")
    img_dir, mask_dir = tmp_path / "img", tmp_path / "msk"
    img_dir.mkdir()
    mask_dir.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((16, 24), np.uint8)).save(img_dir / f"{name}.png")
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(mask_dir / "a.png")
    assert [e.get("label") for e in ultrasound_datalist(img_dir)] == [None, None]
    with pytest.raises(FileNotFoundError, match=r"b\.png"):
        ultrasound_datalist(img_dir, masks=mask_dir)
    partial = ultrasound_datalist(img_dir, masks=mask_dir, require_masks=False)
    assert partial[0]["label"].endswith("a.png") and "label" not in partial[1]
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(mask_dir / "b.png")
    with pytest.raises(ValueError, match="16 x 20"):
        ultrasound_datalist(img_dir, masks=mask_dir)
    # BUSI layout: masks beside the images with a suffix (and extra masks "_mask_1")
    busi = tmp_path / "busi"
    busi.mkdir()
    for name in ("benign (1)", "benign (2)"):
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(busi / f"{name}.png")
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(busi / f"{name}_mask.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(busi / "benign (2)_mask_1.png")
    entries = ultrasound_datalist(busi, masks=busi, mask_suffix="_mask")
    assert [e["label"].rsplit("/", 1)[-1] for e in entries] == ["benign (1)_mask.png", "benign (2)_mask.png"]
    # a multi-frame TIFF becomes one entry per frame
    cine = tmp_path / "cine"
    cine.mkdir()
    frames = [Image.fromarray(np.full((8, 8), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(cine / "loop.tif", save_all=True, append_images=frames[1:])
    expanded = ultrasound_datalist(cine, expand_frames=True)
    assert [e["frame"] for e in expanded] == [0, 1, 2]
    loaded = LoadUltrasoundd(keys="image")(expanded[2])
    assert float(loaded["image"].max()) == pytest.approx(80 / 255)
