"""The experiment's configuration: every ``soundsweep tune`` setting, checked before anything runs.

>>> from soundsweep.experiment import ExperimentConfig
>>> ExperimentConfig(space="augmentation", num_samples=4).check()

The command line builds ``soundsweep tune``'s flags from :class:`ExperimentConfig` (and prints
``--help``) without loading torch, Ray, Optuna or pandas, so this module imports none of them:
the checks and builders that need the search spaces, the model zoo or the trial's settings
import them when they run.
"""
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from soundsweep.catalog import DatasetOptions
from soundsweep.errors import UsageError
from soundsweep.options import flag_fields, option
from trainables.objective import METRIC, MODE
from trainables.precision import PRECISIONS
from trainables.recipes import RECIPES, TrainingConfig, get_recipe, list_recipes

if TYPE_CHECKING:
    from trainables.audio import DecodeSpec
    from trainables.evaluate import TTA

# --objective names -> the reported metric Optuna is given and its direction.
OBJECTIVES = {"accuracy": (METRIC, MODE), "params": ("num_params", "min"), "time": ("epoch_s", "min"),
              "size": ("int8_kb", "min")}
SCHEDULERS = ("asha", "fifo")
FIDELITIES = ("epochs", "runs")
SEARCHES = ("tpe", "grid")
SEGMENT_MODES = ("window", "full")
PADS = ("zero", "repeat")
DATA_DEFAULTS = {"sample_rate": 22050, "segment_seconds": 5.0, "segment_mode": "window", "pad": "zero"}
"""The input policy without a recipe that sets it (:attr:`trainables.recipes.Recipe.data`)."""
EXECUTORS = ("auto", "train", "local")
RESULTS_URL = "sqlite:///results/soundsweep.db"
DEFAULT_EPOCHS = 4
"""--max-epochs of a recipe that names no epochs of its own."""
# The --help sections of ``soundsweep tune``, in order.
WHAT, DATA, BUDGET, EVALUATION, RESOURCES, OUTPUT = ("what to search", "data", "budget and scheduling", "evaluation",
                                                     "resources", "where results go")
GROUPS = (WHAT, DATA, BUDGET, EVALUATION, RESOURCES, OUTPUT)


