"""Loss networks of the ultrasound style transfer (monai_ext.apps.us_variational_style_transfer.loss_networks)."""

import pytest
import torch

from monai_ext.apps.us_variational_style_transfer import (
    LOSS_NETWORKS,
    USContentAutoencoder,
    USStyleClassifier,
    VariationalStyleTransferLoss,
    gram_matrix,
    random_multiscale_feature_extractor,
    train_us_style_classifier,
    us_loss_network,
)


def _textures(n: int, seed: int) -> tuple[torch.Tensor, list[int]]:
    """Half fine noise, half coarse (2x2 blocks) noise, same mean and variance."""
    g = torch.Generator().manual_seed(seed)
    fine = torch.rand(n // 2, 1, 48, 48, generator=g)
    coarse = torch.rand(n - n // 2, 1, 24, 24, generator=g).repeat_interleave(2, -1).repeat_interleave(2, -2)
    return torch.cat([fine, coarse]), [0] * (n // 2) + [1] * (n - n // 2)


def test_random_multiscale_is_reproducible_frozen_and_texture_sensitive():
    a, b = random_multiscale_feature_extractor(seed=3), random_multiscale_feature_extractor(seed=3)
    x, _ = _textures(4, 0)
    fa, fb = a(x), b(x)
    assert len(fa) == 11 and [f.shape[-1] for f in fa] == [48] * 5 + [24] * 5 + [48]
    assert all(torch.equal(p, q) for p, q in zip(fa, fb))
    assert not any(p.requires_grad for p in a.parameters())
    assert not torch.equal(random_multiscale_feature_extractor(seed=4)(x)[0], fa[0])
    # the same grain gives close Gram matrices, a different grain distant ones
    g = [gram_matrix(f).flatten(1) for f in fa[:10]]
    d = [sum(float((gi[i] - gi[j]).norm() / gi.norm(dim=1).mean()) for gi in g) for i, j in ((0, 1), (0, 2), (1, 3))]
    assert d[1] > 3 * d[0] and d[2] > 3 * d[0]
    with pytest.raises(ValueError, match="odd"):
        random_multiscale_feature_extractor(kernel_sizes=(4,))


def test_style_classifier_learns_the_texture_and_checkpoints(tmp_path):
    x, y = _textures(32, 1)
    vx, vy = _textures(8, 2)
    out = tmp_path / "style_classifier.pt"
    net, info = train_us_style_classifier(x, y, out=out, epochs=8, crop=16, channels=(4, 8), batch_size=8,
                                          val_images=vx, val_styles=vy)
    assert info["history"][-1]["val_accuracy"] >= 0.75
    assert isinstance(net, USStyleClassifier) and out.is_file()
    ext = us_loss_network("style_classifier", style_classifier=out)
    assert [f.shape[1] for f in ext(vx)] == [4, 8]
    assert torch.allclose(ext(vx)[1], net(vx)[1])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        train_us_style_classifier(x[:, 0], y)
    with pytest.raises(ValueError, match="crop"):
        train_us_style_classifier(x, y, crop=64)


def test_loss_network_names_and_errors(tmp_path):
    assert set(LOSS_NETWORKS) == {"random_multiscale", "random_vgg", "style_classifier", "content_encoder"}
    assert len(us_loss_network("random_vgg")(torch.rand(1, 1, 32, 32))) == 4
    with pytest.raises(FileNotFoundError, match="style_classifier"):
        us_loss_network("style_classifier", style_classifier=tmp_path / "none.pt")
    with pytest.raises(ValueError, match="must be one of"):
        us_loss_network("vgg16")
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="neither"):
        us_loss_network(str(bad))
    module = tmp_path / "module.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), module)
    assert us_loss_network(str(module))(torch.rand(1, 1, 8, 8))[0].shape == (1, 2, 6, 6)


def test_separate_content_extractor_feeds_only_the_perceptual_term():
    style_net = random_multiscale_feature_extractor(kernel_sizes=(3, 5), channels=4)
    content_net = USContentAutoencoder(channels=(4, 8)).encoder
    from monai_ext.apps.us_variational_style_transfer import StyleFeatureExtractor

    loss = VariationalStyleTransferLoss(style_net, content_weights=[1, 1], style_weights=[1] * 5,
                                        content_extractor=StyleFeatureExtractor(content_net))
    x, _ = _textures(4, 3)
    mus = [torch.zeros(4, 2)]
    loss(x[:2], x[:2], x[2:], mus, [torch.zeros(4, 2)])
    assert loss.last_terms["content_loss"] == 0.0 and loss.last_terms["style_loss"] > 0
    with pytest.raises(ValueError, match="content_weights: 4 layer weights given for 2"):
        VariationalStyleTransferLoss(style_net, content_weights=[1] * 4, style_weights=[1] * 5,
                                     content_extractor=StyleFeatureExtractor(content_net))(x, x, x, mus, mus)


def test_loss_network_probe_on_tiny_data(tmp_path):
    """The study step that chose the loss network (configs/study_loss_network.yaml), tiny settings."""
    import json

    from monai_ext.apps.us_variational_style_transfer import loss_network_probe, prepare_style_classifier
    from monai_ext.phantoms import synthesize_us_dataset

    data = tmp_path / "data"
    synthesize_us_dataset(data, subjects=12, styles=["gel_phantom", "handheld_curvilinear"], shape=(64, 64),
                          progress=False)
    ckpt = tmp_path / "clf.pt"
    info = prepare_style_classifier(str(data), str(ckpt), epochs=2)
    assert ckpt.is_file() and len(info["history"]) == 2 and "val_accuracy" in info["history"][-1]
    for name in ("random_multiscale", "style_classifier"):
        res = loss_network_probe(name, str(data), str(tmp_path / f"{name}.json"), style_classifier=str(ckpt), steps=3)
        assert json.loads((tmp_path / f"{name}.json").read_text())["network"] == name
        assert 0.0 <= res["retrieval_accuracy"] <= 1.0 and res["pairs"] >= 1 and res["texture_synthesis_ratio"] > 0
        assert res["mean_abs_change_from_content"] > 0  # the pixels moved towards the reference Gram matrices
