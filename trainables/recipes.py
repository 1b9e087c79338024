"""Training recipes: how a model is trained, as data.

A :class:`TrainingConfig` holds every training knob of a trial: the optimizer, its learning rate
and weight decay, the learning-rate schedule and its warm-up, the batch size, label smoothing,
gradient clipping, mixup and the averaging of the last epochs' weights. The loop
(:mod:`trainables.loop`) reads it and hard-codes none of it. A :class:`Recipe` is a named set of
such values (plus augmentation knobs), registered like models and spaces; the papers' recipes
are entries whose docstrings cite their values.

>>> from trainables.recipes import get_recipe
>>> get_recipe("ecapa").settings["schedule"]
'cosine'

Resolution order of a trial's settings: :class:`TrainingConfig`'s defaults, then the recipe
(``--recipe``), then single flags (``--lr``, ``--weight-decay``, ...), then what the search space
samples.

This module is data: the command line builds its training flags and lists the recipes from it
(``soundsweep tune --help``), so it imports no torch; :meth:`TrainingConfig.optimizer_for` loads
torch when a trial builds its optimizer. Mixup, which works on tensors, is :mod:`trainables.mixup`.
"""
import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from trainables.objective import SELECTIONS
from trainables.registry import Registry

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "cosine_restarts", "onecycle")
LOGMEL_SCALES = ("standardize", "peak")
"""How the ``logmel`` front-end scales each example's dB values (:class:`trainables.features.LogMel`)."""


