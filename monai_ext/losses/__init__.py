"""Losses that MONAI lacks."""

from .dice_hausdorff import DiceHausdorffDTLoss
from .gradient_penalty import critic_gradient_penalty  # noqa: F401,E402
from .rhvae_loss import RHVAEElboLoss  # noqa: F401,E402
from .seam_penalty import seam_excess_loss, seam_spikiness  # noqa: F401,E402
from .style_transfer_losses import (  # noqa: F401,E402
    ContentFeatureLoss,
    GramStyleLoss,
    MultiScaleKLLoss,
    StyleFeatureExtractor,
    VariationalStyleTransferLoss,
    gram_matrix,
    random_feature_extractor,
)
from .z_spectrum import bone_z_spectrum_loss, z_spectrum_loss  # noqa: F401,E402
