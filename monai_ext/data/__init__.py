"""Synthetic data (phantoms) and dataset lists for real public data sets."""
from .fewshot_split import fewshot_segmentation_datalist
from .dataset_lists import (
    COVID19_CT_SEG_FOLDS,
    covid19_ct_seg_datalist,
    fewshot_datalist,
    find_images,
    is_dicom_file,
    msd_datalist,
    write_covid19_ct_seg_datalist,
)
from .chest_ct_phantom import ChestCTCase, generate_chest_ct, phantom_affine  # noqa: F401,E402
from .dicom_series import write_dicom_series  # noqa: F401,E402
from .synthetic_dataset import fewshot_folds, synth, synthesize_dataset  # noqa: F401,E402
from .manifold_augmented_dataset import ManifoldAugmentedDataset, brain_ad_split_lists, class_items, manifold_augmented_items  # noqa: F401,E402
from .ct_volume_dataset import ct_volume_transforms, load_ct_volumes, volume_to_hu  # noqa: F401,E402
from .ctsgan_dataset_lists import (  # noqa: F401,E402
    ctsgan_datalist,
    lidc_idri_datalist,
    nlst_datalist,
    read_lidc_nodules,
)
from .ultrasound_phantom import (  # noqa: F401,E402
    ULTRASOUND_STYLES,
    UltrasoundStyle,
    blend_ultrasound_styles,
    generate_us_anatomy,
    sample_ultrasound_style,
    simulate_bmode,
    synthesize_us_dataset,
    ultrasound_fov_mask,
)
from .ultrasound_dataset_list import ultrasound_datalist, ultrasound_image_size, ultrasound_style_datalist  # noqa: F401,E402
from .brain_ad_benchmark import (  # noqa: F401,E402
    brain_subject_affine,
    generate_brain_subject,
    mni152_t1,
    mni152_tissue_maps,
    render_brain_subject,
    sample_brain_subject_params,
    synthesize_brain_ad_dataset,
)
from .oasis_dataset_list import oasis1_datalist, read_oasis1_clinical, write_oasis1_slice_dataset  # noqa: F401,E402
from .nodule_voi import (  # noqa: F401,E402
    balance_voi_samples,
    central_region_mask,
    crop_voi,
    ct_nodule_vois,
    eraser_pairs,
    injector_pairs,
    inpaint_ct_voi,
    inserted_nodule_vois,
    learned_voi_inserter,
    nodule_voi_samples,
    phantom_nodule_vois,
    sphere_mask,
)