def knob(default, help: str, choices: tuple | None = None):
    """A :class:`TrainingConfig` field that is also a ``soundsweep tune`` flag overriding the
    recipe's value (the driver reads ``help`` and ``choices`` from the field's metadata)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainingConfig:
    """Every training knob a recipe, a flag or a search space may set (flat trial settings).

    Attributes:
        optimizer: ``adam``, ``adamw`` (decoupled weight decay) or ``sgd`` (with ``momentum``,
            Nesterov when ``nesterov``).
        lr: peak learning rate (reached after the warm-up).
        weight_decay: applied to weight matrices and kernels only; biases and normalisation
            parameters are never decayed (decaying a BatchNorm scale only fights the next layer).
        schedule: ``constant``; ``cosine`` (from ``lr`` down to ``min_lr`` over the run);
            ``cosine_restarts`` (SGDR: cycles of ``restart_epochs``, each ``restart_mult`` times
            longer than the last); ``onecycle`` (up to ``lr`` over the first 30 % of the run, then
            cosine down to ``min_lr``; ``warmup_epochs`` is not used).
        warmup_epochs: linear warm-up from ``lr / 10`` to ``lr`` over this many epochs (may be
            fractional; at most half of the run), before the schedule starts.
        min_lr: the schedule's floor.
        batch_size: segments per step on one worker.
        label_smoothing: cross-entropy label smoothing.
        grad_clip: clip the gradients' global norm to this (0: off).
        mixup_alpha: mixup of model inputs and targets, ``lambda ~ Beta(alpha, alpha)`` drawn per
            example (0: off).
        average_last: validate and keep the running average of the weights over the last this
            many epochs (snapshot / SWA-style averaging; 0 or 1: off; at most the whole run).
        select_epoch: the epoch that stands for the trial in rankings and becomes its model:
            ``best`` (highest validation score) or ``last`` (its final weights; the averaged
            ones with ``average_last``), see :data:`trainables.objective.SELECTIONS`.
        logmel_scale: how the ``logmel`` front-end scales each example's dB values
            (:class:`~trainables.features.LogMel`): ``standardize`` (zero mean, unit variance) or
            ``peak`` (relative to its loudest bin, floored at -80 dB; for isolated sounds padded
            with silence). Models with another input kind keep their paper's scaling.
    """

    optimizer: str = knob("adamw", "adam, adamw (decoupled weight decay) or sgd (momentum 0.9, Nesterov)",
                          choices=OPTIMIZERS)
    lr: float = knob(2e-3, "peak learning rate, reached after the warm-up")
    weight_decay: float = knob(1e-2, "weight decay of kernels and weight matrices (never biases or norms)")
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = knob("cosine", "constant, cosine (to --min-lr), cosine_restarts (SGDR) or onecycle",
                         choices=SCHEDULES)
    warmup_epochs: float = knob(1.0, "linear warm-up from lr/10 over this many epochs (fractions allowed)")
    min_lr: float = knob(0.0, "the schedule's floor")
    restart_epochs: float = knob(2.0, "cosine_restarts: length of the first cycle in epochs")
    restart_mult: float = knob(2.0, "cosine_restarts: each cycle this many times longer than the last")
    batch_size: int = knob(32, "segments per optimizer step and worker")
    label_smoothing: float = knob(0.0, "cross-entropy label smoothing")
    grad_clip: float = knob(0.0, "clip the gradients' global norm to this (0: off)")
    mixup_alpha: float = knob(0.0, "mixup of inputs and targets, lambda ~ Beta(alpha, alpha) per example (0: off)")
    average_last: int = knob(0, "validate and keep the average of the weights of the last N epochs (0: off)")
    select_epoch: str = knob("best", "the epoch that stands for a trial: best (highest validation score) or last (its "
                             "final weights; with --average-last, the averaged ones)", choices=SELECTIONS)
    logmel_scale: str = knob("standardize", "per-example scaling of the logmel input: standardize (zero mean, unit "
                             "variance) or peak (dB below the loudest bin, floored at -80; for isolated sounds)",
                             choices=LOGMEL_SCALES)

    def check(self, max_epochs: int) -> None:
        """Raise ``ValueError`` naming the flag and the fix for a value that cannot train."""
        flag = {f.name: "--" + f.name.replace("_", "-") for f in fields(self)}
        for f in fields(self):  # every knob with choices, from the metadata its flag is built from
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{flag[f.name]} {getattr(self, f.name)}: choose one of {', '.join(choices)}")
        if not self.lr > 0:
            raise ValueError(f"{flag['lr']} {self.lr}: must be > 0")
        for name in ("weight_decay", "min_lr", "label_smoothing", "grad_clip", "mixup_alpha", "warmup_epochs",
                     "momentum", "average_last"):
            if getattr(self, name) < 0:
                raise ValueError(f"{flag[name]} {getattr(self, name)}: must be >= 0")
        if self.min_lr >= self.lr:
            raise ValueError(f"{flag['min_lr']} {self.min_lr}: must be below --lr {self.lr}")
        if self.label_smoothing >= 1:
            raise ValueError(f"{flag['label_smoothing']} {self.label_smoothing}: must be below 1")
        if self.batch_size < 1:
            raise ValueError(f"{flag['batch_size']} {self.batch_size}: must be at least 1")
        if self.schedule != "onecycle" and self.warmup_epochs > max_epochs:
            raise ValueError(f"{flag['warmup_epochs']} {self.warmup_epochs:g}: longer than the run's {max_epochs} "
                             "epoch(s); shorten it or raise --max-epochs")
        if self.schedule == "cosine_restarts" and (self.restart_epochs <= 0 or self.restart_mult < 1):
            raise ValueError(f"{flag['restart_epochs']}/{flag['restart_mult']}: cycles need a length > 0 and a "
                             "multiplier >= 1")

    def lr_at(self, progress: float, total_epochs: int) -> float:
        """The learning rate after ``progress`` epochs (fractional: steps count) of a run of
        ``total_epochs``. A pure function of progress, so a resumed trial needs no scheduler state."""
        if self.schedule == "onecycle":
            peak = 0.3 * total_epochs
            if progress < peak:
                return self.lr / 25 + (self.lr - self.lr / 25) * progress / peak
            return self._cosine(progress - peak, total_epochs - peak)
        warmup = min(self.warmup_epochs, total_epochs / 2)  # a short run keeps half of itself for the schedule
        if progress < warmup:
            return self.lr * (0.1 + 0.9 * progress / warmup)
        after = progress - warmup
        if self.schedule == "cosine":
            return self._cosine(after, total_epochs - warmup)
        if self.schedule == "cosine_restarts":
            cycle = self.restart_epochs
            while after >= cycle:
                after -= cycle
                cycle *= self.restart_mult
            return self._cosine(after, cycle)
        return self.lr

    def _cosine(self, t: float, span: float) -> float:
        fraction = min(max(t / span, 0.0), 1.0) if span > 0 else 1.0
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * fraction))

    def optimizer_for(self, model: "torch.nn.Module") -> "torch.optim.Optimizer":
        """The optimizer over ``model``'s parameters, weight decay on kernels only."""
        import torch  # here, not at the top: the command line reads this module without torch

        decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov and self.momentum > 0)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=self.lr)
        # Adam's weight decay is L2 added to the gradient, as Keras' kernel regularizers and ECAPA's code do.
        return torch.optim.Adam(groups, lr=self.lr)


