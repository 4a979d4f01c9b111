"""Ultrasound variational style transfer (DGM4MICCAI 2021): a content autoencoder, a variational style
encoder and an AdaIN decoder, and the style-transfer augmentation. Bundle: ``bundles/us_variational_style_transfer``.
"""

from __future__ import annotations

from .losses import (
    ContentFeatureLoss,
    GramStyleLoss,
    MultiScaleKLLoss,
    StyleFeatureExtractor,
    VariationalStyleTransferLoss,
    gram_matrix,
    random_feature_extractor,
)
from .networks import (
    SwishConvBlock,
    USAdaINDecoder,
    USContentAutoencoder,
    USContentEncoder,
    USStyleEncoder,
    USStyleTransferIteration,
    USVariationalStyleTransfer,
    adaptive_instance_norm,
    load_us_content_encoder,
    load_us_style_transfer,
    save_us_style_checkpoint,
)
from .study import content_preservation, score_fewshot_segmenter, us_style_grid
from .transforms import (
    RandStyleTransfer,
    RandStyleTransferD,
    RandStyleTransferd,
    RandStyleTransferDict,
    StyleInterpolate,
    StyleInterpolateD,
    StyleInterpolated,
    StyleInterpolateDict,
    StyleTransfer,
    StyleTransferD,
    StyleTransferd,
    StyleTransferDict,
    restyle_images,
    style_fewshot_datalist,
)

__all__ = [
    "ContentFeatureLoss",
    "gram_matrix",
    "GramStyleLoss",
    "MultiScaleKLLoss",
    "random_feature_extractor",
    "StyleFeatureExtractor",
    "VariationalStyleTransferLoss",
    "adaptive_instance_norm",
    "load_us_content_encoder",
    "load_us_style_transfer",
    "save_us_style_checkpoint",
    "SwishConvBlock",
    "USAdaINDecoder",
    "USContentAutoencoder",
    "USContentEncoder",
    "USStyleEncoder",
    "USStyleTransferIteration",
    "USVariationalStyleTransfer",
    "content_preservation",
    "score_fewshot_segmenter",
    "us_style_grid",
    "RandStyleTransfer",
    "RandStyleTransferd",
    "RandStyleTransferD",
    "RandStyleTransferDict",
    "restyle_images",
    "style_fewshot_datalist",
    "StyleInterpolate",
    "StyleInterpolated",
    "StyleInterpolateD",
    "StyleInterpolateDict",
    "StyleTransfer",
    "StyleTransferd",
    "StyleTransferD",
    "StyleTransferDict",
]
