"""The COVID bundle's folders and the tiny overrides its tests train with (6 mm voxels, 32^3 patches, a small U-Net,
CPU), shared by the bundle's test modules."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "covid19_ct_fewshot_seg"
CONFIGS = BUNDLE / "configs"
TINY = {
    "pixdim": [6.0, 6.0, 6.0],
    "patch_size": [32, 32, 32],
    "roi_size": [32, 32, 32],
    "network_def#channels": [4, 8, 16, 32],
    "network_def#num_res_units": 1,
    "device": "$torch.device('cpu')",
}
