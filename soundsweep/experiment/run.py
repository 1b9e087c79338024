"""One experiment end to end, as a story: check, claim a name, join Ray, plan, record where it runs
(:mod:`soundsweep.provenance`), decode once, fit the reference baseline, search, score the best
models, record and report.

>>> from soundsweep.experiment import ExperimentConfig, run_experiment
>>> summary = run_experiment(ExperimentConfig(space="augmentation", num_samples=4))
"""
import statistics
import time
from dataclasses import asdict, dataclass

from ray import tune

from search_spaces import get_space
from soundsweep import config_file, provenance, tracking
from soundsweep.callbacks import EpochBudget
from soundsweep.cluster import plan_on_cluster, release
from soundsweep.configurations import configuration_table, configurations
from soundsweep.derived.ensemble import ensemble
from soundsweep.errors import UsageError
from soundsweep.experiment.config import ExperimentConfig, check_same_spec
from soundsweep.experiment.data import experiment_data, experiment_manifest, param_space, trial_config
from soundsweep.experiment.evaluation import pareto_front, register_top, score_trials, trial_rows
from soundsweep.experiment.preflight import check_segments, check_writable, claim_name, connect_ray
from soundsweep.experiment.reference import describe_reference, reference
from soundsweep.experiment.search import SearchShape, run_config, search_shape, tune_config, warm_start_points
from soundsweep.plan import ResourcePlan
from soundsweep.prepare import PreparedData
from soundsweep.report import write_report
from soundsweep.results import ResultsStore
from soundsweep.storage import join as join_storage
from soundsweep.storage import resolve as resolve_storage
from trainables.model_io import build, load_weights
from trainables.models import ModelConfigError
from trainables.objective import RANK_METRIC
from trainables.trial import run_trial


@dataclass
class ExperimentSummary:
    name: str
    experiment_id: int
    results_url: str
    plan: ResourcePlan
    data: PreparedData
    best: dict | None  # the experiment's best model: its best trial's, or the --ensemble-top ensemble (preferred)
    wall_s: float
    trials: list[dict]
    configurations: list[dict]
    report: list[str]  # index.html, then the PNG figures, beside the checkpoints
    pareto: list[dict]  # a multi-objective search's Pareto front (pareto_front)
    reference: dict  # the MFCC+SVM reference on the same split (soundsweep.experiment.reference)
    mlflow: str | None = None  # --mlflow
    mlflow_run: str | None = None  # the MLflow run the best model was logged to (soundsweep.tracking)
    ensemble: dict | None = None  # --ensemble-top: the stored ensemble of the K best trials (derived.ensemble)
    best_single: dict | None = None  # the best trial's model (what MLflow logs and export takes)


def run_experiment(cfg: ExperimentConfig) -> ExperimentSummary:
    cfg.check()
    started = time.perf_counter()
    space = get_space(cfg.space)
    shape = search_shape(cfg, space)
    name = cfg.name or f"{cfg.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = resolve_storage(cfg.storage_path)
    check_writable(storage)
    store = ResultsStore(cfg.results)
    existing = claim_name(store, name, cfg.resume)
    if existing is not None:
        check_same_spec(name, existing.config, cfg)
    if cfg.mlflow:  # before Ray starts: a store that cannot be used costs seconds
        tracking.check_store(cfg.mlflow, name)
        print(f"mlflow: every trial is a run of the MLflow experiment {name} in {cfg.mlflow}", flush=True)
    warm = warm_start_points(cfg) if cfg.warm_start and not existing else []
    # The manifest needs no Ray: bad --data (or --hierarchy) fails here, before a cluster is joined or started.
    manifest = experiment_manifest(cfg)

    connect_ray(cfg.address, cfg.verbose)
    try:
        plan = plan_search(cfg, shape, space)
        # Recorded before the long work (decoding, trials), so a run killed from here on resumes by name.
        experiment_id = store.start_experiment(name, cfg.space, cfg.data or "synthetic", recorded_config(cfg), storage,
                                               provenance.collect())
        prepared, folds = experiment_data(cfg, storage, manifest)
        print(prepared.describe(), flush=True)
        for failure in prepared.failures:
            print(f"  skipped {failure['path']}: {failure['error']}", flush=True)
        check_segments(view.segments for view in folds)
        baseline = reference(folds[0], cfg.sample_rate)
        print(describe_reference(baseline), flush=True)
        if cfg.init_from:
            check_init_from(cfg, folds[0], plan, storage)
        # Tune copies each trial's event files there as it saves the experiment's state (every 2 s).
        print(f"tensorboard: tensorboard --logdir {join_storage(storage, name)}", flush=True)
        tuner_for(cfg, name, storage, experiment_id, shape, plan, space, warm, folds).fit()
    finally:
        if cfg.wait_for_resources:
            release()  # let the autoscaler scale down again

    registered = register_top(store, experiment_id, folds, cfg, storage, k=1)
    single = registered[0] if registered else None
    if shape.protocol == "train" and shape.runs > 1 and shape.fidelity == "epochs":  # --fidelity runs tested itself
        score_trials(store, experiment_id, folds, cfg, storage)
    table = configuration_table(configurations(store, name)) if shape.runs > 1 or shape.protocol != "train" else []
    wall_s = time.perf_counter() - started
    recorded = {
        "plan": plan.describe(), "data": prepared.describe(), "cache_hit": prepared.cache_hit, "executor": plan.executor,
        "skipped_files": prepared.failures, "wall_s": wall_s, "best_single": single, "configurations": table,
        "objectives": cfg.objectives(), "pareto": pareto_front(store, experiment_id, cfg.objectives()),
        "reference": baseline,
    }
    trials = trial_rows(store, name)
    if cfg.ensemble_top and single and shape.protocol == "train":
        recorded["ensemble"] = top_ensemble(store, name, cfg.ensemble_top, len(trials))
    best = recorded["best_model"] = preferred(single, recorded.get("ensemble"))
    store.finish_experiment(experiment_id, "FINISHED", recorded)
    # The pages show the finished experiment, so they are drawn after it is recorded, then listed in it.
    recorded["report"] = write_report(cfg.results, name, join_storage(storage, name, "report"))
    store.finish_experiment(experiment_id, "FINISHED", recorded)
    mlflow_run = tracking.log_best_model(cfg.mlflow, name, single, join_storage(storage, name, "report")) \
        if cfg.mlflow and single else None
    return ExperimentSummary(
        name=name, experiment_id=experiment_id, results_url=cfg.results, plan=plan, data=prepared, best=best,
        best_single=single,
        wall_s=wall_s, trials=trials, configurations=table, report=recorded["report"],
        pareto=recorded["pareto"], reference=baseline, mlflow=cfg.mlflow, mlflow_run=mlflow_run,
        ensemble=recorded.get("ensemble"),
    )


