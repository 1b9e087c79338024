"""Scoring finished trials: the best models evaluated on the test split and registered, every
trial's test metrics, per-device accuracy and the Pareto front of a multi-objective search."""
from soundsweep.experiment.config import OBJECTIVES, ExperimentConfig
from soundsweep.experiment.data import fold_data, trial_config
from soundsweep.prepare import PreparedData
from soundsweep.progress import Progress
from soundsweep.report.views import load_experiment
from soundsweep.results import ResultsStore
from soundsweep.storage import exists
from trainables.evaluate import AGGREGATIONS, TTA, Predictions
from trainables.model_io import load_trained, predict_split
from trainables.objective import METRIC


def evaluation_fields(test: Predictions, classes: list[str], tta: TTA | None = None,
                      tta_test: Predictions | None = None, aggregation: str = "majority_vote", **metrics) -> dict:
    """The ``ss_models`` columns of a test evaluation: segment accuracy, clip accuracy by
    ``aggregation`` (``test_clip_acc``, ``confusion``) and by mean probability, and ``metrics``
    (every figure by name: the test metrics, the ``metrics`` given, test-time augmentation)."""
    named = {**test.metrics("test"), **metrics}
    if tta is not None and tta_test is not None:
        named["tta"] = {"views": tta.views, "snr_db": tta.snr_db, **tta_test.metrics("test")}
    return {
        "test_segment_acc": test.segment_accuracy(),
        "test_clip_acc": test.clip_accuracy(aggregation),
        "test_clip_acc_mean": test.clip_accuracy("mean_probability"),
        "aggregation": aggregation,
        "classes": classes,
        "confusion": test.confusion(len(classes), aggregation).tolist(),
        "metrics": named,
    }


def view_choices(max_views: int) -> list[int]:
    """The TTA view counts tried on validation: 1 (no TTA), powers of two below ``--tta-views``, and it."""
    return sorted({1, max_views, *(v for v in (2, 4, 8, 16) if v < max_views)})


def predict_views(model, frontend, data: PreparedData, split: str, views: int, seed: int,
                  bar: Progress | None = None) -> Predictions:
    """``split``'s predictions with ``views`` test-time augmentation views (1: none); ``bar``
    counts each segment once per view (a pass's cost)."""
    predictions = predict_split(model, frontend, data.path, split, TTA(views, seed=seed) if views > 1 else None)
    if bar is not None:
        bar.update(data.segments[split] * views)
    return predictions


def evaluation_cost(data: PreparedData, cfg: ExperimentConfig) -> int:
    """Segment views :func:`register_top` predicts for one model of ``data``, before its choice
    of views is known: every validation candidate, and the test split plain and with
    ``--tta-views`` (a chosen count between them adds its own pass)."""
    return (data.segments["val"] * sum(view_choices(cfg.tta_views))
            + data.segments["test"] * sum({1, cfg.tta_views}))


def choose_evaluation(model, frontend, data: PreparedData, cfg: ExperimentConfig, bar: Progress | None = None) -> dict:
    """How the final test evaluates a model, chosen on the validation split, never assumed: TTA
    on or off and its number of views (:func:`view_choices`), and the clip aggregation. The
    choice with the best validation clip accuracy wins; ties go to fewer views, then the majority
    vote. Returns ``views``, ``aggregation`` and ``val``, every candidate's validation figure."""
    scores = {}
    for views in view_choices(cfg.tta_views):
        val = predict_views(model, frontend, data, "val", views, cfg.seed, bar)
        for aggregation in AGGREGATIONS:
            scores[(views, aggregation)] = val.clip_accuracy(aggregation)
    views, aggregation = max(scores, key=lambda k: (scores[k], -k[0], k[1] == "majority_vote"))
    return {"views": views, "aggregation": aggregation,
            "val": [{"views": v, "aggregation": a, "val_clip_acc": acc} for (v, a), acc in scores.items()]}


