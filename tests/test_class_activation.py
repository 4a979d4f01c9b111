"""Grad-CAM maps of a segmentation network (monai_ext.transforms.SegmentationGradCAM / SegmentationGradCAMd)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.nets import UNet
from torch import nn

from monai_ext.transforms import SegmentationGradCAM, SegmentationGradCAMd


class _CubeNet(nn.Module):
    """features = relu(x); logits: background 0.5 - features, class 1 features - 0.5. On an image that is 1 in a cube
    and 0 elsewhere the network labels the cube class 1, and the answer is known: class 1's Grad-CAM is the cube."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(1, 1, 1)
        self.act = nn.ReLU()
        self.head = nn.Conv3d(1, 2, 1)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.features.bias.zero_()
            self.head.weight.copy_(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1, 1))
            self.head.bias.copy_(torch.tensor([0.5, -0.5]))

    def forward(self, x):
        return self.head(self.act(self.features(x)))


def _cube(shape=(20, 18, 14)):
    img = torch.zeros(1, *shape)
    img[0, 5:12, 4:10, 3:9] = 1.0
    return img


def test_the_map_is_high_where_the_class_is():
    img = _cube()
    cam = SegmentationGradCAM(_CubeNet(), "features", class_index=1)(img)
    assert cam.shape == img.shape and cam.dtype == torch.float32 and torch.isfinite(cam).all()
    inside, outside = cam[img > 0.5], cam[img < 0.5]
    assert float(inside.min()) > 0.99 and float(outside.max()) < 0.01
    # the background's logits fall with the feature: its map has no positive part, all zeros
    assert float(SegmentationGradCAM(_CubeNet(), "features", class_index=0)(img).abs().max()) == 0.0


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_unet_map_in_an_evaluator_context_leaves_the_network_alone(context):
    torch.manual_seed(0)
    net = UNet(3, 1, 4, [4, 8, 16, 32], [2, 2, 2], num_res_units=1, norm="batch").train()
    img = MetaTensor(torch.rand(1, 21, 19, 13), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    guard = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with guard:
        cam = SegmentationGradCAM(net, "model.1.submodule.2", class_index=3)(img)
    assert isinstance(cam, MetaTensor) and cam.shape == (1, 21, 19, 13)
    torch.testing.assert_close(cam.affine, img.affine)
    assert torch.isfinite(cam).all() and float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    assert net.training and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks for m in net.modules())


def test_dictionary_version_and_numpy_input():
    img = _cube()
    d = SegmentationGradCAMd("image", _CubeNet(), "features", class_index=1, output_keys="cam")({"image": img})
    assert set(d) == {"image", "cam"} and d["image"] is img and d["cam"].shape == img.shape
    out = SegmentationGradCAM(_CubeNet(), "features", class_index=1)(img.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, d["cam"].numpy(), atol=1e-6)


def test_bad_layer_or_class_is_named():
    with pytest.raises(ValueError, match="'decoder'.*not a layer"):
        SegmentationGradCAM(_CubeNet(), "decoder")
    with pytest.raises(ValueError, match="class_index 5 is not an output class"):
        SegmentationGradCAM(_CubeNet(), "features", class_index=5)(_cube())
