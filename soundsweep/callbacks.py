"""Tune callbacks and the stopper run by the driver: write the results store as trials report,
print progress, release what a TorchTrainer trial leaves behind, end a search at its epoch budget.

They hold only plain values so that Tune can pickle them into its experiment state and a
resumed run gets them back; the database engine is opened lazily.
"""
import json
import time

import ray
from ray.tune import Callback, Stopper
from ray.tune.search.repeater import TRIAL_INDEX
from ray.util.placement_group import PlacementGroup, PlacementGroupID

from soundsweep.results import ResultsStore
from soundsweep.storage import as_uri

METRIC_KEYS = ("epoch", "train_loss", "train_segments", "lr", "val_loss", "val_segment_acc", "val_clip_acc", "val_score",
               "val_clip_acc_mean", "epoch_s", "train_s", "num_params", "training_iteration", "time_total_s",
               "node_id", "node_ip", "hostname", "pid", "device", "precision", "epoch_data",
               "fold", "repeat", "test_clip_acc", "selected", "feature_dim", "features_s", "classifier_s", "int8_kb",
               "run", "run_epoch", "runs_done", "runs_val_clip_acc")


def trial_params(config: dict) -> dict:
    """A trial's configuration: its config without the runtime and the repeat index (the fold and
    seed a repeated configuration ran on are in its metrics)."""
    return {k: v for k, v in config.items() if k not in ("runtime", TRIAL_INDEX)}


class OpensStore:
    """Holds the results store's URL and opens the store on first use. Pickled without it (and
    without the names in ``_not_pickled``): Tune pickles callbacks and stoppers into its
    experiment state, and a resumed run opens its own."""

    results_url: str
    _store: ResultsStore | None = None
    _not_pickled: tuple[str, ...] = ("_store",)

    def __getstate__(self):
        return {**self.__dict__, **dict.fromkeys(self._not_pickled)}

    @property
    def store(self) -> ResultsStore:
        if self._store is None:
            self._store = ResultsStore(self.results_url)
        return self._store


