"""Networks that MONAI lacks. The current bundles use MONAI networks directly."""
from .ctsgan import (  # noqa: F401,E402
    CTSGANCritics,
    CTSGANGenerator,
    CTSGANSlabCritic,
    CTSGANSliceCritic,
    slices_to_volume,
    volume_to_slices,
)
