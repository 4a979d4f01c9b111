"""Perlin-noise augmentation: the field (against a per-voxel reference), the transforms (types kept, amplitude,
replay from the record, seeding, prob, dictionary keys), argument errors and use from a bundle config."""

import itertools

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from monai_ext.transforms import (
    PerlinNoise,
    PerlinNoised,
    RandPerlinNoise,
    RandPerlinNoiseD,
    RandPerlinNoised,
    fractal_perlin_noise,
)


def _fade(f):
    return f * f * f * (f * (f * 6 - 15) + 10)


def _reference(shape, cells, offsets, grads, persistence):
    """Fractal Perlin noise voxel by voxel from its definition (sum over the cell corners of
    fade weights x gradient . offset), scaled to peak 1."""
    nd = len(shape)
    pts = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1)
    total = np.zeros(shape)
    for o, (cell, off, g) in enumerate(zip(cells, offsets, grads)):
        u = pts / cell + np.asarray(off)
        i = np.floor(u).astype(int)
        f = u - i
        s = _fade(f)
        val = np.zeros(shape)
        for bits in itertools.product((0, 1), repeat=nd):
            w = np.ones(shape)
            dot = np.zeros(shape)
            for ax, b in enumerate(bits):
                w *= s[..., ax] if b else 1 - s[..., ax]
            corner = tuple(i[..., ax] + b for ax, b in enumerate(bits))
            for ax in range(nd):
                dot += g[ax][corner] * (f[..., ax] - bits[ax])
            val += w * dot
        total += persistence**o * val
    return total / np.abs(total).max()


@pytest.mark.parametrize("shape", [(13, 11), (13, 11, 9)])
def test_field_matches_the_per_voxel_definition(shape):
    rng = np.random.default_rng(0)
    cells = [5.0, 2.5, 1.25]
    offsets = [rng.random(len(shape)) for _ in cells]
    grads = []
    for cell, off in zip(cells, offsets):
        lat = [int(np.floor((n - 1) / cell + o)) + 2 for n, o in zip(shape, off)]
        g = rng.standard_normal((len(shape), *lat))
        grads.append(g / np.linalg.norm(g, axis=0, keepdims=True))
    got = fractal_perlin_noise(shape, 5.0, 3, 0.6, 2.0, seed=None, gradients=grads, offsets=offsets)
    assert got.shape == shape and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), _reference(shape, cells, offsets, grads, 0.6), atol=2e-5)


def test_field_range_mean_and_octaves():
    for seed in range(3):
        n = fractal_perlin_noise((96, 96, 48), 12.0, octaves=4, seed=seed)
        assert float(n.abs().max()) == pytest.approx(1.0)
        assert abs(float(n.mean())) < 0.1 * float(n.std()), seed

    def hf(field):  # energy of the gradient relative to the energy of the field: high for fine detail
        grad = sum(float((torch.diff(field, dim=d) ** 2).mean()) for d in range(field.ndim))
        return grad / float((field**2).mean())

    for shape in [(128, 128), (64, 64, 48)]:
        one = np.mean([hf(fractal_perlin_noise(shape, 16.0, octaves=1, seed=s)) for s in range(3)])
        four = np.mean([hf(fractal_perlin_noise(shape, 16.0, octaves=4, seed=s)) for s in range(3)])
        assert four > 2.0 * one, (shape, one, four)
        # lower persistence: weaker fine octaves
        low_p = np.mean([hf(fractal_perlin_noise(shape, 16.0, 4, 0.2, seed=s)) for s in range(3)])
        assert one < low_p < four, (shape, one, low_p, four)


def test_field_is_smooth_at_one_octave():
    n = fractal_perlin_noise((64, 64, 32), 16.0, octaves=1, seed=1)
    step = torch.diff(n, dim=0).abs().max()
    assert float(step) < 0.25  # neighbouring voxels differ little (white noise would jump by ~2)
    assert not torch.equal(n, fractal_perlin_noise((64, 64, 32), 16.0, octaves=1, seed=2))


# ----------------------------------------------------------------------------- PerlinNoise


@pytest.mark.parametrize("spatial", [(24, 20), (24, 20, 12)])
@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
def test_type_shape_dtype_device_kept(spatial, kind, dtype):
    base = np.random.default_rng(0).normal(0, 100, (2, *spatial)).astype(dtype)
    img = {"numpy": base, "torch": torch.as_tensor(base), "meta": MetaTensor(torch.as_tensor(base))}[kind]
    before = np.array(base, copy=True)
    out = PerlinNoise(50.0, octaves=3, scale=6.0, seed=1)(img)
    assert type(out) is type(img) and tuple(out.shape) == tuple(img.shape)
    if kind == "numpy":
        assert out.dtype == img.dtype
    else:
        assert out.dtype == img.dtype and out.device == img.device
    np.testing.assert_array_equal(np.asarray(img), before)  # input not changed
    diff = np.asarray(out, float) - before
    assert np.abs(diff).max() <= 50.0 + (0.5 if dtype == "int16" else 1e-3)
    assert np.abs(diff).max() >= 45.0
    np.testing.assert_allclose(diff[0], diff[1], atol=0.51 if dtype == "int16" else 1e-3)  # same for every channel


