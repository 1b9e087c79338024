"""Segment- and clip-level evaluation shared by the training loop, the final test and the probe.

Clip-level prediction is SoundFusion's majority vote over a clip's segments; ties go to the
class with the largest summed softmax probability (ARCHITECTURES.md 1.1). OpenL3's probe
instead sums its windows' likelihoods (``aggregation="summed_likelihood"``).
"""
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn


AGGREGATIONS = ("majority_vote", "summed_likelihood")


@dataclass
class Predictions:
    """Per-segment outputs: ``clip_ids`` (N,), ``labels`` (N,), ``probs`` (N, classes), and how
    segments make a clip's prediction (one of :data:`AGGREGATIONS`)."""

    clip_ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    aggregation: str = "majority_vote"

    @property
    def loss(self) -> float:
        picked = self.probs[np.arange(len(self.labels)), self.labels]
        return float(-np.log(np.clip(picked, 1e-12, None)).mean())

    def segment_accuracy(self) -> float:
        return float((self.probs.argmax(1) == self.labels).mean())

    def clips(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(clip_ids, true labels, predictions)``, one entry per clip."""
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
        ids, inverse = np.unique(self.clip_ids, return_inverse=True)
        n_classes = self.probs.shape[1]
        votes = np.zeros((len(ids), n_classes))
        summed = np.zeros((len(ids), n_classes))
        np.add.at(votes, (inverse, self.probs.argmax(1)), 1)
        np.add.at(summed, inverse, self.probs)
        if self.aggregation == "summed_likelihood":
            votes = summed
        tied = votes == votes.max(1, keepdims=True)
        predicted = np.where(tied, summed, -np.inf).argmax(1)
        labels = np.zeros(len(ids), dtype=np.int64)
        labels[inverse] = self.labels
        return ids, labels, predicted

    def clip_accuracy(self) -> float:
        _, labels, predicted = self.clips()
        return float((labels == predicted).mean())

    def confusion(self, num_classes: int) -> np.ndarray:
        """Clip-level confusion matrix, rows = true class, columns = predicted class."""
        _, labels, predicted = self.clips()
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(matrix, (labels, predicted), 1)
        return matrix

    def metrics(self, prefix: str) -> dict:
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_segment_acc": self.segment_accuracy(),
            f"{prefix}_clip_acc": self.clip_accuracy(),
        }


@torch.no_grad()
def predict(model: nn.Module, frontend: nn.Module, batches: Iterable[dict], device: torch.device) -> Predictions:
    """Run ``model`` in eval mode over batches with ``waveform``, ``label`` and ``clip_id``."""
    model.eval()
    clip_ids, labels, probs = [], [], []
    for batch in batches:
        logits = model(frontend(batch["waveform"].to(device)))
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
        clip_ids.extend(batch["clip_id"])
    if not probs:
        raise ValueError("nothing to evaluate: the split has no segments")
    return Predictions(np.array(clip_ids, dtype=object), np.concatenate(labels), np.concatenate(probs))
