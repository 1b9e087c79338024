"""How a search runs: its shape, the Optuna searcher (with warm start and no repeated
configurations), the ASHA scheduler and Tune's run configuration."""
import math
from dataclasses import asdict, dataclass

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Repeater, Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces import DefineByName, SearchSpace
from soundsweep import tracking
from soundsweep.callbacks import EpochBudget, ProgressCallback, ReleaseTrainPlacementGroups, StoreCallback
from soundsweep.errors import UsageError
from soundsweep.experiment.config import OBJECTIVES, ExperimentConfig
from soundsweep.plan import ResourcePlan
from trainables.augment import AugmentConfig
from trainables.fidelity import RUNS_DONE, RUNS_METRIC
from trainables.objective import MODE, RANK_METRIC, checkpoint_config


@dataclass(frozen=True)
class SearchShape:
    """How a search runs: its protocol, the configurations Optuna suggests, the runs of each
    (folds x repeats), the reports a trial makes at most, the scheduler, whether the
    configurations are the space's grid in order, what the scheduler's rungs count (``epochs``,
    or ``runs`` when one trial runs all of a configuration's folds and seeds) and where its first
    rung falls (``grace_period``, :func:`first_rung`)."""

    protocol: str
    configurations: int
    runs: int
    max_epochs: int
    scheduler: str
    grid: bool = False
    fidelity: str = "epochs"
    grace_period: int = 1

    @property
    def trials(self) -> int:
        return self.configurations * (1 if self.fidelity == "runs" else self.runs)



def search_shape(cfg: ExperimentConfig, space: SearchSpace) -> SearchShape:
    """The shape of ``cfg``'s search over ``space``.

    ``--search grid`` evaluates the space's grid in order (:meth:`~search_spaces.SearchSpace.grid`),
    each configuration once, the first ``--num-samples`` of them; TPE samples ``--num-samples``
    configurations, or the whole space where it holds fewer. A screening reports once per
    trial and is always such a grid, without early stopping. Repeated configurations run without
    early stopping too (it would stop some folds or seeds of a configuration and not others),
    unless ``--fidelity runs`` makes each configuration one trial over its runs, whose rungs ASHA
    counts in finished runs (:mod:`trainables.fidelity`).
    """
    protocol = space.constants.get("protocol", "train")
    runs = cfg.folds * cfg.repeats
    grid = protocol == "screening" or cfg.search == "grid"
    # A space with fewer configurations than --num-samples cannot fill it: a repeat would train
    # exactly as before (a trial's seed derives from its configuration). --space fixed is one.
    configurations = space.grid_size(limit=cfg.num_samples)
    if protocol == "screening":
        return SearchShape(protocol, configurations, runs, 1, "fifo", grid=True)
    if cfg.fidelity == "runs":
        return SearchShape(protocol, configurations, runs, cfg.max_epochs * runs, cfg.scheduler, grid, "runs")
    single = runs == 1 and len(cfg.objectives()) == 1  # ASHA ranks trials on one metric
    warmup = max(cfg.training_settings()["warmup_epochs"], space.max_warmup_epochs)
    return SearchShape(protocol, configurations, runs, cfg.max_epochs, cfg.scheduler if single else "fifo", grid=grid,
                       grace_period=first_rung(cfg.max_epochs, warmup))


def first_rung(max_epochs: int, warmup_epochs: float) -> int:
    """ASHA's grace period: the epoch of its first decision. Never inside the warm-up (every
    trial is still near chance there) and never before a quarter of the run, so a 20-epoch run
    first compares trials after 5 epochs, then 10 and 20 (reduction factor 2)."""
    return max(1, min(max_epochs, max(math.ceil(warmup_epochs) + 1, math.ceil(max_epochs / 4))))



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
    start = [] if shape.grid or warm else recipe_point(cfg, space)
    metrics, modes = zip(*(OBJECTIVES[name] for name in cfg.objectives()))
    multi = len(metrics) > 1  # Optuna's NSGA-II on the values of each trial's last epoch
    by_runs = shape.fidelity == "runs"
    metric = RUNS_METRIC if by_runs else RANK_METRIC
    searcher = ResumableOptunaSearch(
        space=DefineByName(cfg.space),
        metric=list(metrics) if multi else metric,
        mode=list(modes) if multi else MODE,
        points_to_evaluate=(warm + start + grid) or None,
        sampler=optuna.samplers.NSGAIISampler(seed=cfg.seed) if multi else optuna.samplers.TPESampler(seed=cfg.seed),
        study_name=name,
        storage=optuna.storages.RDBStorage(cfg.results),
        epoch_budget=budget,
    )
    if shape.runs > 1 and not by_runs:
        searcher = Repeater(searcher, repeat=shape.runs)
    scheduler = (
        ASHAScheduler(time_attr=RUNS_DONE if by_runs else "training_iteration", metric=metric, mode=MODE,
                      max_t=shape.runs if by_runs else shape.max_epochs, grace_period=shape.grace_period,
                      reduction_factor=2)
        if shape.scheduler == "asha" else FIFOScheduler()
    )
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=shape.trials,
                           max_concurrent_trials=plan.max_concurrent, trial_dirname_creator=trial_dirname)



def recipe_point(cfg: ExperimentConfig, space: SearchSpace) -> list[dict]:
    """The recipe's own configuration, as the first point a TPE search evaluates, where the space
    can express it (every parameter it samples has the recipe's value among its choices: the
    augmentation and recipe spaces with the default recipe). The search then starts from a known
    good configuration instead of a random one, and its best trial is never worse on validation
    than the recipe alone. Empty when the space cannot express it or samples nothing."""
    values = {**asdict(AugmentConfig()), **cfg.training_settings()}
    point = space.point_for(values)
    return [point] if point else []


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name repeats the whole config)."""
    return f"trial_{trial.trial_id}"



def run_config(cfg: ExperimentConfig, name: str, storage: str, experiment_id: int, shape: SearchShape,
               executor: str, budget: EpochBudget | None) -> tune.RunConfig:
    """Tune's run configuration: the storage, SoundSweep's callbacks (plus Ray's MLflow callback
    with ``--mlflow``), the epoch budget, checkpoints and retries. ``verbose=0``: the run prints
    its own status lines (:class:`~soundsweep.callbacks.ProgressCallback`)."""
    return tune.RunConfig(
        name=name,
        storage_path=storage,
        callbacks=[StoreCallback(cfg.results, experiment_id, shape.max_epochs), ProgressCallback(shape.trials),
                   *([ReleaseTrainPlacementGroups()] if executor == "train" else []),
                   *([tracking.logger_callback(cfg.mlflow, name)] if cfg.mlflow else [])],
        stop=budget,
        checkpoint_config=checkpoint_config(tune.CheckpointConfig),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        verbose=0,
    )
