"""The reference every run is measured against: MFCC statistics + SVM on the same split.

A deep model that does not beat a classic baseline on the same data is not a result, so every
``soundsweep tune`` fits this one on the prepared segments its trials train on and scores it the
way the models are scored: each segment is classified, and a clip's label is the majority vote
of its segments (:meth:`~trainables.evaluate.Predictions.clips`, ties broken by the summed
scores).

- Features: :func:`~trainables.baselines.mfcc_statistics` of each segment (20 MFCCs with deltas
  and delta-deltas, mean and standard deviation over time: 120 values), standardised on train.
- Classifier: an RBF SVM (``gamma="scale"``) whose ``C`` is chosen on the validation split's clip
  accuracy from :data:`C_GRID` (the smallest ``C`` on ties), then scored once on test.
"""
import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from trainables.baselines import mfcc_statistics
from trainables.data import open_split
from trainables.evaluate import Predictions
from trainables.segments import dequantize

METHOD = "mfcc+svm"
C_GRID = (0.1, 1.0, 10.0, 100.0)
VERSION = 1
"""Bumped when the method changes, so a cached reference of an older method is computed again."""


def split_features(data_dir: str, split: str, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, labels, clip_ids)`` of every segment of ``split``, in stored order."""
    features, labels, clip_ids = [], [], []
    for batch in open_split(data_dir, split).iter_batches(batch_size=64, batch_format="numpy"):
        features.extend(mfcc_statistics(w, sample_rate) for w in dequantize(batch["waveform"], batch["scale"]))
        labels.append(np.asarray(batch["label"]))
        clip_ids.append(np.asarray(batch["clip_id"]).astype(str))
    return np.stack(features), np.concatenate(labels), np.concatenate(clip_ids)


def scored(svm: SVC, x: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray) -> Predictions:
    """The SVM's segment predictions as :class:`~trainables.evaluate.Predictions`: a softmax of its
    one-vs-rest decision values, whose argmax is the SVM's own prediction."""
    decision = svm.decision_function(x)
    if decision.ndim == 1:  # two classes: one signed distance
        decision = np.stack([-decision, decision], axis=1)
    probs = np.exp(decision - decision.max(1, keepdims=True))
    return Predictions(clip_ids.astype(object), labels, probs / probs.sum(1, keepdims=True))


def fit_reference(data_dir: str, sample_rate: int) -> dict:
    """Fit and score the reference on prepared data (a Ray task: it reads the store with Ray Data).

    Returns ``method``, ``version``, the chosen ``C``, ``val_clip_acc``, ``test_clip_acc``, the
    segment accuracies and every grid point's validation clip accuracy."""
    splits = {s: split_features(data_dir, s, sample_rate) for s in ("train", "val", "test")}
    scaler = StandardScaler().fit(splits["train"][0])
    x = {s: scaler.transform(f) for s, (f, _, _) in splits.items()}
    grid, best = [], None
    for c in C_GRID:
        svm = SVC(C=c, gamma="scale", decision_function_shape="ovr").fit(x["train"], splits["train"][1])
        val = scored(svm, x["val"], *splits["val"][1:])
        grid.append({"C": c, "val_clip_acc": val.clip_accuracy()})
        if best is None or grid[-1]["val_clip_acc"] > best[2].clip_accuracy():
            best = (c, svm, val)
    c, svm, val = best
    test = scored(svm, x["test"], *splits["test"][1:])
    return {"method": METHOD, "version": VERSION, "C": c, "aggregation": "majority_vote",
            "val_clip_acc": val.clip_accuracy(), "test_clip_acc": test.clip_accuracy(),
            "val_segment_acc": val.segment_accuracy(), "test_segment_acc": test.segment_accuracy(), "grid": grid}
