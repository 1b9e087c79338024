"""The training recipe itself: learning rate, weight decay, schedule, warm-up, batch size, mixup
and label smoothing (the knobs of :class:`trainables.recipes.TrainingConfig`).

The learning rate and weight decay are sampled on log-spaced grids (TPE treats them as
categories; ``--search grid`` walks them). The schedule decides what else exists: a warm-up only
under ``cosine`` and ``cosine_restarts`` (``onecycle`` ramps up by itself, ``constant`` has
none), and the first cycle's length only under ``cosine_restarts``. Everything not sampled comes
from ``--recipe``. Combine it with another space: ``--space augmentation+recipe``,
``--space width+recipe``.
"""
import optuna

from search_spaces import SearchSpace, register_space

WARMUP_EPOCHS = (0.0, 1.0, 2.0)
RESTART_EPOCHS = (1.0, 2.0, 4.0)


def schedule_options(trial: optuna.Trial, schedule: str) -> dict:
    """The parameters that exist under ``schedule``."""
    if schedule in ("cosine", "cosine_restarts"):
        trial.suggest_categorical("warmup_epochs", list(WARMUP_EPOCHS))
    if schedule == "cosine_restarts":
        trial.suggest_categorical("restart_epochs", list(RESTART_EPOCHS))
    return {}


SPACE = register_space(
    SearchSpace(
        name="recipe",
        description="training recipe: lr, weight decay (log grids), schedule (+ warm-up, restarts), batch size, "
                    "mixup, label smoothing",
        choices={
            "lr": (3e-4, 1e-3, 2e-3, 5e-3, 1e-2),
            "weight_decay": (1e-4, 1e-3, 1e-2, 5e-2),
            "schedule": ("constant", "cosine", "cosine_restarts", "onecycle"),
            "batch_size": (16, 32, 64),
            "mixup_alpha": (0.0, 0.2, 0.4),
            "label_smoothing": (0.0, 0.1),
        },
        conditional=lambda trial, sampled: schedule_options(trial, sampled["schedule"]),
        max_warmup_epochs=max(WARMUP_EPOCHS),
    )
)

FIXED = register_space(
    SearchSpace(
        name="fixed",
        description="no search: one configuration, the --recipe and --arch as given (a baseline run)",
    )
)
