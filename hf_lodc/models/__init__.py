"""Model zoo: the dataset-condensation ConvNet family, small-image cross-architecture networks,
and a factory for evaluation models (ours by alias, or any timm backbone).

Importing this package registers the ``lodc_*`` models with timm, so
``timm.create_model('lodc_convnet_d3_w128', num_classes=10, in_chans=1, img_size=28)`` works.
"""

from .convnet import ConvNet
from .factory import EVAL_MODEL_ALIASES, ResizeInput, create_eval_model, list_eval_models
from .small_arch import AlexNetBN, ResNetBN, VGGBN

__all__ = [
    "ConvNet",
    "AlexNetBN",
    "VGGBN",
    "ResNetBN",
    "ResizeInput",
    "EVAL_MODEL_ALIASES",
    "create_eval_model",
    "list_eval_models",
]
