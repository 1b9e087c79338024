"""Scoring finished trials: the best models evaluated on the test split and registered, every
trial's test metrics, per-device accuracy and the Pareto front of a multi-objective search."""
from soundsweep.experiment.config import OBJECTIVES, ExperimentConfig
from soundsweep.experiment.data import fold_data, trial_config
from soundsweep.prepare import PreparedData
from soundsweep.report.views import load_experiment
from soundsweep.results import ResultsStore
from soundsweep.storage import exists
from trainables.evaluate import TTA, Predictions
from trainables.model_io import load_trained, predict_split
from trainables.objective import METRIC


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
