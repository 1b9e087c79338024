"""One experiment end to end: data -> plan -> Tuner (Optuna TPE + ASHA) -> store -> best model.

>>> from soundsweep.tuner import ExperimentConfig, run_experiment
>>> summary = run_experiment(ExperimentConfig(space="augmentation", num_samples=4))

The space's ``protocol`` constant decides what a trial does (``train`` or ``screening``, see
``trainables/trial.py``) and how the search runs (:func:`search_shape`). With ``--folds K``
and/or ``--repeats R`` every configuration Optuna suggests runs K x R times, once per fold and
seed (Tune's ``Repeater``; Optuna sees the mean), and the run ends with a table of each
configuration's mean, standard deviation and 95% interval (:mod:`soundsweep.configurations`).
"""
import logging
import os
import time
from dataclasses import asdict, dataclass

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Repeater, Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces import DefineByName, SearchSpace, get_space
from soundsweep.callbacks import EpochBudget, ProgressCallback, ReleaseTrainPlacementGroups, StoreCallback
from soundsweep.catalog import DatasetOptions, coarse_manifest, cv_folds, hierarchy_for
from soundsweep.configurations import configuration_table, configurations
from soundsweep.errors import UsageError
from soundsweep.cluster import plan_on_cluster, release
from soundsweep.plan import ResourcePlan
from soundsweep.prepare import PreparedData, fold_view, prepare
from soundsweep.report import write_report
from soundsweep.report.views import load_experiment
from soundsweep.results import ResultsStore
from soundsweep.storage import exists
from soundsweep.storage import join as join_storage
from soundsweep.storage import resolve as resolve_storage
from trainables.audio import DecodeSpec
from trainables.config import TrialConfig
from trainables.evaluate import TTA, Predictions
from trainables.fidelity import RUNS_DONE, RUNS_METRIC
from trainables.loop import PRECISIONS, build, load_trained, load_weights, predict_split
from trainables.models import ModelConfigError, parameter_count
from trainables.trial import run_trial

METRIC, MODE = "val_clip_acc", "max"
# --objective names -> the reported metric Optuna is given and its direction.
OBJECTIVES = {"accuracy": (METRIC, MODE), "params": ("num_params", "min"), "time": ("epoch_s", "min"),
              "size": ("int8_kb", "min")}
SCHEDULERS = ("asha", "fifo")
FIDELITIES = ("epochs", "runs")
SEARCHES = ("tpe", "grid")
SEGMENT_MODES = ("window", "full")


@dataclass
class ExperimentConfig(DatasetOptions):
    """Everything ``soundsweep tune`` takes; each field is a CLI flag of the same name."""

    space: str = "augmentation"
    arch: str = "resnet2d"
    width: int | None = None
    init_from: str | None = None
    lr: float = 1e-3
    batch_size: int = 32
    coarse: bool = False
    hierarchy: str | None = None
    search: str = "tpe"
    num_samples: int = 12
    max_epochs: int = 4
    max_concurrent: int | None = None
    epoch_budget: int | None = None
    scheduler: str = "asha"
    folds: int = 1
    repeats: int = 1
    fidelity: str = "epochs"
    seed: int = 0
    results: str = "sqlite:///results/soundsweep.db"
    storage_path: str = "results/runs"
    name: str | None = None
    resume: bool = False
    train_workers: int = 1
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    data_cpus: float = 1.0
    executor: str = "auto"
    precision: str = "auto"
    wait_for_resources: float = 0.0
    sample_rate: int = 22050
    channels: int = 1
    segment_seconds: float = 5.0
    overlap: float = 0.25
    segment_mode: str = "window"
    record_augmentation: bool = False
    max_failures: int = 1
    address: str | None = None
    max_model_kb: float | None = None
    max_params: int | None = None
    tta_views: int = 4
    warm_start: str | None = None
    warm_start_top: int = 3
    objective: str = "accuracy"

    def decode_spec(self) -> DecodeSpec:
        """How files become segments. Full clips pad training clips at a random position seeded
        by the experiment seed (SoundFusion); windows pad the rare too-short clip at its end. With
        ``--folds`` a clip is decoded once for every role its fold takes, so every clip is padded
        at its end, as validation and test clips are."""
        full = self.segment_mode == "full"
        return DecodeSpec(self.sample_rate, self.channels, self.segment_seconds, self.overlap,
                          full_clip=full, pad_seed=self.seed if full else None)

    def objectives(self) -> list[str]:
        """The ``--objective`` names, in order (``accuracy`` alone: a single-objective search)."""
        return [name.strip() for name in self.objective.split(",")]

    def check(self) -> None:
        """Reject impossible values before anything starts (one-line errors)."""
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
                            ("--batch-size", self.batch_size), ("--sample-rate", self.sample_rate),
                            ("--folds", self.folds), ("--repeats", self.repeats)):
            if value < 1:
                raise UsageError(f"{flag} {value}: must be at least 1")
        if self.search not in SEARCHES:
            raise UsageError(f"--search {self.search}: choose one of {', '.join(SEARCHES)}")
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
        if self.segment_mode not in SEGMENT_MODES:
            raise UsageError(f"--segment-mode {self.segment_mode}: choose {' or '.join(SEGMENT_MODES)}")
        if self.channels not in (1, 2):
            raise UsageError(f"--channels {self.channels}: choose 1 (mono) or 2 (stereo)")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")
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
        if self.tta_views < 1:
            raise UsageError(f"--tta-views {self.tta_views}: must be at least 1 (1 = no test-time augmentation)")
        if self.hierarchy and not self.coarse:
            raise UsageError("--hierarchy trains nothing by itself: add --coarse to train on its super-classes")

    def tta(self) -> TTA | None:
        """The test-time augmentation of the final evaluation (``None`` for one view)."""
        return TTA(views=self.tta_views, seed=self.seed) if self.tta_views > 1 else None


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
    report: list[str]  # index.html, then the PNG figures, beside the checkpoints
    pareto: list[dict]  # a multi-objective search's Pareto front (pareto_front)


