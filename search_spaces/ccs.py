"""ECAPA-TDNN convolution channel separation (Heo et al.): the paper's (s, c) grid, FSA off/on.

Splits 512/512, 256/768, 256/1024, 512/1024 (stop/continuous channels at C = 1024) on
``ecapa_ccs`` and ``ecapa_ccs_fsa``: 8 configurations. ``ccs`` scales every channel count,
Last-Conv included, to C = 128 so it finishes on a laptop; ``ccs-paper`` is the same grid at the
paper's C = 1024 with Last-Conv 1536.
"""
import optuna

from search_spaces import SearchSpace, option_key, register_space
from trainables.models import model_info
from trainables.models.ecapa import PAPER_C, SPLITS

LAPTOP_C = 128
PAPER_LAST = 1536


def ecapa_options(trial: optuna.Trial, arch: str, width: int) -> dict:
    """Sample a CCS split for ``arch`` (if it has one) and fix its width and the Last-Conv scaled
    with it, all under ``model_options/<arch>/``."""
    if "split" in model_info(arch).options:
        trial.suggest_categorical(option_key(arch, "split"), list(SPLITS))
    return {"width": None, option_key(arch, "width"): width, option_key(arch, "last_channels"): PAPER_LAST * width // PAPER_C}


def ccs_space(name: str, channels: int) -> SearchSpace:
    return register_space(
        SearchSpace(
            name=name,
            description=f"ECAPA-TDNN CCS (s, c) splits x FSA off/on at C = {channels}",
            choices={"arch": ("ecapa_ccs", "ecapa_ccs_fsa")},
            conditional=lambda trial, sampled: ecapa_options(trial, sampled["arch"], channels),
        )
    )


SPACE = ccs_space("ccs", LAPTOP_C)
PAPER_SPACE = ccs_space("ccs-paper", PAPER_C)
