"""MultiScaleSumUNet (Kayalibay et al. 2017): shapes for every switch, what each switch changes, size checks,
TorchScript / ONNX export, and that a tiny model learns a tiny segmentation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from monai_ext.networks import MultiScaleSumUNet

CH = (2, 4, 8)
ST = (2, 2)
SIZES = {2: (8, 12), 3: (8, 4, 12)}  # not cubic; each size divisible by prod(ST) = 4


def _net(spatial_dims: int, **kw) -> MultiScaleSumUNet:
    args = {"spatial_dims": spatial_dims, "in_channels": 2, "out_channels": 3, "channels": CH, "strides": ST}
    return MultiScaleSumUNet(**{**args, **kw})


def _x(spatial_dims: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, *SIZES[spatial_dims], generator=g)


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "spatial_dims,skip_mode,long_skips,multiscale",
    list(itertools.product((2, 3), ("sum", "concat"), (True, False), (True, False))),
)
def test_output_shape_for_every_switch(spatial_dims, skip_mode, long_skips, multiscale):
    torch.manual_seed(0)
    net = _net(spatial_dims, skip_mode=skip_mode, long_skips=long_skips, multiscale=multiscale)
    x = _x(spatial_dims)
    y = net(x)
    assert y.shape == (2, 3, *SIZES[spatial_dims])
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert net.input_block.conv.weight.grad.abs().sum() > 0  # the full-resolution block is trained


def _head_names(net: MultiScaleSumUNet) -> list[str]:
    return sorted({n.rsplit(".head.", 1)[0] for n, _ in net.named_parameters() if ".head." in n})


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_multiscale_heads_exist_learn_and_are_summed(spatial_dims):
    torch.manual_seed(0)
    on = _net(spatial_dims, multiscale=True)
    off = _net(spatial_dims, multiscale=False)
    assert _head_names(on) == ["up.0", "up.1"]  # one 1x1 head per decoder scale (coarse -> fine)
    assert _head_names(off) == ["up.1"]  # only the last decoder's map
    # the coarse head maps 2 * CH[1] decoder features to 3 classes (weights + bias): the only extra parameters
    assert _n_params(on) - _n_params(off) == 2 * CH[1] * 3 + 3

    x = _x(spatial_dims)
    on(x).square().mean().backward()
    for name in _head_names(on):
        head = on.get_submodule(name).head.conv
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0, name

    # output = fine map + linearly upsampled coarse map (captured with hooks)
    on.eval()
    maps = {}
    for name in _head_names(on):
        on.get_submodule(name).head.register_forward_hook(lambda m, i, o, name=name: maps.__setitem__(name, o))
    with torch.no_grad():
        y = on(x)
    mode = "bilinear" if spatial_dims == 2 else "trilinear"
    coarse = F.interpolate(maps["up.0"], scale_factor=ST[1], mode=mode, align_corners=False)
    assert maps["up.0"].shape[2:] == tuple(s // ST[1] for s in SIZES[spatial_dims])
    assert torch.allclose(y, maps["up.1"] + coarse, atol=1e-5)
    assert coarse.abs().max() > 1e-3  # the coarse map is not negligible

    # zeroing the coarse head gives exactly the single-scale network with the same weights
    off.load_state_dict({k: v for k, v in on.state_dict().items() if k in off.state_dict()}, strict=True)
    off.eval()
    with torch.no_grad():
        on.up[0].head.conv.weight.zero_()
        on.up[0].head.conv.bias.zero_()
        assert not torch.allclose(on(x), y, atol=1e-4)
        assert torch.allclose(on(x), off(x), atol=1e-6)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_concat_adds_exactly_the_wider_merge_convs(spatial_dims):
    """Concatenation doubles the input of each decoder level's 3x3 conv (C[i] -> 2 * C[i] out); sum adds none."""
    p_sum = _n_params(_net(spatial_dims, skip_mode="sum"))
    p_cat = _n_params(_net(spatial_dims, skip_mode="concat"))
    expected = sum(c * (2 * c) * 3**spatial_dims for c in CH[:-1])
    assert p_cat - p_sum == expected