@dataclass(frozen=True)
class SearchShape:
    """How a search runs: its protocol, the configurations Optuna suggests, the runs of each
    (folds x repeats), the reports a trial makes at most, the scheduler, whether the
    configurations are the space's grid in order and what the scheduler's rungs count
    (``epochs``, or ``runs`` when one trial runs all of a configuration's folds and seeds)."""

    protocol: str
    configurations: int
    runs: int
    max_epochs: int
    scheduler: str
    grid: bool = False
    fidelity: str = "epochs"

    @property
    def trials(self) -> int:
        return self.configurations * (1 if self.fidelity == "runs" else self.runs)


def search_shape(cfg: ExperimentConfig, space: SearchSpace) -> SearchShape:
    """The shape of ``cfg``'s search over ``space``.

    ``--search grid`` evaluates the space's grid in order (:meth:`~search_spaces.SearchSpace.grid`),
    each configuration once, the first ``--num-samples`` of them. A screening reports once per
    trial and is always such a grid, without early stopping. Repeated configurations run without
    early stopping too (it would stop some folds or seeds of a configuration and not others),
    unless ``--fidelity runs`` makes each configuration one trial over its runs, whose rungs ASHA
    counts in finished runs (:mod:`trainables.fidelity`).
    """
    protocol = space.constants.get("protocol", "train")
    runs = cfg.folds * cfg.repeats
    grid = protocol == "screening" or cfg.search == "grid"
    configurations = min(cfg.num_samples, space.grid_size()) if grid else cfg.num_samples
    if protocol == "screening":
        return SearchShape(protocol, configurations, runs, 1, "fifo", grid=True)
    if cfg.fidelity == "runs":
        return SearchShape(protocol, configurations, runs, cfg.max_epochs * runs, cfg.scheduler, grid, "runs")
    single = runs == 1 and len(cfg.objectives()) == 1  # ASHA ranks trials on one metric
    return SearchShape(protocol, configurations, runs, cfg.max_epochs, cfg.scheduler if single else "fifo", grid=grid)


