"""One experiment: its configuration (:mod:`.config`), the search (:mod:`.search`), its data
(:mod:`.data`), scoring (:mod:`.evaluation`), the pre-flight shared with ``probe``
(:mod:`.preflight`) and the run itself (:mod:`.run`).

>>> from soundsweep.experiment import ExperimentConfig, run_experiment
>>> summary = run_experiment(ExperimentConfig(space="augmentation", num_samples=4))
"""
from soundsweep.experiment.config import ExperimentConfig

__all__ = ["ExperimentConfig", "ExperimentSummary", "run_experiment"]


def __getattr__(name: str):
    """``run_experiment`` and ``ExperimentSummary`` on first use: the run imports Ray, Tune and
    torch, and the command line reads :class:`ExperimentConfig` (its flags) without them."""
    if name not in ("ExperimentSummary", "run_experiment"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from soundsweep.experiment import run

    return getattr(run, name)
