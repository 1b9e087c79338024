"""Model zoo: every architecture of the papers, one file per family, one registry.

>>> from trainables.models import create_model, list_models
>>> list_models("resnet*")
['resnet1d', 'resnet2d']
"""
from trainables.models._registry import (
    ModelConfigError,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    num_parameters,
    register_model,
)
from trainables.models import dcase2020, ecapa, openl3, random_cnn, soundfusion  # noqa: F401  (register their models)

__all__ = [
    "ModelConfigError",
    "ModelInfo",
    "create_model",
    "list_models",
    "model_info",
    "num_parameters",
    "register_model",
]
