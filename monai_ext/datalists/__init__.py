"""Dataset lists (MONAI decathlon-style items) for real public data sets a user already has on disk: one
module per data set layout.
"""

from __future__ import annotations

from .case_split import split_cases
from .adam_aneurysm import adam_aneurysm_datalist
from .landmark_tables import LANDMARK_IMAGE_SUFFIXES, landmark_table_datalist, radiograph_images, read_landmark_table
from .adaptor_frames import ADAPTOR_DOMAINS, ADAPTOR_FRAME_SUFFIXES, adaptor_frame_datalist, read_labelme_points
from .brats import BRATS_CLASSES, BRATS_LABEL_MAPPINGS, BRATS_MODALITIES, brats_datalist
from .connectome import CONNECTOME_LABELS_CSV, connectome_datalist, connectome_files, read_connectome_labels
from .covid_radiography import COVID_RADIOGRAPHY_CLASSES, covid_radiography_datalist
from .covid19_ct_seg import (
    COVID19_CT_SEG_CASES,
    COVID19_CT_SEG_FOLDS,
    COVID19_CT_SEG_LABEL_FOLDERS,
    covid19_ct_seg_datalist,
    write_covid19_ct_seg_datalist,
)
from .fewshot import FEWSHOT_DATALIST_NAME, fewshot_datalist
from .histo_tasks import HISTO_TILE_SUFFIXES, histo_task_datalist, read_histo_task
from .json_lists import (
    absolute_item,
    check_fold,
    check_listed_files,
    read_json_file,
)
from .labelled_pairs import (
    LABEL_MAPPING_PRESETS,
    PAIR_FOLDERS,
    TOTALSEGMENTATOR_LUNG_LOBES,
    TOTALSEGMENTATOR_V2_LUNG_LOBE_VALUES,
    labelled_pairs_datalist,
    resolve_label_mapping,
)
from .labelled_patches import (
    PATCH_IMAGE_SUFFIXES,
    check_rgb_patches,
    labelled_patch_datalist,
    patch_images,
    read_patch_labels,
)
from .lidc_idri import lidc_idri_datalist, lidc_xml_files, read_lidc_nodules
from .lits import LITS_LABELS, liver_ct_cases, lits_datalist
from .joint_msd import joint_msd_datalist, msd_label_names
from .msd import msd_datalist
from .nlst import nlst_datalist
from .oasis import (
    OASIS1_CSV_NAME,
    oasis1_datalist,
    read_oasis1_clinical,
    write_oasis1_slice_dataset,
)
from .sklearn_digits import (
    digit_class_counts,
    load_sklearn_digits,
    reduced_digits_split,
    stack_images,
)
from .ultrasound import (
    ultrasound_datalist,
    ultrasound_image_size,
    ultrasound_style_datalist,
)

__all__ = [
    "adam_aneurysm_datalist",
    "ADAPTOR_DOMAINS",
    "ADAPTOR_FRAME_SUFFIXES",
    "adaptor_frame_datalist",
    "LANDMARK_IMAGE_SUFFIXES",
    "landmark_table_datalist",
    "radiograph_images",
    "read_landmark_table",
    "read_labelme_points",
    "HISTO_TILE_SUFFIXES",
    "check_rgb_patches",
    "patch_images",
    "histo_task_datalist",
    "read_histo_task",
    "COVID_RADIOGRAPHY_CLASSES",
    "covid_radiography_datalist",
    "joint_msd_datalist",
    "msd_label_names",
    "CONNECTOME_LABELS_CSV",
    "connectome_datalist",
    "connectome_files",
    "read_connectome_labels",
    "PATCH_IMAGE_SUFFIXES",
    "labelled_patch_datalist",
    "read_patch_labels",
    "split_cases",
    "digit_class_counts",
    "load_sklearn_digits",
    "reduced_digits_split",
    "stack_images",
    "BRATS_CLASSES",
    "BRATS_LABEL_MAPPINGS",
    "BRATS_MODALITIES",
    "brats_datalist",
    "COVID19_CT_SEG_CASES",
    "covid19_ct_seg_datalist",
    "COVID19_CT_SEG_FOLDS",
    "COVID19_CT_SEG_LABEL_FOLDERS",
    "write_covid19_ct_seg_datalist",
    "fewshot_datalist",
    "FEWSHOT_DATALIST_NAME",
    "absolute_item",
    "check_fold",
    "check_listed_files",
    "read_json_file",
    "LABEL_MAPPING_PRESETS",
    "labelled_pairs_datalist",
    "PAIR_FOLDERS",
    "resolve_label_mapping",
    "TOTALSEGMENTATOR_LUNG_LOBES",
    "TOTALSEGMENTATOR_V2_LUNG_LOBE_VALUES",
    "lidc_idri_datalist",
    "lidc_xml_files",
    "read_lidc_nodules",
    "LITS_LABELS",
    "liver_ct_cases",
    "lits_datalist",
    "msd_datalist",
    "nlst_datalist",
    "OASIS1_CSV_NAME",
    "oasis1_datalist",
    "read_oasis1_clinical",
    "write_oasis1_slice_dataset",
    "ultrasound_datalist",
    "ultrasound_image_size",
    "ultrasound_style_datalist",
]
