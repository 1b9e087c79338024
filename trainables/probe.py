"""Frozen embeddings + MLP probe: OpenL3's downstream protocol (Cramer et al.) on any front-end.

How it runs:
    soundsweep probe --frontend l3_mel256_6144                          # the L3 audio subnetwork
    soundsweep probe --frontend resnet2d --checkpoint CHECKPOINT        # a trained model of a run
    soundsweep probe --frontend random_timbral --width 8 --data /data/UrbanSound8K

Every clip is decoded at the front-end's sample rate and cut into 1 s windows with a 0.1 s hop
(:class:`WindowEmbedder`, a Ray Data actor). A window's embedding is what the frozen model
feeds its ``classifier`` block: the L3 embedding, a random CNN's averaged feature maps, a
trained model's pooled representation; the weights are the seeded initialisation or a stored
checkpoint's. Each window carries its clip's label. On standardized embeddings (statistics of
the training windows) :func:`train_mlp` trains the paper's MLP (512 -> 128 -> classes, L2 weight
decay on the kernels) with Adam, batch 64, early stopping on validation loss (patience 20, at
most 50 epochs, the best epoch kept), once per learning rate x weight decay in
{1e-5, 1e-4, 1e-3}^2 (:data:`GRID`); the caller keeps the point with the best validation clip
accuracy. A clip's prediction sums its windows' likelihoods (:data:`AGGREGATION`).
"""
import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainables.audio import AudioError, DecodeSpec, load_segments
from trainables.config import Runtime, TrialConfig
from trainables.evaluate import Predictions
from trainables.model_io import build, load_weights
from trainables.models.openl3 import downstream_mlp
from trainables.seeding import derive_seed

WINDOW_S, HOP_S = 1.0, 0.1
GRID = tuple((lr, wd) for lr in (1e-5, 1e-4, 1e-3) for wd in (1e-5, 1e-4, 1e-3))
"""(learning rate, weight decay) points the paper searches per split."""
BATCH = 64
WINDOWS_PER_PASS = 32
"""Windows per front-end pass (a 13 s clip has 121)."""
AGGREGATION = "mean_probability"
"""The probe's clip aggregation: the paper sums the windows' likelihoods, the same argmax as their mean."""


def window_spec(sample_rate: int) -> DecodeSpec:
    """1 s mono windows every 0.1 s, decoded and resampled like every other segment."""
    return DecodeSpec(sample_rate=sample_rate, channels=1, segment_s=WINDOW_S, overlap=1 - HOP_S / WINDOW_S)


@dataclass(frozen=True)
class FrontEnd:
    """The model whose ``classifier`` input is the embedding: a registered name, its width (None:
    the paper's), the checkpoint to load (empty: the seeded initialisation) and the rate its input is decoded at."""

    name: str
    width: int | None
    checkpoint: str
    sample_rate: int
    num_classes: int
    seed: int = 0

    def build(self) -> tuple[nn.Module, nn.Module, list[str]]:
        """``(model, feature front-end, checkpoint entries not loaded)``, the model in eval mode."""
        runtime = Runtime(data_dir="", num_classes=self.num_classes, in_channels=1, sample_rate=self.sample_rate,
                          seed=self.seed)
        model, features = build(TrialConfig(runtime=runtime, arch=self.name, width=self.width))
        skipped = load_weights(model, self.checkpoint) if self.checkpoint else []
        return model.eval(), features, skipped


