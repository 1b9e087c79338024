"""Folds and seeds as fidelity (``--fidelity runs``): one Tune trial runs a configuration on its
folds and seeds one after another, so that ASHA's rungs count finished runs instead of epochs.

A configuration that ranks low after one fold stops there; one that survives is run on 2, then
4, ... folds and seeds, and what Optuna learns is the mean over the runs it finished.

Run ``i`` is fold ``i // repeats`` with seed repeat ``i % repeats`` (the same mapping as the
one-trial-per-run mode, :func:`~trainables.config.resolve_repeat`). Each run trains
``max_epochs`` epochs with the loop (:func:`~trainables.loop.run`); after its last epoch the
model is tested on the fold's test split. Every report to Tune carries:

- the loop's metrics, with ``epoch`` counted on across runs (run ``i``'s epoch ``e`` is
  ``i * max_epochs + e``) so the results store keeps every epoch of every run under the trial,
  and ``run``, ``run_epoch``, ``fold``, ``repeat`` saying which run it belongs to;
- ``runs_done``, the runs finished (ASHA's time attribute), and ``runs``, a JSON list of them
  (fold, repeat, last-epoch validation clip accuracy and the test metrics);
- ``runs_val_clip_acc`` (:data:`RUNS_METRIC`), the mean validation clip accuracy of the finished
  runs, or of the current run before the first has finished: what ASHA and Optuna rank.

A killed trial resumes from its last checkpoint: next to the loop's checkpoint file it holds
``runs.json``, the runs finished so far and the run the checkpoint belongs to.
"""
import json
import os

import numpy as np
import ray.tune
from ray.tune.search.repeater import TRIAL_INDEX

from trainables.config import TrialConfig, resolve_repeat
from trainables.loop import TuneSession, run
from trainables.model_io import load_trained, predict_split

RUNS_METRIC = "runs_val_clip_acc"
RUNS_DONE = "runs_done"
RUNS_FILE = "runs.json"


def run_count(runtime: dict) -> int:
    """The runs of one configuration: folds (1 without cross-validation) x seed repeats."""
    return max(len(runtime.get("folds") or ()), 1) * runtime.get("repeats", 1)


def run_configuration(config: dict) -> None:
    """Train ``config`` on each of its runs in turn, continuing a restored trial where it stopped."""
    checkpoint = ray.tune.get_checkpoint()
    finished, checkpoint_run = restored_runs(checkpoint)
    for index in range(len(finished), run_count(config["runtime"])):
        cfg = TrialConfig.from_dict(resolve_repeat({**config, TRIAL_INDEX: index}))
        run(cfg, RunSession(cfg, index, finished, checkpoint if index == checkpoint_run else None))


def restored_runs(checkpoint) -> tuple[list[dict], int | None]:
    """The finished runs recorded in ``checkpoint`` and the run it belongs to (``[], None`` for none)."""
    if checkpoint is None:
        return [], None
    with checkpoint.as_directory() as directory:
        with open(os.path.join(directory, RUNS_FILE)) as f:
            state = json.load(f)
    return state["runs"], state["run"]


class RunSession(TuneSession):
    """The loop's session for run ``index`` of a configuration: it resumes from ``checkpoint``
    (``None``: the run starts afresh), tests the run's model after its last epoch and reports
    every epoch with the run's fields (module docstring)."""

    def __init__(self, cfg: TrialConfig, index: int, finished: list[dict], checkpoint):
        super().__init__(cfg)
        self.cfg, self.index, self.finished, self.resume_from = cfg, index, finished, checkpoint

    def checkpoint(self):
        return self.resume_from

    def report(self, metrics: dict, checkpoint) -> None:
        rt = self.cfg.runtime
        epoch = metrics["epoch"]
        if epoch == rt.max_epochs - 1:
            model, frontend = load_trained(checkpoint.path, self.cfg)
            test = predict_split(model, frontend, rt.data_dir, "test")
            self.finished.append({"run": self.index, "fold": rt.fold, "repeat": rt.repeat,
                                  "val_clip_acc": metrics["val_clip_acc"], **test.metrics("test")})
        with open(os.path.join(checkpoint.path, RUNS_FILE), "w") as f:
            json.dump({"runs": self.finished, "run": self.index}, f)
        scores = [r["val_clip_acc"] for r in self.finished] or [metrics["val_clip_acc"]]
        ray.tune.report({
            **metrics, "epoch": self.index * rt.max_epochs + epoch, "run_epoch": epoch, "run": self.index,
            RUNS_DONE: len(self.finished), RUNS_METRIC: float(np.mean(scores)), "runs": json.dumps(self.finished),
        }, checkpoint=checkpoint)