def connect_ray(address: str | None) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local Ray unless one is running."""
    # Save experiment state every 2 s (Ray's default waits 10 s or more), so a killed driver
    # loses at most that much bookkeeping; trials keep their own per-epoch checkpoints.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Frequent snapshots are wanted here, so Tune's warning that they are frequent is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        # Ray Data logs every dataset execution at INFO; trials re-read data each epoch.
        quiet = {"RAY_DATA_LOG_LEVEL": os.environ.get("RAY_DATA_LOG_LEVEL", "WARNING")}
        os.environ.update(quiet)
        # The variable reaches the workers; this process read it when it first imported Ray Data.
        logging.getLogger("ray.data").setLevel(quiet["RAY_DATA_LOG_LEVEL"])
        ray.init(address=address, logging_level="WARNING", runtime_env={"env_vars": quiet})
    ray.data.DataContext.get_current().enable_progress_bars = False


def run_experiment(cfg: ExperimentConfig) -> ExperimentSummary:
    cfg.check()
    started = time.perf_counter()
    space = get_space(cfg.space)
    shape = search_shape(cfg, space)
    training = shape.protocol == "train"  # other protocols run in the trial itself, on one worker
    if len(cfg.objectives()) > 1 and not training:
        raise UsageError(f"--objective: the {shape.protocol} protocol scores accuracy only; drop --objective")
    if cfg.init_from and not training:
        raise UsageError(f"--init-from: the {shape.protocol} protocol trains no model; drop --init-from "
                         "(soundsweep probe --checkpoint embeds with a stored model)")
    for flag, budget in (("--max-model-kb", cfg.max_model_kb), ("--max-params", cfg.max_params),
                         ("--epoch-budget", cfg.epoch_budget)):
        if budget is not None and not training:
            raise UsageError(f"{flag}: the {shape.protocol} protocol trains no model; drop {flag}")
    name = cfg.name or f"{cfg.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = resolve_storage(cfg.storage_path)
    check_writable(storage)
    store = ResultsStore(cfg.results)
    existing = store.experiment(name)
    if cfg.resume:
        if existing is None:
            raise UsageError(f"--resume: no experiment named {name!r} in {cfg.results}; check --name and --results")
        check_same_spec(name, existing.config, cfg)
    elif existing is not None:
        raise UsageError(f"experiment {name!r} already exists in {cfg.results}: add --resume or pick another --name")
    warm = warm_start_points(cfg) if cfg.warm_start and not existing else []
    # The manifest needs no Ray: bad --data (or --hierarchy) fails here, before a cluster is joined or started.
    manifest = experiment_manifest(cfg)

    connect_ray(cfg.address)
    try:
        # Planned before any work: a plan the cluster cannot run stops here, in seconds.
        plan = plan_on_cluster(wait_s=cfg.wait_for_resources, train_workers=cfg.train_workers if training else 1,
                               cpus_per_worker=cfg.cpus_per_worker, gpus_per_worker=cfg.gpus_per_worker,
                               data_cpus=cfg.data_cpus, max_concurrent=cfg.max_concurrent,
                               executor=cfg.executor if training else "local", num_samples=shape.trials)
        print(plan.describe(), flush=True)
        if shape.grid:
            print(f"search: grid of {space.grid_size()} configuration(s), running the first {shape.configurations} "
                  "in order (--num-samples)", flush=True)
        if shape.runs > 1 or not training:
            print(f"search: {shape.configurations} configuration(s) x {cfg.folds} fold(s) x {cfg.repeats} seed(s), "
                  f"{shape.protocol} protocol, {shape.scheduler} scheduler on {shape.fidelity}", flush=True)
        # Recorded before the long work (decoding, trials), so a run killed from here on resumes by name.
        experiment_id = store.start_experiment(name, cfg.space, cfg.data or "synthetic", asdict(cfg), storage)
        prepared, folds = experiment_data(cfg, storage, manifest)
        print(prepared.describe(), flush=True)
        for failure in prepared.failures:
            print(f"  skipped {failure['path']}: {failure['error']}", flush=True)
        for view in folds:
            for split in ("train", "val", "test"):
                if view.segments[split] == 0:
                    raise UsageError(f"the {split} split has no usable audio after decoding: check --data")
        data = folds[0]
        if cfg.init_from:
            check_init_from(cfg, data, plan, storage)

        trainable = tune.with_resources(run_trial, plan.trial_resources)
        if cfg.resume and tune.Tuner.can_restore(join_storage(storage, name)):
            tuner = tune.Tuner.restore(join_storage(storage, name), trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            budget = EpochBudget(cfg.results, experiment_id, cfg.epoch_budget) if cfg.epoch_budget else None
            tuner = tune.Tuner(trainable, param_space=param_space(cfg, data, plan, storage, folds if cfg.folds > 1 else ()),
                               tune_config=tune_config(cfg, name, plan, space, shape, warm, budget),
                               run_config=run_config(cfg, name, storage, experiment_id, shape, plan.executor, budget))
        tuner.fit()
    finally:
        if cfg.wait_for_resources:
            release()  # let the autoscaler scale down again

    registered = register_top(store, experiment_id, folds, cfg, storage, k=1)
    best = registered[0] if registered else None
    if training and shape.runs > 1 and shape.fidelity == "epochs":  # a run of --fidelity runs tested itself
        score_trials(store, experiment_id, folds, cfg, storage)
    table = configuration_table(configurations(store, name)) if shape.runs > 1 or not training else []
    wall_s = time.perf_counter() - started
    recorded = {
        "plan": plan.describe(), "data": prepared.describe(), "cache_hit": prepared.cache_hit, "executor": plan.executor,
        "skipped_files": prepared.failures, "wall_s": wall_s, "best_model": best, "configurations": table,
        "objectives": cfg.objectives(), "pareto": pareto_front(store, experiment_id, cfg.objectives()),
    }
    store.finish_experiment(experiment_id, "FINISHED", recorded)
    # The figures are drawn from the finished experiment, then referenced from its summary.
    report = write_report(cfg.results, name, join_storage(storage, name, "report"))
    store.finish_experiment(experiment_id, "FINISHED", {**recorded, "report": report})
    return ExperimentSummary(
        name=name, experiment_id=experiment_id, results_url=cfg.results, plan=plan, data=prepared, best=best,
        wall_s=wall_s, trials=trial_rows(store, name), configurations=table, report=report, pareto=recorded["pareto"],
    )


# The settings that define what an experiment searches; --resume must repeat them unchanged.
SPEC_FIELDS = ("space", "search", "arch", "width", "lr", "batch_size", "data", "dataset", "test_fold", "subset",
               "split_dir", "val_fraction", "synthetic_clips", "coarse", "hierarchy", "num_samples", "max_epochs",
               "epoch_budget", "scheduler", "folds", "repeats", "fidelity", "seed", "sample_rate", "channels", "segment_seconds",
               "overlap", "segment_mode", "max_model_kb", "max_params", "objective", "warm_start", "warm_start_top")


def experiment_manifest(cfg: ExperimentConfig):
    """The experiment's manifest; with ``--coarse``, each label replaced by its super-class."""
    manifest = cfg.manifest(cfg.seed)
    return coarse_manifest(manifest, hierarchy_for(manifest, cfg.hierarchy)) if cfg.coarse else manifest