class StoreCallback(OpensStore, Callback):
    """Writes each trial, each epoch's metrics and each checkpoint location as they happen.

    A trial over a hard budget (``--max-model-kb``, ``--max-params``) reports only ``pruned``, the
    reason (:func:`trainables.trial.train_trial`): it is recorded with status ``PRUNED`` and no
    epoch. A trial over a configuration's folds and seeds (``--fidelity runs``) reports the runs
    it finished (``runs``, :mod:`trainables.fidelity`): they become the trial's metrics, one entry
    per fold and seed.
    """

    def __init__(self, results_url: str, experiment_id: int, max_epochs: int):
        self.results_url, self.experiment_id, self.max_epochs = results_url, experiment_id, max_epochs

    def on_trial_start(self, iteration, trials, trial, **info):
        self.store.record_trial(self.experiment_id, trial.trial_id, status="RUNNING", params=trial_params(trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "pruned" in result:
            self.store.record_trial(self.experiment_id, trial.trial_id, status="PRUNED", error=result["pruned"])
            return
        metrics = {k: result[k] for k in METRIC_KEYS if k in result}
        # TuneReportCallback (Train path) reports its checkpoint as a path inside the storage
        # filesystem, without the scheme: Train and Tune share that filesystem.
        train_checkpoint = result.get("checkpoint_path")
        uri = as_uri(trial.storage.storage_filesystem, train_checkpoint) if train_checkpoint else None
        self.store.record_epoch(self.experiment_id, trial.trial_id, int(result["epoch"]), metrics, uri)
        runs = {"metrics": {**metrics, "runs": json.loads(result["runs"])}} if "runs" in result else {}
        self.store.record_trial(self.experiment_id, trial.trial_id, wall_time_s=float(result.get("time_total_s", 0)), **runs)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        epoch = (trial.last_result or {}).get("epoch")
        if epoch is not None:
            uri = as_uri(checkpoint.filesystem, checkpoint.path)
            self.store.record_epoch(self.experiment_id, trial.trial_id, int(epoch), checkpoint_uri=uri)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if "pruned" in (trial.last_result or {}):
            return
        epochs = int((trial.last_result or {}).get("epoch", -1)) + 1
        status = "COMPLETED" if epochs >= self.max_epochs else "STOPPED"  # stopped early by the scheduler
        self.store.record_trial(self.experiment_id, trial.trial_id, status=status, retries=trial.num_failures)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.store.record_trial(self.experiment_id, trial.trial_id, status="ERROR", error=error_line(trial),
                                retries=trial.num_failures)


def error_line(trial) -> str:
    """The last line of a failed trial's error file (the exception under Tune's traceback)."""
    if trial.error_file:
        try:
            with open(trial.error_file) as f:
                lines = [line.strip() for line in f if line.strip()]
            if lines:
                return lines[-1]
        except OSError:
            pass
    return "unknown error"


class ProgressCallback(Callback):
    """One status line at most every ``every_s`` seconds (counts, best so far, elapsed, left) and one
    line per trial that fails."""

    def __init__(self, num_samples: int, metric: str = "val_clip_acc", every_s: float = 10.0):
        self.num_samples, self.metric, self.every_s = num_samples, metric, every_s
        self.started = time.monotonic()
        self.last = 0.0
        self.best: tuple[float, str, int] | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if value is not None and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.trial_id, int(result.get("epoch", 0)))

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self.last >= self.every_s:
            self.print_status(trials)

    def on_experiment_end(self, trials, **info):
        self.print_status(trials)

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(f"trial {trial.trial_id} failed, retrying from its last checkpoint: {error_line(trial)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        # With Ray's lines off the console (soundsweep.console) this is where a failure shows.
        print(f"trial {trial.trial_id} failed: {error_line(trial)} (traceback: {trial.error_file})", flush=True)

    def print_status(self, trials) -> None:
        self.last = time.monotonic()
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        elapsed = int(time.monotonic() - self.started)
        best = f"best {self.metric} {self.best[0]:.3f} ({self.best[1]}, epoch {self.best[2]})" if self.best else "no result yet"
        state = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        left = max(self.num_samples - len(trials), 0)
        print(f"[{elapsed // 60:3d}m{elapsed % 60:02d}s] trials {len(trials)}/{self.num_samples}: {state or 'starting'} | "
              f"{best} | {left} not started", flush=True)


class ReleaseTrainPlacementGroups(Callback):
    """Removes a TorchTrainer trial's worker placement group when the trial ends or is retried.

    Tune stops a trial the moment its last result arrives and kills its actor, and with it the
    Train controller it started; Train's cleaner actor then asks Ray's State API whether the
    controller is gone, which never answers without the dashboard (tests, clusters started with
    ``--include-dashboard=false``): the group keeps its CPUs for the life of the cluster and later
    trials wait for them forever. Each worker reports its group (``placement_group``)."""

    def on_trial_complete(self, iteration, trials, trial, **info):
        release((trial.last_result or {}).get("placement_group"))

    on_trial_error = on_trial_recover = on_trial_complete


def release(group_id: str | None) -> None:
    """Remove the placement group ``group_id`` (hex) if it still holds its resources."""
    if group_id and ray.util.placement_group_table().get(group_id, {}).get("state") == "CREATED":
        ray.util.remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(group_id))))


class EpochBudget(OpensStore, Stopper):
    """The search's epoch budget (``--epoch-budget``): stops every trial at its next result once the
    experiment's trials have trained ``budget`` epochs in total; the searcher asks
    :meth:`spent` before each new configuration (:class:`~soundsweep.experiment.search.ResumableOptunaSearch`).

    An epoch counts once per trial and epoch number (Tune hands a finished function trial's last
    result to the stopper a second time; a pruned configuration's report is no epoch). The count
    starts from the epochs the results store holds, so a resumed search does not get its budget
    twice. A trial that is running when the budget is reached finishes the epoch it is in, so a
    search overshoots by at most one epoch per other concurrent trial. Tune's experiment-wide
    ``stop_all`` is not used: it ends trials without telling the searcher or the callbacks, which
    would leave them RUNNING in Optuna and in the results store."""

    _not_pickled = ("_store", "trained")  # a resumed run counts again from the store

    def __init__(self, results_url: str, experiment_id: int, budget: int):
        self.results_url, self.experiment_id, self.budget = results_url, experiment_id, budget
        self.trained: set[tuple[str, int]] | None = None

    def spent(self) -> bool:
        """Whether the stored epochs have reached the budget (no new configuration should start)."""
        return self.store.epoch_count(self.experiment_id) >= self.budget

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.trained is None:
            self.trained = {(trial.trial_id, epoch.epoch) for trial, epoch in self.store.epochs(self.experiment_id)}
        if "epoch" in result and "pruned" not in result and (trial_id, result["epoch"]) not in self.trained:
            self.trained.add((trial_id, result["epoch"]))
            if len(self.trained) == self.budget:
                print(f"epoch budget spent ({self.budget} epochs): stopping the search", flush=True)
        return len(self.trained) >= self.budget

    def stop_all(self) -> bool:
        return False
