"""Segment- and clip-level evaluation shared by the training loop, the final test, the protocols
and the probe.

A clip is cut into overlapping segments; the model scores each segment, and two aggregations
turn those scores into one prediction per clip, reported side by side:

- ``majority_vote``: SoundFusion's majority of the segments' argmax classes, ties broken by the
  largest summed softmax probability (docs/MODELS.md 1.1);
- ``mean_probability``: the argmax of the clip's mean softmax vector (the sum of the outputs of
  evenly spaced crops that ECAPA-TDNN's test-time augmentation takes, docs/MODELS.md 5.4; the
  same argmax as OpenL3's probe, which sums its windows' likelihoods).

:class:`TTA` adds test-time augmentation inside each segment (see its docstring).
"""
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from trainables.augment import batch_waveform
from trainables.seeding import torch_generator

AGGREGATIONS = ("majority_vote", "mean_probability")


@dataclass
class Predictions:
    """Per-segment outputs: ``clip_ids`` (N,), ``labels`` (N,), ``probs`` (N, classes), and ``keys``
    (N,), each segment's identity ``clip_id#segment`` (``None`` for hand-made tables)."""

    clip_ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    keys: np.ndarray | None = None

    @property
    def loss(self) -> float:
        picked = self.probs[np.arange(len(self.labels)), self.labels]
        return float(-np.log(np.clip(picked, 1e-12, None)).mean())

    def segment_accuracy(self) -> float:
        return float((self.probs.argmax(1) == self.labels).mean())

    def clips(self, aggregation: str = "majority_vote") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(clip_ids, true labels, predictions)``, one entry per clip, by ``aggregation``."""
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
        ids, inverse, summed = self._summed()
        n_classes = self.probs.shape[1]
        if aggregation == "mean_probability":
            predicted = summed.argmax(1)  # the mean's argmax: every clip's sum has the same divisor
        else:
            votes = np.zeros((len(ids), n_classes))
            np.add.at(votes, (inverse, self.probs.argmax(1)), 1)
            tied = votes == votes.max(1, keepdims=True)
            predicted = np.where(tied, summed, -np.inf).argmax(1)
        labels = np.zeros(len(ids), dtype=np.int64)
        labels[inverse] = self.labels
        return ids, labels, predicted

    def _summed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(clip_ids, each segment's clip position, each clip's summed probabilities)``."""
        ids, inverse = np.unique(self.clip_ids, return_inverse=True)
        summed = np.zeros((len(ids), self.probs.shape[1]))
        np.add.at(summed, inverse, self.probs)
        return ids, inverse, summed

    def clip_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """``(clip_ids, mean probabilities)``, one row per clip in :meth:`clips` order: the
        ``mean_probability`` aggregation's vector, what a clip's reported probabilities are."""
        ids, inverse, summed = self._summed()
        return ids, summed / np.bincount(inverse)[:, None]

    def clip_accuracy(self, aggregation: str = "majority_vote") -> float:
        _, labels, predicted = self.clips(aggregation)
        return float((labels == predicted).mean())

    def confusion(self, num_classes: int, aggregation: str = "majority_vote") -> np.ndarray:
        """Clip-level confusion matrix, rows = true class, columns = predicted class."""
        _, labels, predicted = self.clips(aggregation)
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(matrix, (labels, predicted), 1)
        return matrix

    def clip_true_probability(self) -> float:
        """The mean over clips of each clip's mean probability of its true class: a figure that
        moves with every segment's confidence, where clip accuracy moves a whole clip at a time."""
        ids, inverse = np.unique(self.clip_ids, return_inverse=True)
        picked = self.probs[np.arange(len(self.labels)), self.labels]
        return float((np.bincount(inverse, weights=picked) / np.bincount(inverse)).mean())

    def score(self) -> float:
        """Clip accuracy (majority vote) with ties broken by :meth:`clip_true_probability`:
        ``acc + p_true / (clips + 1)``. The added term is below one clip's step ``1 / clips``, so
        a higher accuracy always ranks higher; among equal accuracies the more confident model
        does. What trials are ranked on (:data:`trainables.objective.RANK_METRIC`)."""
        clips = len(np.unique(self.clip_ids))
        confidence = self.clip_true_probability()
        if not np.isfinite(confidence):  # a diverged model's outputs: no tie-break, and no NaN for the scheduler
            confidence = 0.0
        return self.clip_accuracy("majority_vote") + confidence / (clips + 1)

    def metrics(self, prefix: str) -> dict:
        """Loss, segment accuracy, both clip accuracies (``_clip_acc`` is the majority vote) and
        the ranking score (:meth:`score`)."""
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_segment_acc": self.segment_accuracy(),
            f"{prefix}_clip_acc": self.clip_accuracy("majority_vote"),
            f"{prefix}_clip_acc_mean": self.clip_accuracy("mean_probability"),
            f"{prefix}_score": self.score(),
        }

    def aligned_to(self, keys: np.ndarray) -> "Predictions":
        """These predictions reordered to ``keys`` (another model's segments of the same data).

        Raises ``ValueError`` when the two sets of segments differ (other data or decode settings).
        """
        position = {k: i for i, k in enumerate(self.keys)}
        if len(position) != len(keys) or any(k not in position for k in keys):
            raise ValueError("the predictions cover different segments: the models must be evaluated on the "
                             "same prepared data (same dataset, seed and decode settings)")
        order = np.array([position[k] for k in keys])
        return Predictions(self.clip_ids[order], self.labels[order], self.probs[order], self.keys[order])


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: every segment is scored as ``views`` views, softmax outputs averaged.

    ECAPA-TDNN + CCS + FSA (#16, after VoxCeleb2's evaluation) sums the softmax outputs of 16
    evenly spaced 2 s crops of each 30 s clip. SoundSweep already scores evenly spaced, overlapping
    windows of every clip, and the ``mean_probability`` clip aggregation is that sum; this class
    adds the same idea inside a segment while keeping its length (which every model accepts):
    view ``v`` is the segment circularly shifted by ``v / views`` of its length (view 0 is the
    segment itself) plus white noise at ``snr_db`` below the segment's power, drawn from a
    generator seeded by (``seed``, segment key, view), so a re-evaluation repeats exactly.
    ``views=1`` is plain evaluation.
    """

    views: int = 4
    snr_db: float = 30.0
    seed: int = 0

    def view(self, x: torch.Tensor, keys: list[str], v: int) -> torch.Tensor:
        """View ``v`` of a ``(B, C, T)`` waveform batch whose rows are the segments ``keys``."""
        if v == 0:
            return x
        shifted = torch.roll(x, shifts=v * x.shape[-1] // self.views, dims=-1)
        noise = torch.stack([torch.randn(xi.shape, generator=torch_generator(self.seed, "tta", key, v))
                             for xi, key in zip(shifted.cpu(), keys)]).to(x.device)
        power = shifted.pow(2).mean(dim=(1, 2), keepdim=True)
        return shifted + noise * torch.sqrt(power * 10 ** (-self.snr_db / 10))


@torch.no_grad()
def predict(model: nn.Module, frontend: nn.Module, batches: Iterable[dict], device: torch.device,
            tta: TTA | None = None) -> Predictions:
    """Run ``model`` in eval mode over batches with ``waveform`` (and ``scale``: stored int16 becomes
    float32 on ``device``, :func:`~trainables.augment.batch_waveform`), ``label``, ``clip_id`` and
    ``keys``; with ``tta``, each segment's probabilities are the mean over its views."""
    model.eval()
    views = tta.views if tta is not None else 1
    clip_ids, keys, labels, probs = [], [], [], []
    for batch in batches:
        waveform = batch_waveform(batch, device)
        summed = 0.0
        for v in range(views):
            x = tta.view(waveform, batch["keys"], v) if tta is not None else waveform
            summed = summed + torch.softmax(model(frontend(x)).float(), dim=1)
        probs.append((summed / views).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
        clip_ids.extend(batch["clip_id"])
        keys.extend(batch["keys"])
    if not probs:
        raise ValueError("nothing to evaluate: the split has no segments")
    return Predictions(np.array(clip_ids, dtype=object), np.concatenate(labels), np.concatenate(probs),
                       np.array(keys, dtype=object))