class WindowEmbedder:
    """Ray Data ``map_batches`` class: manifest rows in, one row per 1 s window out.

    Input columns ``path, clip_id, label_index, split``; output ``clip_id, split, label,
    embedding`` (float32, one fixed size) and ``error``. A file that cannot be used becomes one
    row in the ``failed`` split with the reason, as in decoding for training.
    """

    def __init__(self, frontend: FrontEnd):
        torch.set_num_threads(1)
        self.model, self.features, _ = frontend.build()
        self.spec = window_spec(frontend.sample_rate)
        self.captured: list[torch.Tensor] = []
        self.model.classifier.register_forward_pre_hook(lambda _module, args: self.captured.append(args[0]))
        self.dim = self.embed(np.zeros((1, 1, self.spec.segment_samples), np.float32)).shape[1]

    @torch.no_grad()
    def embed(self, windows: np.ndarray) -> np.ndarray:
        """(W, 1, samples) windows -> (W, embedding) inputs of the model's ``classifier``."""
        out = []
        for chunk in torch.from_numpy(windows).split(WINDOWS_PER_PASS):
            self.captured.clear()
            self.model(self.features(chunk))
            out.append(self.captured[0].flatten(1).float().numpy())
        return np.concatenate(out)

    def __call__(self, batch: dict) -> dict:
        rows = {k: [] for k in ("clip_id", "split", "label", "embedding", "error")}
        for path, clip_id, label, split in zip(batch["path"], batch["clip_id"], batch["label_index"], batch["split"]):
            try:
                embeddings, split, error = self.embed(np.stack(load_segments(str(path), self.spec))), str(split), ""
            except AudioError as exc:
                embeddings, split, error = None, "failed", str(exc)
            count = 1 if embeddings is None else len(embeddings)
            rows["clip_id"] += [str(clip_id)] * count
            rows["split"] += [split] * count
            rows["label"] += [int(label)] * count
            rows["error"] += [error] * count
            rows["embedding"].append(embeddings)
        rows["embedding"] = [np.zeros((1, self.dim), np.float32) if e is None else e for e in rows["embedding"]]
        return {
            "clip_id": np.array(rows["clip_id"], dtype=object),
            "split": np.array(rows["split"], dtype=object),
            "label": np.array(rows["label"], dtype=np.int64),
            "embedding": np.concatenate(rows["embedding"]).astype(np.float32),
            "error": np.array(rows["error"], dtype=object),
        }


@dataclass
class Windows:
    """One split's window embeddings ``x`` (N, D), labels ``y`` (N,) and ``clip_ids`` (N,)."""

    x: np.ndarray
    y: np.ndarray
    clip_ids: np.ndarray


def standardize(splits: dict[str, Windows]) -> tuple[dict[str, Windows], np.ndarray, np.ndarray]:
    """Every split scaled with the training windows' mean and standard deviation (1 where a value
    never varies), and those two vectors."""
    mean, std = splits["train"].x.mean(0), splits["train"].x.std(0)
    std[std == 0] = 1.0
    return {name: Windows((w.x - mean) / std, w.y, w.clip_ids) for name, w in splits.items()}, mean, std


def penalized_loss(mlp: nn.Sequential, x: torch.Tensor, y: torch.Tensor, weight_decay: float) -> torch.Tensor:
    """Cross-entropy plus ``weight_decay`` x the squared kernels (Keras' ``l2`` regularizer; biases free)."""
    penalty = sum(layer.weight.pow(2).sum() for layer in mlp if isinstance(layer, nn.Linear))
    return nn.functional.cross_entropy(mlp(x), y) + weight_decay * penalty


def predict(mlp: nn.Sequential, windows: Windows) -> Predictions:
    """Window probabilities of ``mlp`` (clips aggregate them by :data:`AGGREGATION`)."""
    mlp.eval()
    with torch.no_grad():
        probs = torch.softmax(mlp(torch.tensor(windows.x, dtype=torch.float32)), dim=1).numpy()
    return Predictions(windows.clip_ids, windows.y, probs)


def train_mlp(train: Windows, val: Windows, num_classes: int, lr: float, weight_decay: float, seed: int,
              max_epochs: int = 50, patience: int = 20) -> dict:
    """Train the probe at one grid point (seeded by ``seed`` and the point); returns the best
    epoch's weights and validation metrics.

    Keys: ``state`` (the MLP's state dict at the lowest validation loss), ``best_epoch``,
    ``epochs`` (run before early stopping), ``val_loss``, ``val_segment_acc``, ``val_clip_acc``.
    """
    seed = derive_seed(seed, "probe", lr, weight_decay)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mlp = downstream_mlp(train.x.shape[1], num_classes)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=lr)
    # Copies: arrays from Ray's object store are read-only.
    x, y = torch.tensor(train.x, dtype=torch.float32), torch.tensor(train.y)
    val_x, val_y = torch.tensor(val.x, dtype=torch.float32), torch.tensor(val.y)
    best_loss, best_state, best_epoch, epoch = math.inf, None, 0, 0
    for epoch in range(max_epochs):
        mlp.train()
        for rows in torch.randperm(len(y), generator=generator).split(BATCH):
            loss = penalized_loss(mlp, x[rows], y[rows], weight_decay)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        mlp.eval()
        with torch.no_grad():
            val_loss = float(penalized_loss(mlp, val_x, val_y, weight_decay))
        if val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(mlp.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
    mlp.load_state_dict(best_state)
    val = predict(mlp, val)
    return {"state": best_state, "best_epoch": best_epoch, "epochs": epoch + 1, "val_loss": best_loss,
            "val_segment_acc": val.segment_accuracy(), "val_clip_acc": val.clip_accuracy(AGGREGATION)}