def top_ensemble(store: ResultsStore, name: str, k: int, trials: int) -> dict | None:
    """``--ensemble-top K``: the mean-probability ensemble of experiment ``name``'s ``k`` best
    trials (fewer when fewer trained), stored as a model; ``None`` when it ran one trial only."""
    if trials < 2:
        print(f"--ensemble-top {k}: one trial only, nothing to average", flush=True)
        return None
    return ensemble(store, "mean", name, k)


def preferred(single: dict | None, ens: dict | None) -> dict | None:
    """The experiment's best model: the ``--ensemble-top`` ensemble unless averaging hurt on
    validation, i.e. its :data:`~trainables.objective.RANK_METRIC` falls below the mean of its
    members' (each measured the same way: plain predictions of the validation split); else the
    best trial's model.

    Not "at least its best member": the members were chosen for their validation scores, so the
    best of them is the maximum of many noisy figures and sits above its true accuracy (the
    winner's curse), while the ensemble's figure is not such a maximum. On the drum-kit
    benchmark the best-validation trial was the second worst of the 5 best on test, and the
    ensemble tested above it (docs/ARCHITECTURE.md, "Which model a search keeps")."""
    if ens is None or single is None:
        return single
    members = [m[RANK_METRIC] for m in ens["metrics"]["members_val"].values()]
    ens_score, mean_score = ens["metrics"][RANK_METRIC], statistics.fmean(members)
    figures = (f"validation {RANK_METRIC} {ens_score:.3f} against its {len(members)} members' mean {mean_score:.3f}, "
               f"best {max(members):.3f}")
    if ens_score < mean_score:
        print(f"--ensemble-top: averaging hurt on validation ({figures}): the best model stays model "
              f"{single['model_id']}", flush=True)
        return single
    print(f"--ensemble-top: model {ens['model_id']}, the ensemble, is the experiment's best model ({figures})",
          flush=True)
    return ens


def recorded_config(cfg: ExperimentConfig) -> dict:
    """What the results store keeps of the configuration: every field (what ``--resume`` and the
    stored-model commands read back), plus ``config_yaml``, the settings as a ``--config`` file
    that repeats the run (:meth:`ExperimentConfig.flag_values`; the report shows it)."""
    return {**asdict(cfg), "config_yaml": config_file.write(cfg.flag_values())}


def plan_search(cfg: ExperimentConfig, shape: SearchShape, space) -> ResourcePlan:
    """The resource plan, made before any work so a plan the cluster cannot run stops in seconds;
    printed with the search's shape."""
    training = shape.protocol == "train"  # other protocols run in the trial itself, on one worker
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
    return plan


def tuner_for(cfg: ExperimentConfig, name: str, storage: str, experiment_id: int, shape: SearchShape,
              plan: ResourcePlan, space, warm: list[dict], folds: list[PreparedData]) -> tune.Tuner:
    """The Tuner of a new search, or the restored one of a search resumed with ``--resume``."""
    trainable = tune.with_resources(run_trial, plan.trial_resources)
    path = join_storage(storage, name)
    if cfg.resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    budget = EpochBudget(cfg.results, experiment_id, cfg.epoch_budget) if cfg.epoch_budget else None
    return tune.Tuner(trainable, param_space=param_space(cfg, folds[0], plan, storage, folds if cfg.folds > 1 else ()),
                      tune_config=tune_config(cfg, name, plan, space, shape, warm, budget),
                      run_config=run_config(cfg, name, storage, experiment_id, shape, plan.executor, budget))


def check_init_from(cfg: ExperimentConfig, data: PreparedData, plan: ResourcePlan, storage: str) -> None:
    """Load ``--init-from`` into the experiment's model once on the driver, so a mismatch fails now."""
    model, _ = build(trial_config({"arch": cfg.arch, "width": cfg.width}, data, cfg, plan, storage))
    try:
        skipped = load_weights(model, cfg.init_from)
    except (ModelConfigError, FileNotFoundError, OSError) as exc:
        raise UsageError(f"--init-from {cfg.init_from}: {exc}".splitlines()[0]) from exc
    if skipped:
        print(f"init-from: classifier re-initialised ({len(skipped)} entries differ in shape)", flush=True)
