"""Model zoo: the dataset-condensation ConvNet family, small-image cross-architecture networks,
and a factory for evaluation models (ours by alias, or any timm backbone).

Importing this package registers the ``lodc_*`` models with timm, so
``timm.create_model('lodc_convnet_d3_w128', num_classes=10, in_chans=1, img_size=28)`` works, and
``timm.data.resolve_data_config({}, model=m)`` then gives 1x28x28 and the model's normalisation.
timm has no plugin entry point: in a fresh process these names exist only after ``import hf_lodc``.
Names ``hf:vit``, ``hf:resnet``, ``hf:convnext``, ``hf:<owner>/<repo>`` build transformers models.
"""

from .convnet import ConvNet
from .factory import EVAL_MODEL_ALIASES, ResizeInput, create_eval_model, list_eval_models
from .hf_transformers import HF_ARCHITECTURES, HFImageClassifier, create_hf_model, list_hf_models
from .small_arch import AlexNetBN, ResNetBN, VGGBN
from .timm_cfg import DEFAULT_STATS

__all__ = [
    "ConvNet",
    "AlexNetBN",
    "VGGBN",
    "ResNetBN",
    "ResizeInput",
    "EVAL_MODEL_ALIASES",
    "create_eval_model",
    "list_eval_models",
    "HF_ARCHITECTURES",
    "HFImageClassifier",
    "create_hf_model",
    "list_hf_models",
    "DEFAULT_STATS",
]
