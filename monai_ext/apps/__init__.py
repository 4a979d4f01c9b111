"""Everything specific to one method, one sub-package per method, named like its bundle (MONAI's ``monai.apps``
pattern). A method's networks, training iteration, workflows and study helpers live here; what several methods
share lives in the generic packages below (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from . import (
    active_learning_cxr,
    adaptor_suture_landmarks,
    aneurysm_tof_mra_detection,
    ao_cone_label_transfer,
    box_supervised_seg,
    brain_tumor_multiscale_unet,
    brainnetgan_connectome,
    cacl_weak_segmentation,
    covid19_ct_fewshot_seg,
    ctsgan_chest_ct_synthesis,
    deepmcat_series_clustering,
    fewshot_dag_xray_landmarks,
    fsnet_joint_training,
    hand_bones_multiscale_unet,
    label_noise_bias_study,
    liver_tumor_ct_seg,
    metahistoseg,
    multiplanar_unet_sparse,
    oneshot_cochlea_landmarks,
    us_inpainting_hpi,
    us_variational_style_transfer,
    vae_manifold_augmentation,
)

__all__ = [
    "active_learning_cxr",
    "adaptor_suture_landmarks",
    "aneurysm_tof_mra_detection",
    "ao_cone_label_transfer",
    "box_supervised_seg",
    "brain_tumor_multiscale_unet",
    "brainnetgan_connectome",
    "cacl_weak_segmentation",
    "covid19_ct_fewshot_seg",
    "ctsgan_chest_ct_synthesis",
    "deepmcat_series_clustering",
    "fewshot_dag_xray_landmarks",
    "fsnet_joint_training",
    "hand_bones_multiscale_unet",
    "label_noise_bias_study",
    "liver_tumor_ct_seg",
    "metahistoseg",
    "multiplanar_unet_sparse",
    "oneshot_cochlea_landmarks",
    "us_inpainting_hpi",
    "us_variational_style_transfer",
    "vae_manifold_augmentation",
]