@dataclass
class ExperimentConfig(DatasetOptions):
    """Everything ``soundsweep tune`` takes; each field is its flag (:func:`~soundsweep.options.option`)."""

    # what to search
    space: str = option("augmentation", "search space name (see below; default %(default)s)", group=WHAT)
    arch: str = option("resnet2d", "model when the space does not choose one (default %(default)s)", group=WHAT)
    width: int | None = option(None, "model width (default: the paper's width of --arch)", group=WHAT)
    init_from: str | None = option(None, "checkpoint folder of an earlier run (its 'checkpoint:' line) whose weights "
                                   "start every trial; the classifier is re-initialised when the class count differs",
                                   group=WHAT, metavar="CHECKPOINT")
    recipe: str = option("default", "training recipe: optimizer, schedule, regularisation and augmentation as one "
                         "named set (see below; default %(default)s); the flags under 'training recipe' override "
                         "single values of it", group=WHAT, choices=list_recipes)
    overrides: dict = field(default_factory=dict)
    """Training values that replace the recipe's (``{"lr": 0.01}``; the CLI fills it from the
    'training recipe' flags, :class:`~trainables.recipes.TrainingConfig`'s fields)."""
    objective: str = option("accuracy", "what the search optimizes: accuracy (default), or accuracy plus any of params, "
                            "time (seconds per epoch) and size (int8 model KB), e.g. accuracy,size: a multi-objective "
                            "search (Optuna NSGA-II, no early stopping) that stores its Pareto front",
                            group=WHAT, metavar="NAMES")
    warm_start: str | None = option(None, "start from the best configurations of the earlier experiment NAME (same "
                                    "--results): they are enqueued in Optuna and run first, then TPE samples",
                                    group=WHAT, metavar="NAME")
    warm_start_top: int = option(3, "how many of NAME's best configurations to run first (default %(default)s)",
                                 group=WHAT, metavar="K")
    # data (beside the dataset options)
    coarse: bool = option(False, "train on super-classes (the first stage of two-stage classification): each label "
                          "becomes its super-class from --hierarchy, or from the dataset (DCASE2020 coarse_label)",
                          group=DATA)
    hierarchy: str | None = option(None, "with --coarse: CSV with the header fine,coarse giving each label's "
                                   "super-class", group=DATA, metavar="FILE")
    sample_rate: int | None = option(None, "resample to this rate (Hz; default: the recipe's, else 22050)", group=DATA)
    channels: int = option(1, "1 = mono, 2 = stereo", group=DATA)
    segment_seconds: float | None = option(None, "window length, or the fixed clip length with --segment-mode full "
                                           "(s; default: the recipe's, else 5)", group=DATA)
    segment_mode: str | None = option(None, "window: overlapping windows per clip; full: one segment per clip, cut "
                                      "or padded (training clips at a seeded random position); default: the "
                                      "recipe's, else window", group=DATA, choices=SEGMENT_MODES)
    pad: str | None = option(None, "how a clip shorter than its segment is filled: zero (silence) or repeat (the "
                             "clip looped: Pons and Serra's repeat-padding); default: the recipe's, else zero",
                             group=DATA, choices=PADS)
    overlap: float = option(0.25, "window overlap fraction", group=DATA)
    # budget and scheduling
    search: str = option("tpe", "tpe: Optuna's TPE samples --num-samples configurations (default); grid: the space's "
                         "grid in order, each configuration once (the first --num-samples of them: give at least the "
                         "grid size, e.g. 972 for augmentation, for all)", group=BUDGET, choices=SEARCHES)
    num_samples: int = option(12, "configurations to try (default %(default)s)", group=BUDGET)
    max_epochs: int | None = option(None, "epochs per trial at most (default: the recipe's, 12 for the default "
                                    "recipe)", group=BUDGET)
    epoch_budget: int | None = option(None, "end the search once its trials have trained this many epochs in total (a "
                                      "trial stopped early by ASHA spends less, so more configurations fit); default: "
                                      "no budget", group=BUDGET, metavar="EPOCHS")
    scheduler: str = option("asha", "early stopping: asha, or fifo for none (default %(default)s)", group=BUDGET,
                            choices=SCHEDULERS)
    max_concurrent: int | None = option(None, "trials at once (default: as many as fit)", group=BUDGET)
    folds: int = option(1, "k-fold cross-validation: run every configuration on k folds (the dataset's official "
                        "folds, else stratified group folds; fold k+1 is val) and report mean, std and 95%% CI",
                        group=BUDGET)
    repeats: int = option(1, "run every configuration (on every fold) with this many seeds", group=BUDGET)
    fidelity: str = option("epochs", "with --folds/--repeats, what ASHA's rungs count: epochs (default: every fold and "
                           "seed is its own trial and runs to the end) or runs (a configuration is one trial that runs "
                           "its folds and seeds in turn; ASHA stops it after 1, 2, 4, ... runs when its mean validation "
                           "accuracy ranks low, and Optuna learns that mean)", group=BUDGET, choices=FIDELITIES)
    seed: int = option(0, "experiment seed; every other seed derives from it", group=BUDGET)
    max_failures: int = option(1, "retries of a failing trial from its last checkpoint", group=BUDGET)
    max_params: int | None = option(None, "parameter budget: a configuration whose model has more parameters is "
                                    "pruned before it trains (counted from shapes, no training)", group=BUDGET,
                                    metavar="N")
    max_model_kb: float | None = option(None, "int8 model size budget (DCASE2020 1b: 500): a configuration whose "
                                        "quantized model is larger is pruned before it trains", group=BUDGET,
                                        metavar="KB")
    # evaluation
    tta_views: int = option(4, "test-time augmentation views per segment in the final test (1 = off; default "
                            "%(default)s)", group=EVALUATION)
    ensemble_top: int = option(0, "after the search, also average the probabilities of the K best trials (ranked on "
                               "validation) into an ensemble, test it and store it as a model beside the best single "
                               "one (0 = off); it becomes the experiment's best model (what predict and serve take "
                               "for the experiment's name) unless averaging hurt on validation (its score below the mean "
                               "of its members'). The DCASE2020 systems were ensembles; on a small validation split the best "
                               "single trial is partly luck, and an average of several is not", group=EVALUATION,
                               metavar="K")
    # resources
    executor: str = option("auto", "train = a TorchTrainer per trial; local = the loop inside the trial (auto: train "
                           "for several workers or GPUs)", group=RESOURCES, choices=EXECUTORS)
    train_workers: int = option(1, "Train workers per trial", group=RESOURCES)
    cpus_per_worker: float = option(0.5, "default %(default)s", group=RESOURCES)
    gpus_per_worker: float = option(0.0, "whole or fractional", group=RESOURCES)
    data_cpus: float = option(1.0, "CPUs kept free on one node for Ray Data reads (default %(default)s)",
                              group=RESOURCES)
    precision: str = option("auto", "mixed precision on GPU trials: auto = bf16 where the GPU has it, else fp16 with "
                            "loss scaling; CPU trials always train in fp32", group=RESOURCES, choices=PRECISIONS)
    device_cache_share: float = option(0.5, "on a GPU trial, keep each split on the GPU between epochs when it fits in "
                                       "this share of the GPU's free memory (0 < SHARE <= 1; default %(default)s): "
                                       "epochs then only shuffle indices there, and augmentation and features run "
                                       "there; a larger split stays in host memory or is streamed",
                                       group=RESOURCES, metavar="SHARE")
    wait_for_resources: float = option(0.0, "on an autoscaling cluster, ask for the trials' resources and wait up to "
                                       "this long before planning (default: plan with the nodes that are up)",
                                       group=RESOURCES, metavar="SECONDS")
    address: str | None = option(None, "Ray cluster address (default: $RAY_ADDRESS or a local Ray)", group=RESOURCES)
    # where results go
    results: str = option(RESULTS_URL, "SQLAlchemy URL of the results store", group=OUTPUT)
    storage_path: str = option("results/runs", "Tune storage (checkpoints, decode cache)", group=OUTPUT)
    record_augmentation: bool = option(False, "write each training example's augmentation parameters per epoch to "
                                       "<trial folder>/augmentation/*.jsonl (replayable)", group=OUTPUT)
    mlflow: str | None = option(None, "MLflow tracking URI (http://host:5000, sqlite:///mlflow.db, file:///folder): "
                                "every trial becomes an MLflow run (parameters, per-epoch metrics) through Ray Tune's "
                                "MLflowLoggerCallback, and the best model's checkpoint and the report are logged to "
                                "its trial's run; needs pip install 'soundsweep[mlflow]'", group=OUTPUT, metavar="URI")
    verbose: bool = option(False, "also print what Ray, Ray Data and Tune say (worker output, per-trial notices, "
                           "Tune's banner); without it that goes to the log files in Ray's session folder "
                           "(the 'ray: logs in' line)", group=OUTPUT)
    name: str | None = option(None, "experiment name (default: <space>-<time>)", group=OUTPUT)
    resume: bool = option(False, "continue the experiment --name after a crash or kill", group=OUTPUT)

    def __post_init__(self):
        """Settings left unset take the recipe's value (its epochs, its input policy), else the
        platform's default; the stored config holds the resolved values."""
        recipe = RECIPES.get(self.recipe)
        if self.max_epochs is None and recipe is not None:
            self.max_epochs = recipe.epochs or DEFAULT_EPOCHS
        for name, default in DATA_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, recipe.data.get(name, default) if recipe is not None else default)

    def training_settings(self) -> dict:
        """The trial settings the recipe and the overrides give every trial (the search space's
        samples go on top): every :class:`~trainables.recipes.TrainingConfig` field, and the
        augmentation knobs the recipe sets."""
        return {**asdict(TrainingConfig()), **get_recipe(self.recipe).settings, **self.overrides}

    @classmethod
    def from_record(cls, config: dict) -> "ExperimentConfig":
        """The configuration an experiment recorded in the results store (its ``config``: every
        field, beside ``config_yaml``; :func:`soundsweep.experiment.run.recorded_config`)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})

    def flag_values(self) -> dict:
        """Every ``soundsweep tune`` setting of this configuration by its flag's name
        (``max_epochs`` for ``--max-epochs``), as resolved: the recipe's epochs and input policy
        where no flag set them, and each training-recipe flag with the value the recipe and the
        overrides give it. What ``--print-config`` prints and the experiment records: as a
        ``--config`` file it configures the same run, even if the recipe's values change later."""
        training = self.training_settings()
        return {**{f.name: getattr(self, f.name) for f in flag_fields(type(self))},
                **{f.name: training[f.name] for f in flag_fields(TrainingConfig)}}

    def decode_spec(self) -> "DecodeSpec":
        """How files become segments. Full clips pad training clips at a random position seeded
        by the experiment seed (SoundFusion); windows pad the rare too-short clip at its end. With
        ``--folds`` a clip is decoded once for every role its fold takes, so every clip is padded
        at its end, as validation and test clips are."""
        from trainables.audio import DecodeSpec

        full = self.segment_mode == "full"
        return DecodeSpec(self.sample_rate, self.channels, self.segment_seconds, self.overlap, full_clip=full,
                          pad_seed=self.seed if full else None, repeat_pad=self.pad == "repeat")

    def objectives(self) -> list[str]:
        """The ``--objective`` names, in order (``accuracy`` alone: a single-objective search)."""
        return [name.strip() for name in self.objective.split(",")]

    def check(self) -> None:
        """Reject impossible values before anything starts (one-line errors)."""
        from search_spaces import get_space
        from trainables.models import ModelConfigError, parameter_count

        try:
            get_recipe(self.recipe)
        except KeyError as exc:
            raise UsageError(f"--recipe: {exc.args[0]}") from exc
        names = self.objectives()
        if not set(names) <= set(OBJECTIVES) or len(set(names)) < len(names) or "accuracy" not in names:
            raise UsageError(f"--objective {self.objective}: give accuracy plus any of "
                             f"{', '.join(n for n in OBJECTIVES if n != 'accuracy')}, comma-separated, each once")
        if self.fidelity not in FIDELITIES:
            raise UsageError(f"--fidelity {self.fidelity}: choose one of {', '.join(FIDELITIES)}")
        if self.fidelity == "runs" and self.folds * self.repeats == 1:
            raise UsageError("--fidelity runs: a configuration has one run; add --folds K and/or --repeats R")
        if self.fidelity == "runs" and (self.executor == "train" or self.train_workers > 1 or self.gpus_per_worker):
            raise UsageError("--fidelity runs trains a configuration's folds and seeds in one trial with one local "
                             "worker: drop --train-workers/--gpus-per-worker/--executor train, or use --fidelity epochs")
        if len(names) > 1 and self.folds * self.repeats > 1:
            raise UsageError("--objective with several objectives runs each configuration once: drop --folds/--repeats")
        try:
            get_space(self.space)
        except KeyError as exc:
            raise UsageError(f"--space: {exc.args[0]}") from exc
        try:
            parameter_count(self.arch, num_classes=2, in_channels=self.channels,
                            **({"width": self.width} if self.width is not None else {}))
        except ModelConfigError as exc:
            raise UsageError(f"--arch/--width: {exc}") from exc
        for flag, value in (("--num-samples", self.num_samples), ("--max-epochs", self.max_epochs),
                            ("--sample-rate", self.sample_rate),
                            ("--folds", self.folds), ("--repeats", self.repeats)):
            if value < 1:
                raise UsageError(f"{flag} {value}: must be at least 1")
        if self.search not in SEARCHES:
            raise UsageError(f"--search {self.search}: choose one of {', '.join(SEARCHES)}")
        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor {self.executor}: choose one of {', '.join(EXECUTORS)}")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"--scheduler {self.scheduler}: choose one of {', '.join(SCHEDULERS)}")
        if self.segment_seconds <= 0:
            raise UsageError(f"--segment-seconds {self.segment_seconds}: must be > 0")
        if self.max_failures < 0:
            raise UsageError(f"--max-failures {self.max_failures}: must be 0 or more")
        if not 0 <= self.overlap < 1:
            raise UsageError(f"--overlap {self.overlap}: must be in [0, 1)")
        if self.segment_mode not in SEGMENT_MODES:
            raise UsageError(f"--segment-mode {self.segment_mode}: choose {' or '.join(SEGMENT_MODES)}")
        if self.channels not in (1, 2):
            raise UsageError(f"--channels {self.channels}: choose 1 (mono) or 2 (stereo)")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")
        if not 0 < self.device_cache_share <= 1:
            raise UsageError(f"--device-cache-share {self.device_cache_share}: give a share of the GPU's free memory "
                             "in (0, 1], e.g. 0.5 for half")
        if self.wait_for_resources < 0:
            raise UsageError(f"--wait-for-resources {self.wait_for_resources}: must be >= 0 seconds")
        if self.resume and not self.name:
            raise UsageError("--resume needs --name of the experiment to continue")
        if self.max_model_kb is not None and self.max_model_kb <= 0:
            raise UsageError(f"--max-model-kb {self.max_model_kb}: must be > 0")
        if self.max_params is not None and self.max_params <= 0:
            raise UsageError(f"--max-params {self.max_params}: must be > 0")
        if self.epoch_budget is not None and self.epoch_budget < 1:
            raise UsageError(f"--epoch-budget {self.epoch_budget}: must be at least 1 epoch")
        if self.epoch_budget and self.folds * self.repeats > 1 and self.fidelity == "epochs":
            raise UsageError("--epoch-budget with --folds/--repeats needs --fidelity runs (one trial per configuration)")
        if self.warm_start_top < 1:
            raise UsageError(f"--warm-start-top {self.warm_start_top}: must be at least 1")
        if self.ensemble_top == 1 or self.ensemble_top < 0:
            raise UsageError(f"--ensemble-top {self.ensemble_top}: give 0 (off) or at least 2 trials to average")
        if self.tta_views < 1:
            raise UsageError(f"--tta-views {self.tta_views}: must be at least 1 (1 = no test-time augmentation)")
        if self.hierarchy and not self.coarse:
            raise UsageError("--hierarchy trains nothing by itself: add --coarse to train on its super-classes")
        self.check_recipe()
        self.check_protocol()

    def check_recipe(self) -> None:
        """The recipe's values (with the overrides) can train, and its augmentations fit the data:
        a stereo-only augmentation on mono data is refused here, before Ray starts."""
        unknown = set(self.overrides) - {f.name for f in fields(TrainingConfig)}
        if unknown:
            raise UsageError(f"training overrides {sorted(unknown)}: not training settings; known are "
                             f"{', '.join(f.name for f in fields(TrainingConfig))}")
        from trainables.config import TrialConfig

        runtime = {"data_dir": "", "num_classes": 2, "in_channels": self.channels, "sample_rate": self.sample_rate}
        try:  # the trial settings split into their parts as every trial splits them
            trial = TrialConfig.from_dict({"runtime": runtime, **self.training_settings()})
            trial.training.check(self.max_epochs)
            trial.augment.check(self.sample_rate, self.channels)
        except ValueError as exc:
            raise UsageError(f"--recipe {self.recipe}: {exc}") from exc

    def check_protocol(self) -> None:
        """Options that only a training protocol can honour (a screening space trains nothing)."""
        from search_spaces import get_space

        protocol = get_space(self.space).constants.get("protocol", "train")
        if protocol == "train":
            return
        if len(self.objectives()) > 1:
            raise UsageError(f"--objective: the {protocol} protocol scores accuracy only; drop --objective")
        if self.init_from:
            raise UsageError(f"--init-from: the {protocol} protocol trains no model; drop --init-from "
                             "(soundsweep probe --checkpoint embeds with a stored model)")
        for flag, budget in (("--max-model-kb", self.max_model_kb), ("--max-params", self.max_params),
                             ("--epoch-budget", self.epoch_budget)):
            if budget is not None:
                raise UsageError(f"{flag}: the {protocol} protocol trains no model; drop {flag}")

    def tta(self) -> "TTA | None":
        """The test-time augmentation of the final evaluation (``None`` for one view)."""
        from trainables.evaluate import TTA

        return TTA(views=self.tta_views, seed=self.seed) if self.tta_views > 1 else None



# The settings that define what an experiment searches; --resume must repeat them unchanged.
SPEC_FIELDS = ("space", "search", "arch", "width", "recipe", "overrides", "data", "dataset", "test_fold", "subset",
               "split_dir", "val_fraction", "synthetic_clips", "coarse", "hierarchy", "num_samples", "max_epochs",
               "epoch_budget", "scheduler", "folds", "repeats", "fidelity", "seed", "sample_rate", "channels", "segment_seconds",
               "overlap", "segment_mode", "pad", "max_model_kb", "max_params", "objective", "warm_start", "warm_start_top")


def check_same_spec(name: str, recorded: dict, cfg: ExperimentConfig) -> None:
    changed = [f for f in SPEC_FIELDS if f in recorded and recorded[f] != getattr(cfg, f)]
    if changed:
        was = ", ".join(f"--{f.replace('_', '-')} {recorded[f]}" for f in changed)
        raise UsageError(f"--resume {name}: it was run with {was}; repeat those flags, or start a new --name "
                         "for a changed search")