def test_integer_images_are_rounded_and_clipped():
    img = np.full((1, 16, 16), 32760, np.int16)
    out = PerlinNoise(100.0, scale=4.0, seed=0)(img)
    assert out.dtype == np.int16 and out.max() == 32767 and out.min() < 32760


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_input_stays_on_gpu_and_matches_cpu():
    img = torch.rand(1, 32, 32, 16)
    t = PerlinNoise(0.3, scale=8.0, seed=4)
    out = t(img.cuda())
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), t(img).numpy(), atol=1e-5)


def test_amplitude_zero_and_meta_record():
    img = MetaTensor(torch.rand(1, 16, 16, 8), meta={"perlin_noise": [{"seed": -1}]})
    out = PerlinNoise(0.0, seed=2)(img)
    assert torch.equal(out.as_tensor(), img.as_tensor())
    assert len(out.meta["perlin_noise"]) == 2 and out.meta["perlin_noise"][-1]["seed"] == 2
    assert len(img.meta["perlin_noise"]) == 1  # the input's meta is not changed


# ----------------------------------------------------------------------------- RandPerlinNoise


def test_random_transform_replays_from_its_record():
    img = MetaTensor(torch.rand(1, 40, 36, 20))
    t = RandPerlinNoise(prob=1.0, amplitude_range=(0.1, 0.5), scale_range=(4.0, 12.0), octaves=3, persistence=0.7)
    t.set_random_state(5)
    for _ in range(3):
        out = t(img)
        params = t.last_params
        assert 0.1 <= params["amplitude"] <= 0.5 and 4.0 <= params["scale"] <= 12.0
        assert params["octaves"] == 3 and params["persistence"] == 0.7
        assert float((out - img).abs().max()) <= params["amplitude"] * (1 + 1e-5)
        assert out.meta["perlin_noise"][-1] == params
        replay = PerlinNoise(**out.meta["perlin_noise"][-1])(img)
        assert torch.equal(replay.as_tensor(), out.as_tensor())
        assert torch.equal(t(img, randomize=False).as_tensor(), out.as_tensor())
    # numpy input: the parameters are in last_params
    arr = np.random.default_rng(1).random((1, 30, 30)).astype(np.float32)
    out = t(arr)
    np.testing.assert_array_equal(PerlinNoise(**t.last_params)(arr), out)


def test_set_random_state_reproduces_and_seeds_differ():
    img = torch.rand(1, 32, 32, 16)

    def run(seed):
        t = RandPerlinNoise(prob=0.7, amplitude_range=(0.1, 1.0)).set_random_state(seed)
        return [t(img) for _ in range(4)]

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_prob_zero_leaves_the_input_unchanged():
    img = MetaTensor(torch.rand(1, 16, 16, 8))
    t = RandPerlinNoise(prob=0.0, amplitude_range=1.0)
    out = t(img)
    assert out is img and t.last_params is None and "perlin_noise" not in img.meta
    d = {"image": np.ones((1, 8, 8), np.float32)}
    out = RandPerlinNoised("image", prob=0.0, amplitude_range=1.0)(d)
    assert out["image"] is d["image"] and "image_meta_dict" not in out


def test_prob_is_respected():
    t = RandPerlinNoise(prob=0.3, amplitude_range=1.0, scale_range=4.0).set_random_state(0)
    img = np.zeros((1, 8, 8), np.float32)
    applied = 0
    for _ in range(200):
        out = t(img)
        applied += t.last_params is not None
        assert (out is img) == (t.last_params is None)
    assert 40 <= applied <= 80


# ----------------------------------------------------------------------------- dictionary versions