@dataclass(frozen=True)
class Recipe:
    """A named training recipe: trial settings (:class:`TrainingConfig` fields and augmentation
    knobs), the epochs its paper trained for (``epochs``: what ``--max-epochs`` defaults to) and
    the input policy it needs (``data``: ``sample_rate``, ``segment_seconds``, ``segment_mode``,
    ``pad``; the defaults of those flags when the recipe is chosen)."""

    name: str
    description: str
    settings: dict = field(default_factory=dict)
    epochs: int | None = None
    data: dict = field(default_factory=dict)


RECIPES: Registry[Recipe] = Registry("recipe")
register_recipe, list_recipes, get_recipe = RECIPES.register, RECIPES.names, RECIPES.lookup


# The recipes. Values come from each paper; each docstring names the section they come from.
SOUNDFUSION_AUGMENT = {"noise_std": 0.02, "gain_db": 12.0, "specaug_p": 1.0, "specaug_max_pct": 0.3,
                       "specaug_freq_masks": 2, "specaug_time_masks": 2}

register_recipe(Recipe(
    "default",
    "SoundSweep's recipe for small audio CNNs trained from scratch: AdamW (lr 2e-3, weight decay 1e-2 on "
    "kernels), one warm-up epoch then cosine decay, mixup 0.2, SpecAugment p 0.5, time shift, pitch +-2 "
    "semitones, speed +-10 %, random EQ +-6 dB, the last 4 epochs' weights averaged",
    {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-2, "schedule": "cosine", "warmup_epochs": 1.0,
     "mixup_alpha": 0.2, "time_shift": 0.5, "specaug_p": 0.5, "specaug_max_pct": 0.2,
     "specaug_freq_masks": 1, "specaug_time_masks": 1, "average_last": 4, "pitch_shift": 2.0, "speed": 0.1,
     "eq_db": 6.0},
    epochs=12,
))
register_recipe(Recipe(
    "oneshot",
    "SoundSweep's recipe for isolated sound events padded with silence (one-shot samples, drum hits): the "
    "default optimisation over 24 epochs, log-mel dB relative to each example's peak, SpecAugment p 0.5, time "
    "shift; no mixup, pitch, speed or EQ changes, which blur the cues that tell such sounds apart (on the "
    "drum-kit benchmark each cost accuracy); the last 4 epochs' weights averaged and kept as the model (not the "
    "best validation epoch: small validation sets of unseen recordings pick noise)",
    {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-2, "schedule": "cosine", "warmup_epochs": 1.0,
     "logmel_scale": "peak", "time_shift": 0.2, "specaug_p": 0.5, "specaug_max_pct": 0.2,
     "specaug_freq_masks": 1, "specaug_time_masks": 1, "average_last": 4, "select_epoch": "last"},
    epochs=24,
))
register_recipe(Recipe(
    "soundfusion",
    "Prodan et al. (SoundFusion) sec. V-B: Adam, constant lr 1e-4 (the Simple CNN used 1e-3: add --lr 1e-3), "
    "batch 32, 20-150 epochs; their best augmentation (sec. VI-A): noise 0.02, gain 12 dB, SpecAugment p 1.0, "
    "30 %, 2 + 2 masks",
    {"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0.0,
     "batch_size": 32, **SOUNDFUSION_AUGMENT},
    epochs=50,
))
register_recipe(Recipe(
    "dcase2020",
    "Hu et al. (DCASE2020 task 1a) sec. 3 and their training scripts: SGD momentum 0.9, SGDR from 0.1 to 1e-5 "
    "(first cycle 2 epochs, then x2: 126 epochs), L2 1e-3, batch 32, mixup 0.4 per example, SpecAugment 1 + 1 "
    "masks of 10 %, random crop (here a circular shift), and online stand-ins for their offline extra data: pitch "
    "shift +-4 semitones, speed, noise 0.01, same-class mixing, reverb + compression, random EQ (spectrum "
    "correction); the final systems averaged snapshots near the lr minima (here: the last 4 epochs' weights)",
    {"optimizer": "sgd", "lr": 0.1, "min_lr": 1e-5, "weight_decay": 1e-3, "schedule": "cosine_restarts",
     "warmup_epochs": 0.0, "restart_epochs": 2.0, "restart_mult": 2.0, "batch_size": 32, "mixup_alpha": 0.4,
     "average_last": 4, "specaug_p": 1.0, "specaug_max_pct": 0.1, "specaug_freq_masks": 1, "specaug_time_masks": 1,
     "time_shift": 0.1, "pitch_shift": 4.0, "speed": 0.3, "noise_std": 0.01, "mix_same_class_p": 0.2,
     "reverb_p": 0.2, "drc_p": 0.2, "eq_db": 6.0},
    epochs=126,
))
register_recipe(Recipe(
    "dcase2020-1b",
    "Hu et al. (DCASE2020 task 1b, stereo) sec. 3: the 1a optimizer (SGD 0.1 to 1e-5 with warm restarts), no "
    "weight decay (small FCNN), mixup 0.4, channel swap p 0.5, SpecAugment; needs --channels 2",
    {"optimizer": "sgd", "lr": 0.1, "min_lr": 1e-5, "weight_decay": 0.0, "schedule": "cosine_restarts",
     "warmup_epochs": 0.0, "restart_epochs": 2.0, "restart_mult": 2.0, "batch_size": 32, "mixup_alpha": 0.4,
     "channel_swap_p": 0.5, "specaug_p": 1.0, "specaug_max_pct": 0.1, "specaug_freq_masks": 1,
     "specaug_time_masks": 1},
    epochs=126,
))
register_recipe(Recipe(
    "ecapa",
    "Heo et al. (ECAPA-TDNN with CCS and FSA) sec. 4.2: Adam lr 1e-3, weight decay 1e-5, cosine decay to 1e-6 "
    "over 80 epochs, no warm-up, batch 64",
    {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "schedule": "cosine", "min_lr": 1e-6,
     "warmup_epochs": 0.0, "batch_size": 64},
    epochs=80,
))
register_recipe(Recipe(
    "pons",
    "Pons and Serra (randomly weighted CNNs) sec. 3: 12 kHz audio, 350,000-sample (29.2 s) inputs, clips shorter "
    "than that looped (their repeat-padding); the default recipe's optimisation for models that train",
    get_recipe("default").settings,
    epochs=get_recipe("default").epochs,
    data={"sample_rate": 12000, "segment_seconds": 350000 / 12000, "segment_mode": "full", "pad": "repeat"},
))
