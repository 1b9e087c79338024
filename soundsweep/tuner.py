"""One experiment end to end: data -> plan -> Tuner (Optuna TPE + ASHA) -> store -> best model.

>>> from soundsweep.tuner import ExperimentConfig, run_experiment
>>> summary = run_experiment(ExperimentConfig(space="augmentation", num_samples=4))

The space's ``protocol`` constant decides what a trial does (``train`` or ``screening``, see
``trainables/trial.py``) and how the search runs (:func:`search_shape`). With ``--folds K``
and/or ``--repeats R`` every configuration Optuna suggests runs K x R times, once per fold and
seed (Tune's ``Repeater``; Optuna sees the mean), and the run ends with a table of each
configuration's mean, standard deviation and 95% interval (:mod:`soundsweep.configurations`).
"""
import os
import time
from dataclasses import asdict, dataclass

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from search_spaces import SearchSpace, get_space
from soundsweep.callbacks import ProgressCallback, StoreCallback
from soundsweep.catalog import DatasetOptions, cv_folds
from soundsweep.configurations import configuration_table, configurations
from soundsweep.errors import UsageError
from soundsweep.plan import ResourcePlan, make_plan
from soundsweep.prepare import PreparedData, fold_view, prepare
from soundsweep.results import ResultsStore
from trainables.audio import DecodeSpec
from trainables.config import TrialConfig
from trainables.data import iter_batches, open_split
from trainables.evaluate import predict
from trainables.loop import build, load_checkpoint, load_weights
from trainables.models import ModelConfigError, parameter_count
from trainables.trial import run_trial

METRIC, MODE = "val_clip_acc", "max"
SCHEDULERS = ("asha", "fifo")


@dataclass
class ExperimentConfig(DatasetOptions):
    """Everything ``soundsweep tune`` takes; each field is a CLI flag of the same name."""

    space: str = "augmentation"
    arch: str = "resnet2d"
    width: int | None = None
    init_from: str | None = None
    lr: float = 1e-3
    batch_size: int = 32
    num_samples: int = 12
    max_epochs: int = 4
    max_concurrent: int | None = None
    scheduler: str = "asha"
    folds: int = 1
    repeats: int = 1
    seed: int = 0
    results: str = "sqlite:///results/soundsweep.db"
    storage_path: str = "results/runs"
    name: str | None = None
    resume: bool = False
    train_workers: int = 1
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    executor: str = "auto"
    sample_rate: int = 22050
    channels: int = 1
    segment_seconds: float = 5.0
    overlap: float = 0.25
    max_failures: int = 1
    address: str | None = None

    def check(self) -> None:
        """Reject impossible values before anything starts (one-line errors)."""
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
                            ("--batch-size", self.batch_size), ("--sample-rate", self.sample_rate),
                            ("--folds", self.folds), ("--repeats", self.repeats)):
            if value < 1:
                raise UsageError(f"{flag} {value}: must be at least 1")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"--scheduler {self.scheduler}: choose one of {', '.join(SCHEDULERS)}")
        if self.segment_seconds <= 0:
            raise UsageError(f"--segment-seconds {self.segment_seconds}: must be > 0")
        if self.lr <= 0:
            raise UsageError(f"--lr {self.lr}: must be > 0")
        if self.max_failures < 0:
            raise UsageError(f"--max-failures {self.max_failures}: must be 0 or more")
        if not 0 <= self.overlap < 1:
            raise UsageError(f"--overlap {self.overlap}: must be in [0, 1)")
        if self.channels not in (1, 2):
            raise UsageError(f"--channels {self.channels}: choose 1 (mono) or 2 (stereo)")
        if self.resume and not self.name:
            raise UsageError("--resume needs --name of the experiment to continue")


@dataclass
class ExperimentSummary:
    name: str
    experiment_id: int
    results_url: str
    plan: ResourcePlan
    data: PreparedData
    best: dict | None
    wall_s: float
    trials: list[dict]
    configurations: list[dict]


@dataclass(frozen=True)
class SearchShape:
    """How a search runs: its protocol, the configurations Optuna suggests, the runs of each
    (folds x repeats), the reports a trial makes at most and the scheduler."""

    protocol: str
    configurations: int
    runs: int
    max_epochs: int
    scheduler: str

    @property
    def trials(self) -> int:
        return self.configurations * self.runs


