"""monai_ext.networks.load_pretrained: the three fine-tuning modes of paper 000 (all, decoder, last) on MONAI's UNet
and VNet, frozen parameters (and batch-norm statistics) unchanged by training, trainable ones changed, and errors
that name the weights file and list what does not fit."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet, VNet

from monai_ext.networks import FINETUNE_MODES, finetune_parameter_names, load_pretrained


def _unet(in_channels: int = 1, out_channels: int = 3) -> UNet:
    return UNet(2, in_channels, out_channels, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch")


@pytest.fixture
def source(tmp_path):
    torch.manual_seed(0)
    net = _unet()
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    return net, path


def _train_steps(net: torch.nn.Module, steps: int = 2) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)  # every parameter, as the bundle's optimizer
    net.train()
    for i in range(steps):
        torch.manual_seed(i)
        x, y = torch.rand(4, 1, 16, 16), torch.randint(0, 3, (4, 16, 16))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()


@pytest.mark.parametrize("mode", FINETUNE_MODES)
def test_frozen_parameters_stay_and_trainable_ones_change(source, mode):
    src, path = source
    torch.manual_seed(1)
    net = load_pretrained(_unet(), path, finetune=mode)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for k, v in src.state_dict().items():
        assert torch.equal(before[k], v), k  # loaded
    trainable = set(finetune_parameter_names(net, mode))
    assert trainable == {n for n, p in net.named_parameters() if p.requires_grad}
    _train_steps(net)
    after = net.state_dict()
    for name, _ in net.named_parameters():
        changed = not torch.equal(before[name], after[name])
        assert changed == (name in trainable), (mode, name)
    # batch-norm statistics of the frozen part are kept too; those of the trained part follow the data
    for name in before:
        if name.endswith("running_mean"):
            owner = name[: -len("running_mean")]
            frozen = (owner + "weight") not in trainable
            assert torch.equal(before[name], after[name]) == frozen, (mode, name)


def test_the_parts_of_a_unet(source):
    net = source[0]
    names = [n for n, _ in net.named_parameters()]
    assert finetune_parameter_names(net, "all") == names
    last = finetune_parameter_names(net, "last")
    decoder = finetune_parameter_names(net, "decoder")
    assert last and all(n.startswith("model.2.") for n in last)  # the outermost up block: the class maps
    assert set(last) < set(decoder) < set(names)
    assert {n.split(".2.")[0] for n in decoder} == {"model", "model.1.submodule"}  # one up block per level
    assert not any("submodule.1.submodule" in n for n in decoder)  # the bottom block is encoder
    wrapped = torch.nn.DataParallel(net)
    assert finetune_parameter_names(wrapped, "decoder") == decoder


def test_vnet_and_other_networks():
    vnet = VNet(spatial_dims=3, in_channels=1, out_channels=2)
    assert all(n.startswith("out_tr.") for n in finetune_parameter_names(vnet, "last"))
    assert {n.split(".")[0] for n in finetune_parameter_names(vnet, "decoder")} == {
        "up_tr256", "up_tr128", "up_tr64", "up_tr32", "out_tr"}
    plain = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    assert finetune_parameter_names(plain, "last") == ["2.weight", "2.bias"]
    with pytest.raises(ValueError, match="decoder of a Sequential is not known"):
        finetune_parameter_names(plain, "decoder")
    with pytest.raises(ValueError, match="finetune must be one of"):
        finetune_parameter_names(plain, "encoder")


def test_wrapped_and_prefixed_state_dicts_load(source, tmp_path):
    src, _ = source
    for i, state in enumerate(({"model": src.state_dict()}, {f"module.{k}": v for k, v in src.state_dict().items()})):
        path = tmp_path / f"w{i}.pt"
        torch.save(state, path)
        net = load_pretrained(_unet(), path, finetune="last")
        assert all(torch.equal(net.state_dict()[k], v) for k, v in src.state_dict().items())


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(FileNotFoundError, match=f"pretrained weights {missing}: no such file"):
        load_pretrained(_unet(), missing)


def test_weights_that_do_not_fit_are_named_with_the_mismatches(source, tmp_path):
    _, path = source
    net = _unet(in_channels=3)  # a 2.5D network (3 slices) given 2D weights
    keep = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError) as excinfo:
        load_pretrained(net, path)
    text = str(excinfo.value)
    assert str(path) in text and "do not fit the network" in text
    assert "model.0.conv.unit0.conv.weight: file (4, 1, 3, 3) vs network (4, 3, 3, 3)" in text
    assert all(torch.equal(net.state_dict()[k], v) for k, v in keep.items())  # nothing loaded
    assert all(p.requires_grad for p in net.parameters())  # nothing frozen
    bigger = UNet(2, 1, 3, channels=(4, 8, 16, 32), strides=(2, 2, 2), num_res_units=1, norm="batch")
    with pytest.raises(ValueError, match=r"tensor\(s\) of the network not in the file: model\.1\.submodule"):
        load_pretrained(bigger, path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"pretrained weights {junk}: cannot be read"):
        load_pretrained(_unet(), junk)
    torch.save({"epoch": 3}, tmp_path / "dict.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_pretrained(_unet(), tmp_path / "dict.pt")
