"""Random-weight CNN screening (Pons and Serra): every random front-end x {SVM, ELM}, plus the
MFCC baseline, run by the ``screening`` protocol (:mod:`trainables.screening`).

``random-cnn`` takes each front-end at the paper's small width (about 160 features, 112 for the
timbral / temporal family: the size of the 120-value MFCC baseline), so a whole screening
finishes on a laptop; ``random-cnn-paper`` adds the large widths (about 3500 features). The
random VGG needs 27 s inputs and is left out of the platform's 5 s segments. A screening is
exhaustive: the tuner evaluates :meth:`~search_spaces.SearchSpace.grid` in order, classifier
family first, so a small budget still covers the MFCC baseline and several front-ends.
"""
import optuna

from search_spaces import SearchSpace, option_key, register_space
from search_spaces.width import fits_segment, sample_width
from trainables.baselines import MFCC
from trainables.models import list_models, model_info

FRONTENDS = (MFCC, *(n for n in list_models() if model_info(n).family == "random_cnn" and fits_segment(n)))


def small_width(trial: optuna.Trial, arch: str) -> dict:
    """The paper's small filter count for a random front-end (the first of its widths)."""
    return {"width": None} if arch == MFCC else {"width": None, option_key(arch, "width"): model_info(arch).widths[0]}


def both_widths(trial: optuna.Trial, arch: str) -> dict:
    """The paper's small or large filter count, sampled."""
    return {"width": None} if arch == MFCC else sample_width(trial, arch)


def screening_space(name: str, description: str, widths) -> SearchSpace:
    return register_space(
        SearchSpace(
            name=name,
            description=description,
            choices={"classifier": ("svm", "elm"), "arch": FRONTENDS},
            constants={"protocol": "screening"},
            conditional=lambda trial, sampled: widths(trial, sampled["arch"]),
        )
    )


SPACE = screening_space("random-cnn", "Pons & Serra screening: random front-ends (~160 features) and MFCC x SVM/ELM",
                        small_width)
PAPER_SPACE = screening_space("random-cnn-paper", "the same with the ~3500-feature front-ends too", both_widths)
