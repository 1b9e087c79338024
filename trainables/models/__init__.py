"""Model zoo: every architecture of the papers, one file per family, one registry.

Families: ``soundfusion`` (Prodan et al.), ``dcase2020`` (Hu et al.), ``random_cnn`` (Pons and
Serra), ``openl3`` (Cramer et al.), ``ecapa`` (Heo et al.); docs/ZOO.md lists every model.
Every model's class-dependent layers live in its ``classifier`` submodule (what
:func:`load_compatible` may re-initialise).

>>> from trainables.models import create_model, list_models
>>> list_models("resnet*")
['resnet18', 'resnet1d', 'resnet2d', 'resnet34']
>>> model = create_model("ecapa_ccs_fsa", num_classes=10, width=128, split="256/768")
"""
from trainables.models import dcase2020, ecapa, openl3, random_cnn, soundfusion  # noqa: F401  (register their models)
from trainables.models._registry import (
    ModelConfigError,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    num_parameters,
    parameter_count,
    register_model,
    shape_only,
)
from trainables.models._transfer import load_compatible

__all__ = [
    "ModelConfigError",
    "ModelInfo",
    "create_model",
    "list_models",
    "load_compatible",
    "model_info",
    "num_parameters",
    "parameter_count",
    "register_model",
    "shape_only",
]
