"""Width scaling: every model that has several widths, each with its own width choices.

SoundFusion's ResNet1D and ResNet2D at 16/32/64 first-stage filters (the paper's s/m/l), and
every other family at its width multipliers expressed in channels: the paper's width with its
halvings and doublings (DCASE2020, L3, torchvision ResNets, VGG), the paper's small and large
filter counts (random-weight CNNs), C from 64 to 1024 (ECAPA); see each model's ``widths``.

``arch`` is sampled first; its width is sampled under ``model_options/<arch>/width`` (an Optuna
parameter keeps one set of choices, and each architecture has its own), and the top-level
``width`` is cleared so the command line's ``--width`` does not apply.
"""
import optuna

from search_spaces import SearchSpace, option_key, register_space
from trainables.models import list_models, model_info

SEGMENT_SECONDS = 5.0
"""The platform's default segment length; models that need longer inputs are left out."""


def fits_segment(name: str) -> bool:
    """Whether ``name`` accepts a default-length segment (the random VGG needs 27 s)."""
    return model_info(name).min_seconds <= SEGMENT_SECONDS


def sample_width(trial: optuna.Trial, arch: str) -> dict:
    """Sample ``arch``'s width among its allowed values (nothing when it has one or none)."""
    widths = model_info(arch).widths or ()
    if len(widths) > 1:
        trial.suggest_categorical(option_key(arch, "width"), list(widths))
    return {"width": None}


SPACE = register_space(
    SearchSpace(
        name="width",
        description="width scaling of every model with several widths (each model's own choices)",
        choices={"arch": tuple(n for n in list_models() if fits_segment(n) and len(model_info(n).widths or ()) > 1)},
        conditional=lambda trial, sampled: sample_width(trial, sampled["arch"]),
    )
)