@pytest.mark.parametrize("skip_mode", ["sum", "concat"])
def test_long_skips_off_decoder_sees_only_the_bottleneck(skip_mode):
    """With the bottleneck output pinned by a hook, the output still depends on the input through the long
    skips, and not at all without them."""
    outs = {}
    for long_skips in (True, False):
        torch.manual_seed(0)
        net = _net(2, skip_mode=skip_mode, long_skips=long_skips).eval()
        pinned = torch.randn(1, CH[-1], *(s // 4 for s in SIZES[2]))
        net.down[-1].register_forward_hook(lambda m, i, o, pinned=pinned: pinned.expand_as(o))
        with torch.no_grad():
            outs[long_skips] = (net(_x(2, batch=1, seed=1)), net(_x(2, batch=1, seed=2)))
    assert not torch.allclose(*outs[True], atol=1e-4)
    assert torch.equal(*outs[False])
    # without long skips the merge mode is irrelevant: same parameters as "sum" (which adds none)
    assert _n_params(_net(2, skip_mode=skip_mode, long_skips=False)) == _n_params(_net(2, skip_mode="sum"))
    if skip_mode == "concat":
        assert _n_params(_net(2, skip_mode="concat")) > _n_params(_net(2, skip_mode="concat", long_skips=False))


def test_bad_sizes_and_arguments_raise():
    net2, net3 = _net(2), _net(3)
    with pytest.raises(ValueError, match=r"divisible by prod\(strides\) = 4.*input shape \[1, 2, 10, 12\]"):
        net2(torch.zeros(1, 2, 10, 12))
    with pytest.raises(ValueError, match=r"input shape \[1, 2, 8, 8, 6\]"):
        net3(torch.zeros(1, 2, 8, 8, 6))
    with pytest.raises(ValueError, match=r"2 spatial dims.*input shape \[1, 2, 8, 8, 8\]"):
        net2(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="len\\(strides\\)"):
        MultiScaleSumUNet(2, 1, 2, channels=(4, 8, 16), strides=(2,))
    with pytest.raises(ValueError, match="skip_mode"):
        MultiScaleSumUNet(2, 1, 2, skip_mode="avg")
    with pytest.raises(ValueError, match="spatial_dims"):
        MultiScaleSumUNet(1, 1, 2)
    with pytest.raises(ValueError, match="strides"):
        MultiScaleSumUNet(2, 1, 2, channels=(4, 8), strides=(0,))


@pytest.mark.parametrize(
    "spatial_dims,skip_mode,long_skips,multiscale",
    [(2, "concat", True, True), (2, "sum", False, False), (3, "concat", True, True), (3, "sum", True, False)],
)
def test_torchscript_matches_eager(spatial_dims, skip_mode, long_skips, multiscale):
    torch.manual_seed(0)
    net = _net(spatial_dims, skip_mode=skip_mode, long_skips=long_skips, multiscale=multiscale, dropout=0.1)
    net(_x(spatial_dims, seed=3))  # one training pass, so that the BN running statistics are not the defaults
    net.eval()
    ts = torch.jit.script(net)
    x = _x(spatial_dims)
    with torch.no_grad():
        ref, got = net(x), ts(x)
    assert ref.shape == got.shape == (2, 3, *SIZES[spatial_dims])
    assert torch.allclose(ref, got, atol=1e-5)


def test_onnx_export_matches_eager(tmp_path):
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = _net(2).eval()
    x = _x(2, batch=1)
    path = tmp_path / "net.onnx"
    try:
        torch.onnx.export(net, (x,), str(path), input_names=["input"], output_names=["output"])
    except ImportError as e:  # the dynamo exporter without onnxscript
        pytest.skip(f"onnx export unavailable: {e}")
    onnx.checker.check_model(str(path))
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        ref = net(x)
    assert got.shape == ref.shape == (1, 3, *SIZES[2])
    assert torch.allclose(got, ref, atol=1e-4)


def test_tiny_model_overfits_tiny_segmentation():
    """Bright rectangles on noise: a few dozen Adam steps must take the loss well down and segment them."""
    g = torch.Generator().manual_seed(0)
    n, size = 4, 16
    label = torch.zeros(n, 1, size, size)
    for k in range(n):
        r0, c0 = torch.randint(1, 8, (2,), generator=g).tolist()
        h, w = torch.randint(4, 8, (2,), generator=g).tolist()
        label[k, 0, r0 : r0 + h, c0 : c0 + w] = 1.0
    image = label + 0.3 * torch.randn(n, 1, size, size, generator=g)
    target = label[:, 0].long()

    torch.manual_seed(0)
    net = MultiScaleSumUNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F.cross_entropy(net(image), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert math.isfinite(losses[-1])
    assert losses[-1] < 0.1 * losses[0], losses
    with torch.no_grad():
        pred = net(image).argmax(1)
    dice = 2 * float((pred * target).sum()) / float(pred.sum() + target.sum())
    assert dice > 0.95, dice
