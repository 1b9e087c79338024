"""One experiment: its configuration (:mod:`.config`), the search (:mod:`.search`), its data
(:mod:`.data`), scoring (:mod:`.evaluation`), the pre-flight shared with ``probe``
(:mod:`.preflight`) and the run itself (:mod:`.run`).

>>> from soundsweep.experiment import ExperimentConfig, run_experiment
>>> summary = run_experiment(ExperimentConfig(space="augmentation", num_samples=4))
"""
from soundsweep.experiment.config import ExperimentConfig
from soundsweep.experiment.run import ExperimentSummary, run_experiment

__all__ = ["ExperimentConfig", "ExperimentSummary", "run_experiment"]
