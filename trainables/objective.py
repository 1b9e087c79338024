"""What "better" means, in one place: the validation metric trials are ranked on, its direction,
the tie-break, and the checkpoints a trial keeps.

The scheduler (ASHA), the searcher (Optuna), the checkpoint policy of every trial, the results
store's "best epoch" and the reports all rank with the names and functions below, so they never
disagree about which epoch of which trial is the best one. A trial's ``select_epoch`` says
whether its best epoch or its last one stands for it (:func:`representative`; Tune always keeps
a trial's latest checkpoint beside its best ones).
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


SELECTIONS = ("best", "last")
"""Which epoch stands for a trial (its ``select_epoch`` setting): ``best``, the highest
:func:`rank_key`; or ``last``, its final epoch (with ``average_last``, the averaged weights).
Picking the best of many epochs on a small validation set picks noise as well as skill: on
the drum-kit benchmark (80 validation clips) the best-validation epoch of a 24-epoch run often
fell before the averaging window and scored lower on test than the final averaged weights."""


def representative(epochs: list, select: str | None) -> list:
    """The epochs of one trial that may stand for it, by its ``select_epoch`` (``None``: best):
    all of them, or its last (``epochs`` items are metrics dicts or store rows with ``epoch``)."""
    if select != "last" or not epochs:
        return list(epochs)
    number = (lambda e: e["epoch"]) if isinstance(epochs[0], dict) else (lambda e: e.epoch)
    last = max(number(e) for e in epochs)
    return [e for e in epochs if number(e) == last]


def checkpoint_config(config_type):
    """The checkpoint policy as Tune's or Train's ``CheckpointConfig`` (``config_type``)."""
    return config_type(num_to_keep=KEEP_CHECKPOINTS, checkpoint_score_attribute=RANK_METRIC,
                       checkpoint_score_order=MODE)
