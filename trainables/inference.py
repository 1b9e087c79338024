"""Labelling audio with stored models inside Ray Data: decode clips, score their segments.

``soundsweep predict`` (``soundsweep/predict.py``) runs two stages over its clips:

- :func:`decode_clips`, Ray Data tasks: clip rows in, segment rows out, decoded, mixed,
  resampled and cut exactly as the training data was (:func:`~trainables.audio.decode_segments`:
  the same function, a clip that cannot be used becomes one ``failed`` row with its reason);
- :class:`SegmentScorer`, a pool of actors: each loads the model's networks once and adds every
  network's softmax output per segment, with test-time augmentation as the evaluation of a stored
  model applies it (:func:`~trainables.evaluate.predict`, the same function).

The driver then combines the networks (an ensemble, a two-stage model) and aggregates segments
into clips. :class:`ClipScorer` runs the same two stages in one process, one clip at a time (the
replicas of ``soundsweep serve``, the benchmark's bare loop).
"""
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from trainables.audio import DecodeSpec, decode_segments
from trainables.augment import AugmentingCollate
from trainables.config import TrialConfig
from trainables.evaluate import TTA, predict
from trainables.model_io import EVAL_BATCH, load_quantized, load_trained


def decode_clips(batch: dict, spec: DecodeSpec) -> dict:
    """Ray Data ``map_batches`` function: :func:`~trainables.audio.decode_segments` (its input
    and output columns) plus ``segments``, each row's count of segments in its clip, so a consumer
    knows when it holds a whole clip whatever the blocks it receives."""
    out = decode_segments(batch, spec)
    counts = Counter(out["clip_id"])
    out["segments"] = np.array([counts[c] for c in out["clip_id"]], dtype=np.int64)
    return out


@dataclass(frozen=True)
class Network:
    """One set of weights a scorer loads: the config that builds it, where its weights are (a
    checkpoint folder or URI, or the int8 state file of a quantized model) and its TTA."""

    config: TrialConfig
    weights: str
    quantized: bool = False
    tta: TTA | None = None

    def load(self):
        """``(model, frontend)`` in eval mode on the CPU; ``ModelConfigError`` when the weights do not fit."""
        model, frontend = (load_quantized if self.quantized else load_trained)(self.weights, self.config)
        return model.eval(), frontend


class SegmentScorer:
    """Ray Data ``map_batches`` callable class: loads ``networks`` once, then scores segment rows.

    Input: :func:`decode_clips` rows. Output: the same rows without ``waveform``, plus
    ``probs0``, ``probs1``, ... (float32, ``(N, classes of network i)``): each network's
    probabilities for every segment (zeros for a ``failed`` row, which no network sees). Runs on
    the GPU Ray gives the actor (``num_gpus``), else on the CPU.
    """

    def __init__(self, networks: list[Network]):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.networks = []
        for network in networks:
            model, frontend = network.load()
            self.networks.append((network, model.to(self.device), frontend.to(self.device)))
        self.collate = AugmentingCollate(None, 0)  # evaluation's collate: no augmentation

    def __call__(self, batch: dict) -> dict:
        ok = np.asarray(batch["error"]) == ""
        out = {key: value for key, value in batch.items() if key != "waveform"}
        rows = np.flatnonzero(ok)
        chunks = [self.collate({key: np.asarray(batch[key])[rows[i:i + EVAL_BATCH]]
                                for key in ("waveform", "clip_id", "segment", "label")})
                  for i in range(0, len(rows), EVAL_BATCH)]
        for i, (network, model, frontend) in enumerate(self.networks):
            probs = np.zeros((len(ok), network.config.runtime.num_classes), np.float32)
            if chunks:
                probs[rows] = predict(model, frontend, chunks, self.device, network.tta).probs
            out[f"probs{i}"] = probs
        return out


class ClipScorer:
    """:func:`decode_clips` then :class:`SegmentScorer`, in this process, for one clip at a time:
    the networks load once, and a clip (a file path or its encoded bytes) comes out as the same
    scored segment rows the Ray Data pipeline gives (one ``failed`` row when it cannot be used)."""

    def __init__(self, networks: list[Network], spec: DecodeSpec):
        self.scorer, self.spec = SegmentScorer(networks), spec

    def __call__(self, source: str | bytes, clip_id: str) -> dict:
        column = "audio" if isinstance(source, bytes) else "path"
        batch = {column: [source], "clip_id": [clip_id], "label_index": [-1], "split": ["predict"]}
        return self.scorer(decode_clips(batch, self.spec))