def experiment_data(cfg: ExperimentConfig, storage: str, manifest) -> tuple[PreparedData, list[PreparedData]]:
    """The prepared segments of the experiment's ``manifest`` (:func:`experiment_manifest`), decoded
    on the first call and a cache hit afterwards, and the train/val/test datasets its trials run on:
    the prepared segments themselves, or with ``--folds K`` the K fold views of segments
    partitioned by fold (:func:`~soundsweep.catalog.cv_folds`)."""
    cache = join_storage(storage, "cache")
    if cfg.folds == 1:
        data = prepare(manifest, cfg.decode_spec(), cache)
        return data, [data]
    fold, pairs = cv_folds(manifest, cfg.folds, cfg.seed, cfg.data or "synthetic")
    by_fold = prepare(manifest.assign(split=[f"fold{f}" for f in fold]), cfg.decode_spec(), cache)
    return by_fold, [fold_view(by_fold, f"fold{test}", f"fold{val}") for test, val in pairs]


def fold_data(metrics: dict, folds: list[PreparedData]) -> PreparedData:
    """The data a trial or model ran on, from :func:`experiment_data`'s datasets: the view of the
    ``fold`` in its metrics, else the one dataset."""
    return folds[metrics.get("fold") or 0]


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
    """Fail before any work if a local ``--storage-path`` cannot be written (creates nothing)."""
    if "://" in storage:
        return
    existing = storage
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        reason = "not a folder" if not os.path.isdir(existing) else "permission denied"
        raise UsageError(f"--storage-path {storage} is not writable ({existing}: {reason}): choose a folder you can write")