def search_shape(cfg: ExperimentConfig, space: SearchSpace) -> SearchShape:
    """The shape of ``cfg``'s search over ``space``.

    A screening reports once per trial and is exhaustive: its grid is evaluated in order, at
    most once per configuration, without early stopping. Repeated configurations run without
    early stopping too: it would stop some folds or seeds of a configuration and not others.
    """
    protocol = space.constants.get("protocol", "train")
    runs = cfg.folds * cfg.repeats
    if protocol == "screening":
        return SearchShape(protocol, min(cfg.num_samples, space.grid_size()), runs, 1, "fifo")
    return SearchShape(protocol, cfg.num_samples, runs, cfg.max_epochs, cfg.scheduler if runs == 1 else "fifo")


def connect_ray(address: str | None) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local Ray unless one is running."""
    # Save experiment state every 2 s (Ray's default waits 10 s or more), so a killed driver
    # loses at most that much bookkeeping; trials keep their own per-epoch checkpoints.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    if not ray.is_initialized():
        # Ray Data logs every dataset execution at INFO; trials re-read data each epoch.
        quiet = {"RAY_DATA_LOG_LEVEL": os.environ.get("RAY_DATA_LOG_LEVEL", "WARNING")}
        os.environ.update(quiet)
        ray.init(address=address, logging_level="WARNING", runtime_env={"env_vars": quiet})
    ray.data.DataContext.get_current().enable_progress_bars = False


def run_experiment(cfg: ExperimentConfig) -> ExperimentSummary:
    cfg.check()
    started = time.perf_counter()
    space = get_space(cfg.space)
    shape = search_shape(cfg, space)
    training = shape.protocol == "train"  # other protocols run in the trial itself, on one worker
    if cfg.init_from and not training:
        raise UsageError(f"--init-from: the {shape.protocol} protocol trains no model; drop --init-from "
                         "(soundsweep probe --checkpoint embeds with a stored model)")
    name = cfg.name or f"{cfg.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = os.path.abspath(cfg.storage_path) if "://" not in cfg.storage_path else cfg.storage_path
    check_writable(storage)
    store = ResultsStore(cfg.results)
    existing = store.experiment(name)
    if cfg.resume:
        if existing is None:
            raise UsageError(f"--resume: no experiment named {name!r} in {cfg.results}; check --name and --results")
        check_same_spec(name, existing.config, cfg)
    elif existing is not None:
        raise UsageError(f"experiment {name!r} already exists in {cfg.results}: add --resume or pick another --name")
    # Recorded first, so that a run killed at any later point can be resumed by name.
    experiment_id = store.start_experiment(name, cfg.space, cfg.data or "synthetic", asdict(cfg), storage)

    connect_ray(cfg.address)
    manifest = cfg.manifest(cfg.seed)
    spec = DecodeSpec(cfg.sample_rate, cfg.channels, cfg.segment_seconds, cfg.overlap)
    prepared, folds = prepare_data(cfg, manifest, spec, storage)
    print(prepared.describe(), flush=True)
    for failure in prepared.failures:
        print(f"  skipped {failure['path']}: {failure['error']}", flush=True)
    for view in folds:
        for split in ("train", "val", "test"):
            if view.segments[split] == 0:
                raise UsageError(f"the {split} split has no usable audio after decoding: check --data")
    data = folds[0]
    plan = make_plan(ray.cluster_resources(), train_workers=cfg.train_workers if training else 1,
                     cpus_per_worker=cfg.cpus_per_worker, gpus_per_worker=cfg.gpus_per_worker,
                     max_concurrent=cfg.max_concurrent, executor=cfg.executor if training else "local",
                     num_samples=shape.trials)
    print(plan.describe(), flush=True)
    if shape.runs > 1 or not training:
        print(f"search: {shape.configurations} configuration(s) x {cfg.folds} fold(s) x {cfg.repeats} seed(s), "
              f"{shape.protocol} protocol, {shape.scheduler} scheduler", flush=True)
    if cfg.init_from:
        check_init_from(cfg, data, plan, storage)

    trainable = tune.with_resources(run_trial, plan.trial_resources)
    if cfg.resume and tune.Tuner.can_restore(os.path.join(storage, name)):
        tuner = tune.Tuner.restore(os.path.join(storage, name), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(trainable, param_space=param_space(cfg, data, plan, storage, folds if cfg.folds > 1 else ()),
                           tune_config=tune_config(cfg, name, plan, space, shape),
                           run_config=run_config(cfg, name, storage, experiment_id, shape))
    tuner.fit()

    best = register_best(store, experiment_id, data, cfg, plan, storage, folds)
    if training and shape.runs > 1:
        score_trials(store, experiment_id, data, cfg, plan, storage, folds)
    table = configuration_table(configurations(store, name)) if shape.runs > 1 or not training else []
    summary = ExperimentSummary(
        name=name, experiment_id=experiment_id, results_url=cfg.results, plan=plan, data=prepared, best=best,
        wall_s=time.perf_counter() - started,
        trials=trial_rows(store, experiment_id), configurations=table,
    )
    store.finish_experiment(experiment_id, "FINISHED", {
        "plan": plan.describe(), "data": prepared.describe(), "cache_hit": prepared.cache_hit, "executor": plan.executor,
        "skipped_files": prepared.failures, "wall_s": summary.wall_s, "best_model": best, "configurations": table,
    })
    return summary


def prepare_data(cfg: ExperimentConfig, manifest, spec: DecodeSpec, storage: str) -> tuple[PreparedData, list[PreparedData]]:
    """Decode once; return the prepared data and the train/val/test datasets trials run on: the
    prepared data itself, or with ``--folds K`` the K fold views of data partitioned by fold."""
    cache = os.path.join(storage, "cache")
    if cfg.folds == 1:
        data = prepare(manifest, spec, cache)
        return data, [data]
    fold, pairs = cv_folds(manifest, cfg.folds, cfg.seed, cfg.data or "synthetic")
    by_fold = prepare(manifest.assign(split=[f"fold{f}" for f in fold]), spec, cache)
    return by_fold, [fold_view(by_fold, f"fold{test}", f"fold{val}") for test, val in pairs]


def fold_data(metrics: dict, data: PreparedData, folds: list[PreparedData]) -> PreparedData:
    """The data a trial ran on: its fold's view (the ``fold`` it reported), else ``data``."""
    fold = metrics.get("fold")
    return data if fold is None else folds[fold]


