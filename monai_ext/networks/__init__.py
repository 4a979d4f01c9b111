"""Networks that MONAI lacks. The current bundles use MONAI networks directly."""
from .ctsgan import (  # noqa: F401,E402
    CTSGANCritics,
    CTSGANGenerator,
    CTSGANSlabCritic,
    CTSGANSliceCritic,
    slice_overlap_disagreement,
    slices_to_volume,
    volume_to_slices,
)
from .rhvae import RiemannianHamiltonianVAE, RiemannianLatentMetric, load_rhvae, tempering_schedule  # noqa: F401,E402
from .manifold_samplers import (  # noqa: F401,E402
    MetricHMCSampler,
    PriorLatentSampler,
    RiemannianRandomWalkSampler,
    generate_images,
    geodesic_shoot,
    make_latent_sampler,
)
from .us_style_transfer import (  # noqa: F401,E402
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
from .nodule_inpainting import INPAINT_MODES, NoduleInpaintingGenerator, NodulePairCritic, hu_to_unit, unit_to_hu  # noqa: F401,E402
