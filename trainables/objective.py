"""What "better" means, in one place: the validation metric trials are ranked on, its direction,
the tie-break, and the checkpoints a trial keeps.

The scheduler (ASHA), the searcher (Optuna), the checkpoint policy of every trial, the results
store's "best epoch" and the reports all rank with the names and functions below, so they never
disagree about which epoch of which trial is the best one.
"""
METRIC = "val_clip_acc"
"""Validation clip accuracy (majority vote over a clip's segments): what users read and compare."""

RANK_METRIC = "val_score"
"""What ASHA, Optuna and the checkpoint policy rank single-objective trials on: validation clip
accuracy with ties broken by the mean true-class probability of the validation clips
(:meth:`~trainables.evaluate.Predictions.score`). Clip accuracy alone moves in steps of one clip,
so on small validation sets many trials tie at a rung and ASHA cannot tell them apart."""

MODE = "max"

KEEP_CHECKPOINTS = 2
"""Checkpoints a trial keeps, the best by :data:`RANK_METRIC` (Tune deletes the others)."""


def rank_key(metrics: dict) -> tuple[float, float]:
    """Sort key of one epoch's metrics, larger is better: :data:`RANK_METRIC` (:data:`METRIC` for
    metrics recorded without it), then the lower validation loss."""
    return metrics.get(RANK_METRIC, metrics.get(METRIC, 0.0)), -metrics.get("val_loss", 0.0)


def checkpoint_config(config_type):
    """The checkpoint policy as Tune's or Train's ``CheckpointConfig`` (``config_type``)."""
    return config_type(num_to_keep=KEEP_CHECKPOINTS, checkpoint_score_attribute=RANK_METRIC,
                       checkpoint_score_order=MODE)