# The settings that define what an experiment searches; --resume must repeat them unchanged.
SPEC_FIELDS = ("space", "arch", "width", "lr", "batch_size", "data", "dataset", "test_fold", "subset", "split_dir",
               "val_fraction", "synthetic_clips", "num_samples", "max_epochs", "scheduler", "folds", "repeats", "seed",
               "sample_rate", "channels", "segment_seconds", "overlap")


def check_same_spec(name: str, recorded: dict, cfg: ExperimentConfig) -> None:
    changed = [f for f in SPEC_FIELDS if f in recorded and recorded[f] != getattr(cfg, f)]
    if changed:
        was = ", ".join(f"--{f.replace('_', '-')} {recorded[f]}" for f in changed)
        raise UsageError(f"--resume {name}: it was run with {was}; repeat those flags, or start a new --name "
                         "for a changed search")


def check_init_from(cfg: ExperimentConfig, data: PreparedData, plan: ResourcePlan, storage: str) -> None:
    """Load ``--init-from`` into the experiment's model once on the driver, so a mismatch fails now."""
    model, _ = build(trial_config({"arch": cfg.arch, "width": cfg.width}, data, cfg, plan, storage))
    try:
        skipped = load_weights(model, cfg.init_from)
    except (ModelConfigError, FileNotFoundError, OSError) as exc:
        raise UsageError(f"--init-from {cfg.init_from}: {exc}".splitlines()[0]) from exc
    if skipped:
        print(f"init-from: classifier re-initialised ({len(skipped)} entries differ in shape)", flush=True)


