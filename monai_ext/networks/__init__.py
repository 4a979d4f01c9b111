"""Generic networks that MONAI lacks (among them a U-Net with one head per task), and transfer learning (loading another model's weights and fine-tuning a part).
The methods' own networks live in ``monai_ext.apps.<method>``.
"""

from __future__ import annotations

from .cbam import CBAMBlock, ConvNormSwishCBAM
from .brainnetcnn import BrainNetCNN, EdgeToEdgeConv, EdgeToNodeConv, NodeToGraphConv
from .deep_adaptive_graph import DeepAdaptiveGraph, LandmarkGraphNetwork
from .graph_conv import DenseGraphConv, DenseGraphConvClassifier
from .multi_head import PADDED_LOGIT, MultiHeadSegNet
from .multiscale_unet import MultiScaleSumUNet
from .narrow_resnet_encoder import NarrowResNetEncoder
from .parallel import unwrap_parallel
from .resnet_translator import ResNetTranslator
from .transfer import FINETUNE_MODES, finetune_parameter_names, load_pretrained
from .two_sample_cnn import TwoSampleDiscriminatorCNN
from .vgg_bn import VGG16_BN_BLOCKS, VGGBNFeatureNet

__all__ = [
    "ResNetTranslator",
    "NarrowResNetEncoder",
    "MultiHeadSegNet",
    "PADDED_LOGIT",
    "CBAMBlock",
    "ConvNormSwishCBAM",
    "TwoSampleDiscriminatorCNN",
    "VGG16_BN_BLOCKS",
    "VGGBNFeatureNet",
"BrainNetCNN", "DeepAdaptiveGraph", "LandmarkGraphNetwork", "DenseGraphConv", "DenseGraphConvClassifier", "EdgeToEdgeConv", "EdgeToNodeConv",
           "NodeToGraphConv", "FINETUNE_MODES", "MultiScaleSumUNet", "finetune_parameter_names", "load_pretrained", "unwrap_parallel"]
