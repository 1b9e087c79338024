"""Architecture search over every model family, each with its own sub-space.

``arch`` is sampled over every registered model that accepts a default-length segment; the
model's family then samples its options under ``model_options/<arch>/``: its width among its
allowed values, and for ECAPA also the CCS (s, c) split, with Last-Conv scaled to the width.
"""
import optuna

from search_spaces import SearchSpace, option_key, register_space
from search_spaces.ccs import ecapa_options
from search_spaces.width import fits_segment, sample_width
from trainables.models import list_models, model_info


def sample_ecapa(trial: optuna.Trial, arch: str) -> dict:
    width = trial.suggest_categorical(option_key(arch, "width"), list(model_info(arch).widths))
    return ecapa_options(trial, arch, width)


SUBSPACES = {"ecapa": sample_ecapa}
"""Family -> sub-space; the others sample their width only (:func:`sample_width`)."""


def sample_family(trial: optuna.Trial, sampled: dict) -> dict:
    arch = sampled["arch"]
    return SUBSPACES.get(model_info(arch).family, sample_width)(trial, arch)


SPACE = register_space(
    SearchSpace(
        name="architecture",
        description="every model family, each with its own width / channel-split sub-space",
        choices={"arch": tuple(n for n in list_models() if fits_segment(n))},
        conditional=sample_family,
    )
)
