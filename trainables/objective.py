"""What "better" means, in one place: the validation metric trials are ranked on, its direction,
the tie-break, and the checkpoints a trial keeps.

The scheduler (ASHA), the searcher (Optuna), the checkpoint policy of every trial, the results
store's "best epoch" and the reports all rank with the names and functions below, so they never
disagree about which epoch of which trial is the best one.
"""
METRIC = "val_clip_acc"
"""Validation clip accuracy (majority vote over a clip's segments): what users read and compare."""

MODE = "max"

KEEP_CHECKPOINTS = 2
"""Checkpoints a trial keeps, the best by :data:`METRIC` (Tune deletes the others)."""


def rank_key(metrics: dict) -> tuple[float, float]:
    """Sort key of one epoch's metrics, larger is better: :data:`METRIC`, then the lower
    validation loss (clip accuracy moves in steps of one clip, so ties are common)."""
    return metrics.get(METRIC, 0.0), -metrics.get("val_loss", 0.0)


def checkpoint_config(config_type):
    """The checkpoint policy as Tune's or Train's ``CheckpointConfig`` (``config_type``)."""
    return config_type(num_to_keep=KEEP_CHECKPOINTS, checkpoint_score_attribute=METRIC, checkpoint_score_order=MODE)
