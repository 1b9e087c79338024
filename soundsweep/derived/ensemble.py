"""Ensembles of stored models: mean probabilities, or logistic-regression stacking.

``mean`` averages the members' softmax outputs per segment (Hu et al. fuse their Task 1b
systems "by logistic regression or by average", docs/MODELS.md 2.6). ``stack`` fits a
multinomial logistic regression on the validation split, taking the members' log-probabilities
side by side as features, and applies it to the test split, so test labels never reach the fit.
Members are stored models by id, or the ``k`` best trials of an experiment (each registered as
a model first).

    soundsweep ensemble --experiment NAME --top-k 3 --method stack
    soundsweep ensemble --models 4,7,9 --method mean
"""
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from soundsweep.derived.stored import StoredExperiment, find_experiment, find_model
from soundsweep.errors import UsageError
from soundsweep.experiment.evaluation import evaluation_fields, register_top
from soundsweep.results import ResultsStore
from trainables.evaluate import Predictions

METHODS = ("mean", "stack")


def _features(members: list[Predictions]) -> np.ndarray:
    return np.concatenate([np.log(np.clip(m.probs, 1e-7, None)) for m in members], axis=1)


@dataclass
class Stacker:
    """A logistic regression over the members' log-probabilities; :meth:`fit` sees one split only."""

    regularization: float = 1.0
    model: LogisticRegression | None = None

    def fit(self, members: list[Predictions]) -> "Stacker":
        """Fit on one split's aligned member predictions (the validation split)."""
        self.model = LogisticRegression(C=self.regularization, max_iter=2000).fit(_features(members), members[0].labels)
        return self

    @classmethod
    def from_info(cls, info: dict, num_classes: int) -> "Stacker":
        """The stacker an ensemble stored (``metrics["stack"]``, :func:`combine`'s ``info``), rebuilt
        without a fit: the same coefficients give the same probabilities. Ensembles stored before the
        fitted classes were recorded are rebuilt when the fit saw every class."""
        coef, intercept = np.array(info["coef"]), np.array(info["intercept"])
        fitted = info.get("classes")
        if fitted is None and len(coef) == num_classes:
            fitted = list(range(num_classes))
        if fitted is None:
            raise UsageError("this stacked ensemble does not record which classes its fit saw; build it again "
                             "with soundsweep ensemble --method stack")
        model = LogisticRegression()
        model.coef_, model.intercept_, model.classes_ = coef, intercept, np.array(fitted)
        model.n_features_in_ = coef.shape[1]
        return cls(model=model)

    def predict(self, members: list[Predictions]) -> Predictions:
        """Stacked probabilities on aligned member predictions; a class absent from the fit split gets 0."""
        probs = np.zeros_like(members[0].probs)
        probs[:, self.model.classes_] = self.model.predict_proba(_features(members))
        first = members[0]
        return Predictions(first.clip_ids, first.labels, probs, first.keys)


def average(members: list[Predictions]) -> Predictions:
    """The ``mean`` ensemble of aligned member predictions: their probabilities averaged per segment."""
    return Predictions(members[0].clip_ids, members[0].labels, np.mean([m.probs for m in members], axis=0),
                       members[0].keys)


def combine(method: str, val: list[Predictions], test: list[Predictions]) -> tuple[Predictions, Predictions, dict]:
    """The ensemble's ``(val, test)`` predictions from aligned member predictions, and what was fit.

    ``mean`` averages probabilities; ``stack`` fits a :class:`Stacker` on ``val`` only and applies
    it to both splits (its val figures are then in-sample).
    """
    if method == "mean":
        return average(val), average(test), {}
    if method == "stack":
        stacker = Stacker().fit(val)
        info = {"fit_split": "val", "fit_segments": len(val[0].labels), "classes": stacker.model.classes_.tolist(),
                "coef": stacker.model.coef_.tolist(), "intercept": stacker.model.intercept_.tolist()}
        return stacker.predict(val), stacker.predict(test), info
    raise UsageError(f"--method {method}: choose one of {', '.join(METHODS)}")


def _aligned(members: list[Predictions]) -> list[Predictions]:
    try:
        return [members[0], *(m.aligned_to(members[0].keys) for m in members[1:])]
    except ValueError as exc:
        raise UsageError(f"ensemble: {exc}") from exc


def ensemble(store: ResultsStore, method: str, experiment: str | None = None, top_k: int = 3,
             model_ids: list[int] | None = None) -> dict:
    """Build, evaluate and store an ensemble of ``model_ids`` or of ``experiment``'s ``top_k`` trials.

    Returns the stored row, with each member's test metrics under ``metrics["members"]`` and its
    validation metrics, measured as the ensemble's are (plain predictions), under
    ``metrics["members_val"]``.
    """
    if method not in METHODS:
        raise UsageError(f"--method {method}: choose one of {', '.join(METHODS)}")
    opened: dict[int, StoredExperiment] = {}
    if not model_ids:
        if experiment is None:
            raise UsageError("ensemble: give --experiment NAME (with --top-k) or --models ID,ID,...")
        exp = find_experiment(store, experiment)
        opened[exp.row.id] = exp
        model_ids = [r["model_id"] for r in register_top(store, exp.row.id, exp.folds, exp.cfg, exp.row.storage_path, top_k)]
    if len(model_ids) < 2:
        raise UsageError(f"ensemble: {len(model_ids)} model(s) to combine; it needs at least 2 (more trials or --models)")
    members = [find_model(store, i, opened) for i in model_ids]
    classes = members[0].experiment.data.classes
    if any(m.experiment.data.classes != classes for m in members):
        raise UsageError("ensemble: the models were trained on different classes; combine models of one task")
    val = _aligned([m.predict("val") for m in members])
    test = _aligned([m.predict("test") for m in members])
    val_ens, test_ens, fitted = combine(method, val, test)
    row = {
        "trial_id": f"ensemble-{method}-" + "-".join(map(str, model_ids)), "epoch": -1, "checkpoint_uri": "",
        "kind": "ensemble", "sources": list(model_ids),
        "params": {"method": method, "members": list(model_ids)},
        "num_params": sum(m.row.num_params for m in members),
        "val_clip_acc": val_ens.clip_accuracy(),
        **evaluation_fields(test_ens, classes, **val_ens.metrics("val"),
                            members={str(m.row.id): t.metrics("test") for m, t in zip(members, test)},
                            members_val={str(m.row.id): v.metrics("val") for m, v in zip(members, val)},
                            **({"stack": fitted} if fitted else {})),
    }
    row["model_id"] = store.add_model(members[0].row.experiment_id, **row)
    return row
