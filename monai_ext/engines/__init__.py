"""Training engines and workflow steps that MONAI's engines do not cover as they are."""

from .ctsgan_trainer import CTSGANTrainer  # noqa: F401
from .gradient_guard import GradientGuard  # noqa: F401
from .distributed import average_gradients, broadcast_module, is_distributed  # noqa: F401
from .ctsgan_workflows import (  # noqa: F401
    ctsgan_montage,
    evaluate_ctsgan,
    generate_ctsgan_volumes,
    sample_ctsgan_volumes,
)
from .nodule_inpainting_trainer import NoduleInpaintingTrainer, inpainting_batch  # noqa: F401,E402