def accuracy_by_device(test: Predictions, devices: dict[str, str], aggregation: str = "majority_vote") -> dict[str, dict]:
    """Test clips and correct ones (by ``aggregation``) per recording device (DCASE2020's a, b, c,
    s1..s6), ``{}`` when the dataset records no device."""
    counts: dict[str, dict] = {}
    for clip_id, label, predicted in zip(*test.clips(aggregation)):
        if str(clip_id) in devices:
            entry = counts.setdefault(devices[str(clip_id)], {"clips": 0, "correct": 0})
            entry["clips"] += 1
            entry["correct"] += int(label == predicted)
    return dict(sorted(counts.items()))



def register_top(store: ResultsStore, experiment_id: int, folds: list[PreparedData], cfg: ExperimentConfig,
                 storage: str, k: int) -> list[dict]:
    """Evaluate the best checkpointed epoch of each of the ``k`` best trials on its test split, the
    way :func:`choose_evaluation` chose on validation (also plain, and with the experiment's
    ``--tta-views``, under ``metrics``), and record each as a model; best first.

    ``folds`` are :func:`experiment_data`'s datasets: a trial of a cross-validation is tested on
    its own fold's test split, and the model keeps that ``fold`` in its metrics. Only epochs whose
    checkpoint still exists count (Tune deletes those beyond ``num_to_keep``)."""
    best = store.best_epochs(experiment_id, k, usable=exists)
    if not best:
        return []
    cost = sum(evaluation_cost(fold_data(epoch.metrics, folds), cfg) for _, epoch in best)
    what = "evaluating the best model" if len(best) == 1 else f"evaluating the {len(best)} best models"
    with Progress(cost, what, "segments") as bar:
        return [register(store, experiment_id, trial, epoch, folds, cfg, storage, bar) for trial, epoch in best]


def register(store: ResultsStore, experiment_id: int, trial, epoch, folds: list[PreparedData], cfg: ExperimentConfig,
             storage: str, bar: Progress) -> dict:
    """:func:`register_top`'s work for one trial's best ``epoch``: the stored model's row."""
    data = fold_data(epoch.metrics, folds)
    model, frontend = load_trained(epoch.checkpoint_uri, trial_config(trial.params, data, cfg, None, storage))
    choice = choose_evaluation(model, frontend, data, cfg, bar)
    if choice["views"] not in {1, cfg.tta_views}:
        bar.add_total(data.segments["test"] * choice["views"])
    by_views = {views: predict_views(model, frontend, data, "test", views, cfg.seed, bar)
                for views in sorted({1, choice["views"], cfg.tta_views})}
    test = by_views[choice["views"]]
    tta = cfg.tta()
    val = {name: value for name, value in epoch.metrics.items() if name.startswith("val_")}
    row = {
        "trial_id": trial.trial_id, "epoch": epoch.epoch, "checkpoint_uri": epoch.checkpoint_uri,
        "params": trial.params, "num_params": int(epoch.metrics.get("num_params", 0)),
        "val_clip_acc": epoch.metrics["val_clip_acc"], "kind": "single", "sources": [],
        **evaluation_fields(test, data.classes, tta, by_views[tta.views] if tta else None, choice["aggregation"],
                            fold=epoch.metrics.get("fold"), **val, evaluation=choice,
                            plain=by_views[1].metrics("test"),
                            per_device=accuracy_by_device(test, data.devices, choice["aggregation"])),
    }
    row["model_id"] = store.add_model(experiment_id, **row)
    return row


def score_trials(store: ResultsStore, experiment_id: int, folds: list[PreparedData], cfg: ExperimentConfig,
                 storage: str) -> None:
    """Record each training trial's test metrics (its best checkpointed epoch on its own fold's
    test split, :meth:`~trainables.evaluate.Predictions.metrics`): the per-fold, per-seed scores
    of repeated configurations."""
    best = store.best_epochs(experiment_id, usable=exists)
    with Progress(len(best), "scoring every trial on its test split", "trials") as bar:
        for trial, epoch in best:
            data = fold_data(epoch.metrics, folds)
            model, frontend = load_trained(epoch.checkpoint_uri, trial_config(trial.params, data, cfg, None, storage))
            test = predict_split(model, frontend, data.path, "test")
            store.record_trial(experiment_id, trial.trial_id, metrics={**trial.metrics, **test.metrics("test")})
            bar.update()


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
