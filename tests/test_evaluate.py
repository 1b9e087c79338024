"""Clip-level majority vote with ties broken by summed probabilities."""
import numpy as np

from soundsweep.experiment.evaluation import accuracy_by_device
from trainables.evaluate import Predictions


def test_majority_vote_and_tie_break():
    probs = np.array([
        [0.9, 0.1, 0.0],  # clip a: votes 0, 1 -> tie; summed probs favour 0 (0.9+0.4 vs 0.1+0.6)
        [0.4, 0.6, 0.0],
        [0.2, 0.7, 0.1],  # clip b: votes 1, 1, 2 -> 1
        [0.1, 0.8, 0.1],
        [0.1, 0.1, 0.8],
    ])
    pred = Predictions(np.array(["a", "a", "b", "b", "b"], dtype=object), np.array([0, 0, 2, 2, 2]), probs)
    ids, labels, predicted = pred.clips()
    assert list(ids) == ["a", "b"] and list(labels) == [0, 2] and list(predicted) == [0, 1]
    assert pred.clip_accuracy() == 0.5
    assert pred.segment_accuracy() == 2 / 5
    assert pred.confusion(3).tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert np.isclose(pred.loss, -np.mean(np.log([0.9, 0.4, 0.1, 0.1, 0.8])))


def test_accuracy_by_device_counts_each_test_clip_under_its_device():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])  # clips x, y, z (z has two segments)
    pred = Predictions(np.array(["x", "y", "z", "z"], dtype=object), np.array([0, 0, 1, 1]), probs)
    assert accuracy_by_device(pred, {"x": "a", "y": "s1", "z": "a"}) == {
        "a": {"clips": 2, "correct": 1}, "s1": {"clips": 1, "correct": 0}}
    assert accuracy_by_device(pred, {}) == {}  # no device column: nothing to show


def test_summed_likelihood_can_overrule_the_vote():
    """OpenL3's clip prediction sums window likelihoods (the ``mean_probability`` aggregation): one
    confident window beats two weak ones."""
    probs = np.array([[0.45, 0.55], [0.45, 0.55], [1.0, 0.0]])
    pred = Predictions(np.array(["c", "c", "c"], dtype=object), np.array([0, 0, 0]), probs)
    assert pred.clips()[2].tolist() == [1]
    assert pred.clips("mean_probability")[2].tolist() == [0]