def pareto_front(store: ResultsStore, experiment_id: int, objectives: list[str]) -> list[dict]:
    """The completed trials no other completed trial beats on every objective at once (and on one
    strictly), each with its objective values from its last epoch (what Optuna was told), best
    accuracy first; empty for a single-objective search."""
    if len(objectives) < 2:
        return []
    last: dict[str, dict] = {}
    for trial, epoch in store.epochs(experiment_id):
        if trial.status == "COMPLETED" and epoch.epoch >= last.get(trial.trial_id, {}).get("epoch", -1):
            last[trial.trial_id] = {"epoch": epoch.epoch, **epoch.metrics}
    sign = {metric: 1.0 if mode == "max" else -1.0 for metric, mode in (OBJECTIVES[n] for n in objectives)}
    scores = {t: tuple(sign[m] * float(metrics[m]) for m in sign) for t, metrics in last.items()
              if all(m in metrics for m in sign)}

    def beaten(a: tuple) -> bool:
        return any(all(x >= y for x, y in zip(b, a)) and b != a for b in scores.values())

    front = [{"trial_id": t, **{m: last[t][m] for m in sign}} for t, score in scores.items() if not beaten(score)]
    return sorted(front, key=lambda row: -row[METRIC])


def trial_rows(store: ResultsStore, name: str) -> list[dict]:
    """One dict per trial with the metrics of its best epoch (highest validation clip accuracy)."""
    return [{"trial_id": t.trial_id, "status": t.status, "params": t.params, "epochs": len(t.epochs), "best": t.best}
            for t in load_experiment(store, name).trials]


def param_space(cfg: ExperimentConfig, data: PreparedData, plan: ResourcePlan | None, storage: str,
                folds: list[PreparedData] = ()) -> dict:
    """Constants every trial gets; the search space's samples are merged on top. ``folds``: the
    cross-validation views a repeated trial picks its data from.

    Without a ``plan`` (evaluating a stored model) the scaling fields keep their defaults.
    """
    scaling = {} if plan is None else {
        "executor": plan.executor,
        "train_workers": plan.train_workers,
        "cpus_per_worker": plan.cpus_per_worker,
        "use_gpu": plan.gpus_per_worker > 0,
    }
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
            **scaling,
            "precision": cfg.precision,
            "storage_path": storage,
            "init_from": cfg.init_from or "",
            "record_augmentation": cfg.record_augmentation,
            "max_model_kb": cfg.max_model_kb or 0.0,
            "max_params": cfg.max_params or 0,
            "folds": [view.path for view in folds],
            "repeats": cfg.repeats,
            "fidelity": cfg.fidelity,
        },
    }


class ResumableOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch that never trains a configuration twice, survives a replayed trial and
    stops suggesting once the search's ``epoch_budget`` (:class:`~soundsweep.callbacks.EpochBudget`)
    is spent.

    Repeats: TPE samples categorical spaces with replacement (in its random start-up phase
    above all), and a configuration sampled again would train again exactly as before (a trial's
    seed derives from its configuration). A repeat of a finished trial is told that trial's
    value, one of a running trial fails; either way it is marked ``duplicate_of`` (its number)
    and Optuna samples again, up to :attr:`RESAMPLES` times (a small, exhausted space accepts a
    repeat). Points given to evaluate (warm start, grid) are taken as given.

    Replays: a driver killed after Optuna recorded a trial's end (in the results database) but
    before Tune saved its own experiment state resumes that trial from its last checkpoint; the
    replayed results would update a finished Optuna trial, which Optuna refuses
    (UpdateFinishedTrialError kills the run). Such a trial is known already: it is treated as
    complete here.
    """

    RESAMPLES = 20

    def __init__(self, *args, epoch_budget: EpochBudget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_budget = epoch_budget

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.epoch_budget is not None and self.epoch_budget.spent():
            return Searcher.FINISHED  # --epoch-budget: no new configuration
        for _ in range(self.RESAMPLES):
            config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            earlier = self._earlier_with_params(ot_trial)
            if earlier is None or self._enqueued(ot_trial):
                return config
            ot_trial.set_user_attr("duplicate_of", earlier.number)
            if earlier.state == optuna.trial.TrialState.COMPLETE:
                self._ot_study.tell(ot_trial, earlier.values)
            else:
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            del self._ot_trials[trial_id]
        return super().suggest(trial_id)

    def _enqueued(self, ot_trial: optuna.Trial) -> bool:
        """Whether ``ot_trial`` is a point given to evaluate (Optuna's enqueued trial)."""
        return "fixed_params" in self._ot_study._storage.get_trial_system_attrs(ot_trial._trial_id)

    def _earlier_with_params(self, ot_trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
        """A completed trial of the study, or one this search is running, with ``ot_trial``'s
        parameters, if any. A trial left RUNNING by a killed driver is not running: a resumed
        search samples its configuration again and runs it."""
        live = {t.number for trial_id, t in self._ot_trials.items() if trial_id not in self._completed_trials}
        for trial in self._ot_study.get_trials(deepcopy=False):
            done = trial.state == optuna.trial.TrialState.COMPLETE
            running = trial.state == optuna.trial.TrialState.RUNNING and trial.number in live
            if (done or running) and trial.number != ot_trial.number and trial.params == ot_trial.params:
                return trial
        return None

    def _skip_if_closed(self, trial_id: str) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            if self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished():
                self._completed_trials.add(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._skip_if_closed(trial_id)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._skip_if_closed(trial_id)
        super().on_trial_complete(trial_id, result, error)


def warm_start_points(cfg: ExperimentConfig) -> list[dict]:
    """The parameters of the ``--warm-start-top`` best finished trials of the Optuna study
    ``--warm-start`` (an earlier experiment in the same results store), best first, each once.

    They are enqueued in the new study, so its first trials run them before TPE samples; a
    parameter the new space does not suggest is ignored by Optuna."""
    try:
        study = optuna.load_study(study_name=cfg.warm_start, storage=cfg.results)
    except KeyError:
        known = ", ".join(optuna.get_all_study_names(cfg.results)) or "none yet"
        raise UsageError(f"--warm-start {cfg.warm_start}: no such experiment in {cfg.results} (known: {known}); "
                         "name a finished experiment of the same --results") from None
    done = sorted((t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
                   if t.value is not None), key=lambda t: -t.value)
    points: list[dict] = []
    for trial in done:
        if trial.params not in points:
            points.append(dict(trial.params))
    if not points:
        raise UsageError(f"--warm-start {cfg.warm_start}: it has no completed trial yet; let it finish or pick another")
    return points[: cfg.warm_start_top]


def tune_config(cfg: ExperimentConfig, name: str, plan: ResourcePlan, space: SearchSpace,
                shape: SearchShape, warm: list[dict], budget: EpochBudget | None) -> tune.TuneConfig:
    """Optuna TPE (seeded, study stored in the results database) with ASHA on validation clip
    accuracy; ``warm`` (:func:`warm_start_points`) then the grid (``shape.grid``) first, in order;
    each configuration repeated ``shape.runs`` times, or with ``--fidelity runs`` run once over
    its runs: Optuna and ASHA then rank the mean over the finished runs, ASHA's rungs at 1, 2,
    4, ... runs."""
    grid = space.grid()[: shape.configurations] if shape.grid else []
    metrics, modes = zip(*(OBJECTIVES[name] for name in cfg.objectives()))
    multi = len(metrics) > 1  # Optuna's NSGA-II on the values of each trial's last epoch
    by_runs = shape.fidelity == "runs"
    metric = RUNS_METRIC if by_runs else METRIC
    searcher = ResumableOptunaSearch(
        space=DefineByName(cfg.space),
        metric=list(metrics) if multi else metric,
        mode=list(modes) if multi else MODE,
        points_to_evaluate=(warm + grid) or None,
        sampler=optuna.samplers.NSGAIISampler(seed=cfg.seed) if multi else optuna.samplers.TPESampler(seed=cfg.seed),
        study_name=name,
        storage=optuna.storages.RDBStorage(cfg.results),
        epoch_budget=budget,
    )
    if shape.runs > 1 and not by_runs:
        searcher = Repeater(searcher, repeat=shape.runs)
    scheduler = (
        ASHAScheduler(time_attr=RUNS_DONE if by_runs else "training_iteration", metric=metric, mode=MODE,
                      max_t=shape.runs if by_runs else shape.max_epochs, grace_period=1, reduction_factor=2)
        if shape.scheduler == "asha" else FIFOScheduler()
    )
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=shape.trials,
                           max_concurrent_trials=plan.max_concurrent, trial_dirname_creator=trial_dirname)


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name repeats the whole config)."""
    return f"trial_{trial.trial_id}"


def run_config(cfg: ExperimentConfig, name: str, storage: str, experiment_id: int, shape: SearchShape,
               executor: str, budget: EpochBudget | None) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=storage,
        callbacks=[StoreCallback(cfg.results, experiment_id, shape.max_epochs), ProgressCallback(shape.trials),
                   *([ReleaseTrainPlacementGroups()] if executor == "train" else [])],
        stop=budget,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=METRIC,
                                                checkpoint_score_order=MODE),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        verbose=0,
    )


def trial_config(params: dict, data: PreparedData, cfg: ExperimentConfig, plan: ResourcePlan | None,
                 storage: str) -> TrialConfig:
    """Rebuild a stored trial's :class:`TrialConfig` (to load and evaluate its checkpoint)."""
    return TrialConfig.from_dict({**params, "runtime": param_space(cfg, data, plan, storage)["runtime"]})


def evaluation_fields(test: Predictions, classes: list[str], tta: TTA | None = None,
                      tta_test: Predictions | None = None, **metrics) -> dict:
    """The ``ss_models`` columns of a test evaluation: segment accuracy, clip accuracy by majority vote
    (``test_clip_acc``, ``aggregation``, ``confusion``) and by mean probability, and ``metrics``
    (every figure by name: the test metrics, the ``metrics`` given, test-time augmentation)."""
    named = {**test.metrics("test"), **metrics}
    if tta is not None and tta_test is not None:
        named["tta"] = {"views": tta.views, "snr_db": tta.snr_db, **tta_test.metrics("test")}
    return {
        "test_segment_acc": test.segment_accuracy(),
        "test_clip_acc": test.clip_accuracy("majority_vote"),
        "test_clip_acc_mean": test.clip_accuracy("mean_probability"),
        "aggregation": "majority_vote",
        "classes": classes,
        "confusion": test.confusion(len(classes), "majority_vote").tolist(),
        "metrics": named,
    }


def accuracy_by_device(test: Predictions, devices: dict[str, str]) -> dict[str, dict]:
    """Test clips and correct ones (majority vote) per recording device (DCASE2020's a, b, c, s1..s6),
    ``{}`` when the dataset records no device."""
    counts: dict[str, dict] = {}
    for clip_id, label, predicted in zip(*test.clips("majority_vote")):
        if str(clip_id) in devices:
            entry = counts.setdefault(devices[str(clip_id)], {"clips": 0, "correct": 0})
            entry["clips"] += 1
            entry["correct"] += int(label == predicted)
    return dict(sorted(counts.items()))


def register_top(store: ResultsStore, experiment_id: int, folds: list[PreparedData], cfg: ExperimentConfig,
                 storage: str, k: int) -> list[dict]:
    """Evaluate the best checkpointed epoch of each of the ``k`` best trials on its test split (plain
    and with the experiment's test-time augmentation) and record each as a model; best first.

    ``folds`` are :func:`experiment_data`'s datasets: a trial of a cross-validation is tested on
    its own fold's test split, and the model keeps that ``fold`` in its metrics. Only epochs whose
    checkpoint still exists count (Tune deletes those beyond ``num_to_keep``)."""
    registered = []
    for trial, epoch in store.best_epochs(experiment_id, k, usable=exists):
        data = fold_data(epoch.metrics, folds)
        model, frontend = load_trained(epoch.checkpoint_uri, trial_config(trial.params, data, cfg, None, storage))
        test = predict_split(model, frontend, data.path, "test")
        tta = cfg.tta()
        tta_test = predict_split(model, frontend, data.path, "test", tta) if tta else None
        val = {name: value for name, value in epoch.metrics.items() if name.startswith("val_")}
        row = {
            "trial_id": trial.trial_id, "epoch": epoch.epoch, "checkpoint_uri": epoch.checkpoint_uri,
            "params": trial.params, "num_params": int(epoch.metrics.get("num_params", 0)),
            "val_clip_acc": epoch.metrics["val_clip_acc"], "kind": "single", "sources": [],
            **evaluation_fields(test, data.classes, tta, tta_test, fold=epoch.metrics.get("fold"), **val,
                                per_device=accuracy_by_device(test, data.devices)),
        }
        row["model_id"] = store.add_model(experiment_id, **row)
        registered.append(row)
    return registered


def score_trials(store: ResultsStore, experiment_id: int, folds: list[PreparedData], cfg: ExperimentConfig,
                 storage: str) -> None:
    """Record each training trial's test metrics (its best checkpointed epoch on its own fold's
    test split, :meth:`~trainables.evaluate.Predictions.metrics`): the per-fold, per-seed scores
    of repeated configurations."""
    for trial, epoch in store.best_epochs(experiment_id, usable=exists):
        data = fold_data(epoch.metrics, folds)
        model, frontend = load_trained(epoch.checkpoint_uri, trial_config(trial.params, data, cfg, None, storage))
        test = predict_split(model, frontend, data.path, "test")
        store.record_trial(experiment_id, trial.trial_id, metrics={**trial.metrics, **test.metrics("test")})
