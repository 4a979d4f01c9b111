"""CBAM attention (HPI's convolution blocks): the channel-then-spatial formula, shapes, TorchScript."""

import pytest
import torch
import torch.nn.functional as F

from monai_ext.networks import CBAMBlock, ConvNormSwishCBAM


def test_cbam_matches_the_formula():
    torch.manual_seed(0)
    block = CBAMBlock(2, 8, reduction=4, spatial_kernel=3).eval()
    x = torch.randn(2, 8, 10, 12)
    w1, b1 = block.mlp[0].weight, block.mlp[0].bias
    w2, b2 = block.mlp[2].weight, block.mlp[2].bias

    def mlp(v):  # (B, C) descriptors through the shared two-layer MLP
        return F.linear(F.relu(F.linear(v, w1[:, :, 0, 0], b1)), w2[:, :, 0, 0], b2)

    mc = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))[:, :, None, None]
    y = x * mc
    ms = torch.sigmoid(F.conv2d(torch.stack([y.mean(1), y.amax(1)], 1), block.spatial.weight, block.spatial.bias, padding=1))
    torch.testing.assert_close(block(x), y * ms)


def test_shapes_3d_and_torchscript():
    block = ConvNormSwishCBAM(2, 1, 16, dilation=2).eval()
    x = torch.rand(2, 1, 20, 24)
    assert block(x).shape == (2, 16, 20, 24)
    torch.testing.assert_close(torch.jit.script(block)(x), block(x))
    assert CBAMBlock(3, 4, reduction=8)(torch.rand(1, 4, 5, 6, 7)).shape == (1, 4, 5, 6, 7)
    with pytest.raises(ValueError, match="odd"):
        CBAMBlock(2, 4, spatial_kernel=4)
