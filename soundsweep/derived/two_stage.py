"""Two-stage classification (DCASE2020 Task 1a, Hu et al.; docs/MODELS.md 2.5).

A coarse model (the super-classes, e.g. indoor / outdoor / transportation) and a fine model
(e.g. the 10 scenes) are trained separately: two ``soundsweep tune`` runs on the same data, the
coarse one with ``--coarse``. Each fine class ``q`` then scores ``p_fine[q] * p_coarse[parent(q)]``
and the argmax of that product is the prediction; the products, divided by their sum, are the
fused model's probabilities (same argmax), so segment and clip aggregation work as for any model.

    soundsweep tune --name fine ...
    soundsweep tune --name coarse --coarse [--hierarchy FILE] ...
    soundsweep two-stage --fine-experiment fine --coarse-experiment coarse [--hierarchy FILE]
"""
import numpy as np

from soundsweep.catalog import hierarchy_for
from soundsweep.derived.stored import best_model, find_experiment
from soundsweep.errors import UsageError
from soundsweep.experiment.data import experiment_manifest
from soundsweep.experiment.evaluation import evaluation_fields
from soundsweep.results import ResultsStore
from trainables.evaluate import Predictions


def fuse(fine_probs: np.ndarray, coarse_probs: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """The two-stage scores ``fine[:, q] * coarse[:, parent[q]]`` of ``(N, fine)`` and ``(N, coarse)``
    probabilities; ``parent[q]`` is the coarse index of fine class ``q``."""
    return fine_probs * coarse_probs[:, parent]


def fused_probabilities(fine_probs: np.ndarray, coarse_probs: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """The two-stage model's probabilities: the scores of :func:`fuse` divided by their sum per row
    (the same argmax)."""
    scores = fuse(fine_probs, coarse_probs, parent)
    return scores / scores.sum(1, keepdims=True)


def parent_index(fine_classes: list[str], coarse_classes: list[str], hierarchy: dict[str, str]) -> np.ndarray:
    """``parent[q]``: the position in ``coarse_classes`` of fine class ``q``'s super-class."""
    unknown = sorted({hierarchy.get(c) for c in fine_classes} - set(coarse_classes), key=str)
    if unknown:
        raise UsageError(f"the hierarchy's super-class(es) {unknown} are not classes of the coarse model "
                         f"({', '.join(coarse_classes)}): train it with the same hierarchy")
    return np.array([coarse_classes.index(hierarchy[c]) for c in fine_classes])


def fused_predictions(fine: Predictions, coarse: Predictions, parent: np.ndarray) -> Predictions:
    """The two-stage model's predictions on the fine model's segments (scores normalised per segment)."""
    try:
        coarse = coarse.aligned_to(fine.keys)
    except ValueError as exc:
        raise UsageError(f"two-stage: {exc}") from exc
    if not np.array_equal(parent[fine.labels], coarse.labels):
        raise UsageError("two-stage: the coarse model's labels are not the super-classes of the fine labels under "
                         "this hierarchy; train the coarse model with the same --hierarchy")
    return Predictions(fine.clip_ids, fine.labels, fused_probabilities(fine.probs, coarse.probs, parent), fine.keys)


def two_stage(store: ResultsStore, fine_name: str, coarse_name: str, hierarchy_file: str | None = None) -> dict:
    """Fuse the best models of two experiments, evaluate on val and test, store the fused model.

    The hierarchy is ``hierarchy_file`` if given, else the file the coarse experiment was trained
    with, else the dataset's (``coarse_label``). Returns the stored row with the fine, coarse and
    fused test metrics.
    """
    fine_exp = find_experiment(store, fine_name, "--fine-experiment")
    coarse_exp = find_experiment(store, coarse_name, "--coarse-experiment")
    if not coarse_exp.cfg.coarse:
        raise UsageError(f"--coarse-experiment {coarse_name} was not trained with --coarse; train the coarse model "
                         "with `soundsweep tune --coarse`")
    hierarchy = hierarchy_for(experiment_manifest(fine_exp.cfg), hierarchy_file or coarse_exp.cfg.hierarchy)
    parent = parent_index(fine_exp.data.classes, coarse_exp.data.classes, hierarchy)
    fine, coarse = best_model(store, fine_exp, "--fine-experiment"), best_model(store, coarse_exp, "--coarse-experiment")
    preds = {split: (fine.predict(split), coarse.predict(split)) for split in ("val", "test")}
    fused = {split: fused_predictions(f, c, parent) for split, (f, c) in preds.items()}
    fine_test, coarse_test = preds["test"]
    row = {
        "trial_id": f"two-stage-{fine.row.id}-{coarse.row.id}", "epoch": -1, "checkpoint_uri": "",
        "kind": "two_stage", "sources": [fine.row.id, coarse.row.id],
        "params": {"fine_model": fine.row.id, "coarse_model": coarse.row.id, "hierarchy": hierarchy},
        "num_params": fine.row.num_params + coarse.row.num_params,
        "val_clip_acc": fused["val"].clip_accuracy(),
        **evaluation_fields(fused["test"], fine_exp.data.classes, **fused["val"].metrics("val"),
                            fine=fine_test.metrics("test"), coarse=coarse_test.metrics("test")),
    }
    row["model_id"] = store.add_model(fine_exp.row.id, **row)
    return row