def check_writable(storage: str) -> None:
    """Fail before any work if a local ``--storage-path`` cannot be written."""
    if "://" in storage:
        return
    try:
        os.makedirs(storage, exist_ok=True)
        probe = os.path.join(storage, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise UsageError(f"--storage-path {storage} is not writable ({exc.strerror}): choose a folder you can write") from exc


def trial_rows(store: ResultsStore, experiment_id: int) -> list[dict]:
    """One dict per trial with the metrics of its best epoch (highest validation clip accuracy)."""
    best: dict[str, dict] = {}
    for trial, epoch in store.epochs(experiment_id):
        current = best.get(trial.trial_id)
        if current is None or epoch.metrics.get(METRIC, 0) > current.get(METRIC, 0):
            best[trial.trial_id] = epoch.metrics
    return [{"trial_id": t.trial_id, "status": t.status, "params": t.params, "epochs": t.epochs,
             "best": best.get(t.trial_id, {})} for t in store.trials(experiment_id)]


def param_space(cfg: ExperimentConfig, data: PreparedData, plan: ResourcePlan, storage: str,
                folds: list[PreparedData] = ()) -> dict:
    """Constants every trial gets; the search space's samples are merged on top. ``folds``: the
    cross-validation views a repeated trial picks its data from."""
    return {
        "arch": cfg.arch,
        "width": cfg.width,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "runtime": {
            "data_dir": data.path,
            "num_classes": len(data.classes),
            "in_channels": cfg.channels,
            "sample_rate": cfg.sample_rate,
            "seed": cfg.seed,
            "max_epochs": cfg.max_epochs,
            "executor": plan.executor,
            "train_workers": plan.train_workers,
            "cpus_per_worker": plan.cpus_per_worker,
            "use_gpu": plan.gpus_per_worker > 0,
            "storage_path": storage,
            "init_from": cfg.init_from or "",
            "folds": [view.path for view in folds],
            "repeats": cfg.repeats,
        },
    }


def tune_config(cfg: ExperimentConfig, name: str, plan: ResourcePlan, space: SearchSpace,
                shape: SearchShape) -> tune.TuneConfig:
    """Optuna TPE (seeded, study stored in the results database) with ASHA on validation clip
    accuracy; a screening's grid first, in order; each configuration repeated ``shape.runs`` times."""
    searcher = OptunaSearch(
        space=space.define,
        metric=METRIC,
        mode=MODE,
        points_to_evaluate=space.grid()[: shape.configurations] if shape.protocol == "screening" else None,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        study_name=name,
        storage=optuna.storages.RDBStorage(cfg.results),
    )
    if shape.runs > 1:
        searcher = Repeater(searcher, repeat=shape.runs)
    scheduler = (
        ASHAScheduler(time_attr="training_iteration", metric=METRIC, mode=MODE, max_t=shape.max_epochs,
                      grace_period=1, reduction_factor=2)
        if shape.scheduler == "asha" else FIFOScheduler()
    )
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=shape.trials,
                           max_concurrent_trials=plan.max_concurrent, trial_dirname_creator=trial_dirname)


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name repeats the whole config)."""
    return f"trial_{trial.trial_id}"


def run_config(cfg: ExperimentConfig, name: str, storage: str, experiment_id: int, shape: SearchShape) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=storage,
        callbacks=[StoreCallback(cfg.results, experiment_id, shape.max_epochs), ProgressCallback(shape.trials)],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=METRIC,
                                                checkpoint_score_order=MODE),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        verbose=0,
    )


def trial_config(params: dict, data: PreparedData, cfg: ExperimentConfig, plan: ResourcePlan, storage: str) -> TrialConfig:
    """Rebuild a stored trial's :class:`TrialConfig` (to load and evaluate its checkpoint)."""
    return TrialConfig.from_dict({**params, "runtime": param_space(cfg, data, plan, storage)["runtime"]})


def evaluate_checkpoint(uri: str, tcfg: TrialConfig, data_dir: str, split: str):
    """Load a checkpoint (``weights_only=True``) and predict every segment of ``split``."""
    model, frontend = build(tcfg)
    with tune.Checkpoint(uri).as_directory() as directory:
        model.load_state_dict(load_checkpoint(directory)["model"])
    batches = iter_batches(open_split(data_dir, split), 64)
    return predict(model, frontend, batches, device=next(model.parameters()).device)


def register_best(store: ResultsStore, experiment_id: int, data: PreparedData, cfg: ExperimentConfig,
                  plan: ResourcePlan, storage: str, folds: list[PreparedData]) -> dict | None:
    """Evaluate the best checkpointed epoch on its test split and record it as a model."""
    found = store.best_epoch(experiment_id)
    if found is None:
        return None
    trial, epoch = found
    tcfg = trial_config(trial.params, data, cfg, plan, storage)
    test = evaluate_checkpoint(epoch.checkpoint_uri, tcfg, fold_data(epoch.metrics, data, folds).path, "test")
    best = {
        "trial_id": trial.trial_id, "epoch": epoch.epoch, "checkpoint_uri": epoch.checkpoint_uri, "params": trial.params,
        "num_params": int(epoch.metrics.get("num_params", 0)), "val_clip_acc": epoch.metrics["val_clip_acc"],
        "test_segment_acc": test.segment_accuracy(), "test_clip_acc": test.clip_accuracy(),
        "classes": data.classes, "confusion": test.confusion(len(data.classes)).tolist(),
    }
    best["model_id"] = store.add_model(experiment_id, **best)
    return best


def score_trials(store: ResultsStore, experiment_id: int, data: PreparedData, cfg: ExperimentConfig,
                 plan: ResourcePlan, storage: str, folds: list[PreparedData]) -> None:
    """Record each training trial's test accuracy (its best checkpointed epoch on its own fold's
    test split): the per-fold, per-seed scores of repeated configurations."""
    for trial, epoch in store.best_epochs(experiment_id):
        tcfg = trial_config(trial.params, data, cfg, plan, storage)
        test = evaluate_checkpoint(epoch.checkpoint_uri, tcfg, fold_data(epoch.metrics, data, folds).path, "test")
        store.record_trial(experiment_id, trial.trial_id, metrics={
            **trial.metrics, "test_clip_acc": test.clip_accuracy(), "test_segment_acc": test.segment_accuracy()})