def test_dict_version_same_field_for_every_key_and_records():
    rng = np.random.default_rng(0)
    data = {
        "image": MetaTensor(torch.as_tensor(rng.random((1, 32, 28, 16)), dtype=torch.float32)),
        "other": rng.random((2, 32, 28, 16)).astype(np.float32),
        "label": np.zeros((1, 32, 28, 16), np.uint8),
    }
    t = RandPerlinNoised(["image", "other", "missing"], prob=1.0, amplitude_range=(1.0, 2.0), allow_missing_keys=True)
    t.set_random_state(1)
    out = t(data)
    d1 = (out["image"] - data["image"]).as_tensor().numpy()[0]
    d2 = out["other"] - data["other"]
    np.testing.assert_allclose(d1, d2[0], atol=1e-6)
    np.testing.assert_allclose(d2[1], d2[0], atol=1e-6)
    assert np.abs(d1).max() > 0.9 and out["label"] is data["label"]
    params = t.last_params
    assert out["image"].meta["perlin_noise"] == [params]
    assert out["other_meta_dict"]["perlin_noise"] == [params]
    # replay with the deterministic dictionary version
    again = PerlinNoised(["image", "other"], **params)(data)
    assert torch.equal(again["image"].as_tensor(), out["image"].as_tensor())
    np.testing.assert_array_equal(again["other"], out["other"])
    # seeding
    t2 = RandPerlinNoiseD(["image", "other", "missing"], prob=1.0, amplitude_range=(1.0, 2.0), allow_missing_keys=True)
    out2 = t2.set_random_state(1)(data)
    np.testing.assert_array_equal(out2["other"], out["other"])
    with pytest.raises(KeyError):
        RandPerlinNoised(["image", "missing"], prob=1.0)(data)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"octaves": 0}, "octaves=0: expected an integer >= 1"),
        ({"octaves": 2.5}, "octaves=2.5"),
        ({"persistence": 0.0}, r"persistence=0.0: expected a value in \(0, 1\]"),
        ({"persistence": 1.5}, "persistence=1.5"),
        ({"scale_range": (0.0, 4.0)}, "scale_range"),
        ({"scale_range": (8.0, 4.0)}, "scale_range"),
        ({"amplitude_range": (-1.0, 1.0)}, "amplitude_range"),
        ({"lacunarity": 0.5}, "lacunarity"),
    ],
)
def test_bad_random_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandPerlinNoise(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"amplitude": 1.0, "scale": 0.0}, r"scale=0.0: expected a lattice cell size > 0"),
        ({"amplitude": 1.0, "scale": -3}, "scale=-3"),
        ({"amplitude": 1.0, "octaves": -1}, "octaves=-1"),
        ({"amplitude": 1.0, "persistence": -0.5}, "persistence=-0.5"),
        ({"amplitude": -1.0}, "amplitude=-1.0"),
        ({"amplitude": 1.0, "seed": None}, "seed or the lattice gradients"),
    ],
)
def test_bad_fixed_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PerlinNoise(**kwargs)


@pytest.mark.parametrize("shape", [(16, 16), (1, 2, 8, 8, 8), (8,)])
def test_images_that_are_not_channel_first_2d_or_3d(shape):
    img = np.zeros(shape, np.float32)
    for t in (PerlinNoise(1.0), RandPerlinNoise(prob=1.0)):
        with pytest.raises(ValueError, match=r"channel-first 2D \(C, H, W\) or 3D \(C, H, W, D\).*ndim 3 or 4"):
            t(img)
    with pytest.raises(ValueError, match="'image'"):
        RandPerlinNoised("image", prob=1.0)({"image": img})


def test_wrong_gradient_lattice():
    with pytest.raises(ValueError, match=r"gradients\[0\]"):
        fractal_perlin_noise((16, 16), 4.0, octaves=1, seed=None, gradients=[np.zeros((2, 3, 3))])
    with pytest.raises(ValueError, match="expected 2 arrays"):
        fractal_perlin_noise((16, 16), 4.0, octaves=2, seed=None, gradients=[np.zeros((2, 9, 9))])


# ----------------------------------------------------------------------------- bundle config


def test_usable_from_a_bundle_config():
    config = {
        "imports": ["$import monai_ext"],
        "aug": {
            "_target_": "RandPerlinNoised",
            "keys": ["image"],
            "prob": 1.0,
            "amplitude_range": [10.0, 40.0],
            "octaves": 3,
            "persistence": 0.5,
            "scale_range": [8.0, 16.0],
        },
        "pipeline": {"_target_": "Compose", "transforms": ["@aug"]},
    }
    parser = ConfigParser(config)
    aug = parser.get_parsed_content("aug")
    assert isinstance(aug, RandPerlinNoised) and aug.rand_perlin.amplitude_range == (10.0, 40.0)
    pipeline = parser.get_parsed_content("pipeline")
    pipeline.set_random_state(0)
    img = MetaTensor(torch.full((1, 24, 24, 12), -500.0))
    out = pipeline({"image": img})["image"]
    rec = out.meta["perlin_noise"][-1]
    assert 10.0 <= rec["amplitude"] <= 40.0
    assert float((out - img).abs().max()) == pytest.approx(rec["amplitude"], rel=1e-4)
