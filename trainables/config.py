"""The configuration one trial runs with: what Tune samples plus the experiment's runtime.

A Tune config is a flat dict of searchable values (``arch``, ``width``, the training knobs of
:class:`~trainables.recipes.TrainingConfig` such as ``lr``, the augmentation knobs, ...) plus
one constant ``runtime`` dict that the driver fills in (data location, seed, resource plan).
:meth:`TrialConfig.from_dict` rejects keys it does not know, so a typo in a search space fails at
once instead of being silently ignored.
"""
from dataclasses import asdict, dataclass, field, fields

from ray.tune.search.repeater import TRIAL_INDEX

from trainables.augment import AugmentConfig
from trainables.recipes import TrainingConfig
from trainables.seeding import derive_seed


@dataclass
class Runtime:
    """Per-experiment constants of a trial (not searched, not part of a trial's identity).

    Attributes:
        data_dir: prepared segments (Parquet partitioned by split), or a fold view of them.
        num_classes, in_channels, sample_rate: what the prepared data holds.
        seed: the experiment seed every other seed derives from.
        max_epochs: epochs a trial may run if the scheduler never stops it.
        executor: ``train`` runs the loop in a TorchTrainer, ``local`` inside the Tune trial.
        train_workers, cpus_per_worker, use_gpu: the Train scaling of one trial.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``; mixed precision applies on a GPU only.
        device_cache_share: the share of a GPU's free memory the trial's splits may fill, kept
            there between epochs (``trainables.data.EpochBatches``); unused on a CPU.
        storage_path: where TorchTrainer runs of this experiment keep their state.
        init_from: checkpoint (directory or URI) whose weights initialise a new trial.
        record_augmentation: write the parameters applied to every training example, per
            epoch, under ``<trial_dir>/augmentation/`` (see ``trainables.augment.AugmentationLog``).
        trial_dir: the trial's folder in the experiment storage (set by the trial itself).
        max_model_kb: int8 size budget; a larger configuration is pruned before it trains (0: none).
        max_params: parameter budget, pruned the same way (0: none).
        folds: prepared data of each cross-validation fold (empty: ``data_dir`` only); with
            ``repeats``, how :func:`resolve_repeat` maps Tune's repeat index to a fold and a seed.
        fold, repeat: the fold and seed repeat this trial runs on (set by :func:`resolve_repeat`).
        fidelity: ``epochs``: a trial is one run (one fold and seed); ``runs``: a trial runs every
            fold and seed of its configuration in turn (:mod:`trainables.fidelity`).
    """

    data_dir: str
    num_classes: int
    in_channels: int
    sample_rate: int
    seed: int = 0
    max_epochs: int = 4
    executor: str = "local"
    train_workers: int = 1
    cpus_per_worker: float = 0.5
    use_gpu: bool = False
    precision: str = "auto"
    device_cache_share: float = 0.5
    storage_path: str = ""
    init_from: str = ""
    record_augmentation: bool = False
    trial_dir: str = ""
    max_model_kb: float = 0.0
    max_params: int = 0
    folds: list[str] = field(default_factory=list)
    repeats: int = 1
    fold: int | None = None
    repeat: int = 0
    fidelity: str = "epochs"


def resolve_repeat(config: dict) -> dict:
    """The config of one run of a repeated configuration (``--folds`` / ``--repeats``).

    Tune's ``Repeater`` gives every copy of a configuration the same config plus its index
    ``__trial_index__``; index ``i`` runs fold ``i // repeats`` (its prepared data replaces
    ``data_dir``) with seed repeat ``i % repeats``. Repeat 0 keeps the experiment seed, so it
    is the run without repeats; repeat r > 0 derives its own. A config without the index is
    returned as it is.
    """
    if TRIAL_INDEX not in config:
        return config
    config = dict(config)
    runtime = dict(config["runtime"])
    fold, repeat = divmod(config.pop(TRIAL_INDEX), runtime.get("repeats", 1))
    if runtime.get("folds"):
        runtime["data_dir"], runtime["fold"] = runtime["folds"][fold], fold
    if repeat:
        runtime["seed"] = derive_seed(runtime.get("seed", 0), "repeat", repeat)
    runtime["repeat"] = repeat
    config["runtime"] = runtime
    return config


@dataclass
class TrialConfig:
    """Searchable settings of one trial; every field can be set by a search space.

    ``model_options`` holds further ``create_model`` options per architecture,
    ``{arch: {option: value}}`` (e.g. ``{"ecapa_ccs": {"split": "256/768", "width": 128}}``);
    only the entry of ``arch`` is used, on top of ``width``. It is keyed by architecture because
    a conditional space samples each architecture's options under their own names (an Optuna
    parameter keeps one set of choices): ``model_options/<arch>/<option>``, which Ray nests.
    """

    runtime: Runtime
    arch: str = "resnet2d"
    width: int | None = 16
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model_options: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        if not all(isinstance(v, dict) for v in self.model_options.values()):
            raise ValueError("model_options maps an architecture to its options, "
                             "e.g. {'ecapa_ccs': {'split': '256/768'}}")
        # Sorted, so the trial seed does not depend on the order options were sampled in.
        self.model_options = {arch: dict(sorted(opts.items())) for arch, opts in sorted(self.model_options.items())}

    def create_options(self) -> dict:
        """The options ``create_model`` gets for ``arch``: ``width`` (if set) and its model options."""
        options = {"width": self.width} if self.width is not None else {}
        options.update(self.model_options.get(self.arch, {}))
        return options

    @classmethod
    def from_dict(cls, config: dict) -> "TrialConfig":
        """Build from a flat Tune config: the training and augmentation knobs sit beside the rest."""
        config = dict(config)
        runtime = Runtime(**config.pop("runtime"))
        parts = {name: {f.name for f in fields(kind)} for name, kind in FLAT_PARTS.items()}
        own = {f.name for f in fields(cls)} - {"runtime", *FLAT_PARTS}
        unknown = set(config) - own - set().union(*parts.values())
        if unknown:
            raise ValueError(f"unknown trial settings {sorted(unknown)}: known are "
                             f"{sorted(own.union(*parts.values()))}")
        built = {name: FLAT_PARTS[name](**{k: config.pop(k) for k in list(config) if k in keys})
                 for name, keys in parts.items()}
        return cls(runtime=runtime, **built, **config)

    def params(self) -> dict:
        """The searchable values as a flat dict (what the results store records as config)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("runtime", *FLAT_PARTS)}
        for name in FLAT_PARTS:
            out.update(asdict(getattr(self, name)))
        return out

    @property
    def trial_seed(self) -> int:
        """Seed of this configuration: the same settings get the same model init and draws."""
        return derive_seed(self.runtime.seed, "trial", sorted(self.params().items()))


FLAT_PARTS = {"training": TrainingConfig, "augment": AugmentConfig}
"""The setting groups whose fields a Tune config holds flat, beside ``arch`` and ``width``."""
