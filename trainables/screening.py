"""Random-weight CNN screening (Pons and Serra): frozen random front-ends + SVM / ELM.

How it runs:
    soundsweep tune --space random-cnn --num-samples 20 --repeats 3      # every front-end, small
    soundsweep tune --space random-cnn-paper --num-samples 38 --repeats 3  # + the ~3500-feature nets

One trial = one front-end, one classifier family and one seed, with no training loop: the
front-end (a ``random_cnn`` model of the zoo, variance-scaling init from the seed, never
trained; or the MFCC baseline) turns every segment of the train, val and test splits into its
feature vector (every feature map averaged over all its positions; MFCC: 20 coefficients,
deltas and delta-deltas, mean and std = 120 values), a clip's vector is the mean of its
segments' vectors, and the classifier family's grid is fitted on train and selected on val; the
selected model's val and test clip accuracy are reported once to Tune. As in the paper's code,
features are not standardised.

The SVM grid is the paper's: linear with C in {0.1, 2, 8, 32} and RBF with gamma in
{2^-3, 2^-5, ..., 2^-13, 1/#features} x the same C. The ELM (:class:`ELM`) has 100 ... 2500
ReLU hidden units. The front-end seed leaves the classifier family out, so the SVM and the ELM
trials of one seed classify the same features (a paired comparison).
"""
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import ray.tune
import torch
from sklearn.svm import SVC

from trainables.augment import AugmentingCollate, batch_waveform
from trainables.baselines import MFCC, mfcc_statistics
from trainables.config import TrialConfig
from trainables.data import open_splits
from trainables.model_io import build
from trainables.models import num_parameters
from trainables.objective import RANK_METRIC
from trainables.seeding import derive_seed

SVM_C = (0.1, 2.0, 8.0, 32.0)
SVM_GAMMAS = (2.0**-3, 2.0**-5, 2.0**-7, 2.0**-9, 2.0**-11, 2.0**-13, "auto")
"""RBF widths; scikit-learn's ``"auto"`` is 1 / #features, the paper's last value."""
ELM_HIDDEN = (100, 250, 500, 1200, 1800, 2500)
FEATURE_BATCH = 8
"""Segments per front-end pass: a large waveform front-end keeps 7 maps of up to 512 x 36,750
values for each 5 s segment."""


def svm_grid() -> list[dict]:
    """The paper's ``SVC`` settings: linear x C, then RBF x gamma x C (32 in all)."""
    return ([{"kernel": "linear", "C": c} for c in SVM_C]
            + [{"kernel": "rbf", "gamma": g, "C": c} for g in SVM_GAMMAS for c in SVM_C])


class ELM:
    """Extreme learning machine (Huang et al.), as Pons and Serra used it through Python-ELM.

    A random hidden layer ``H = relu(X W1 + b)`` with ``W1`` and ``b`` drawn from N(0, 1) (never
    trained), and output weights fitted in one least-squares solve, ``W2 = pinv(H) Y``, against
    one-vs-all targets in {-1, +1}; the prediction is the class with the largest output.
    """

    def __init__(self, hidden: int, seed: int):
        self.hidden, self.seed = hidden, seed

    def activations(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1 + self.b, 0.0)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ELM":
        rng = np.random.default_rng(self.seed)
        self.w1 = rng.standard_normal((x.shape[1], self.hidden))
        self.b = rng.standard_normal(self.hidden)
        self.classes = np.unique(y)
        targets = np.where(y[:, None] == self.classes[None, :], 1.0, -1.0)
        # lstsq returns the minimum-norm solution, the same W2 as pinv(H) @ Y without forming pinv(H).
        self.w2 = np.linalg.lstsq(self.activations(x), targets, rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes[(self.activations(x) @ self.w2).argmax(1)]


def classifier_grid(family: str, seed: int) -> list[tuple[str, Callable[[], object]]]:
    """``(description, make)`` for every setting of a classifier family (``svm`` or ``elm``)."""
    if family == "svm":
        return [(" ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items()),
                 lambda p=p: SVC(**p)) for p in svm_grid()]
    if family == "elm":
        return [(f"hidden={h}", lambda h=h: ELM(h, seed)) for h in ELM_HIDDEN]
    raise ValueError(f"unknown classifier {family!r}: choose svm or elm")


@dataclass
class Split:
    """One split's clip-level features ``x`` (clips, features) and labels ``y`` (clips,)."""

    x: np.ndarray
    y: np.ndarray


def select_on_val(family: str, seed: int, train: Split, val: Split) -> tuple[str, object, float]:
    """Fit every setting on train; return the one with the best val accuracy (first on ties),
    its fitted model and that accuracy."""
    best = None
    for name, make in classifier_grid(family, seed):
        model = make().fit(train.x, train.y)
        accuracy = float((model.predict(val.x) == val.y).mean())
        if best is None or accuracy > best[2]:
            best = (name, model, accuracy)
    return best


@dataclass
class ScreeningConfig:
    """One screening trial: ``trial.arch`` is a random front-end of the zoo (its width in
    ``trial.model_options``) or :data:`MFCC`; ``classifier`` is ``svm`` or ``elm``."""

    trial: TrialConfig
    classifier: str

    @classmethod
    def from_dict(cls, config: dict) -> "ScreeningConfig":
        return cls(TrialConfig.from_dict({k: v for k, v in config.items() if k != "classifier"}),
                   config.get("classifier", "svm"))

    @property
    def frontend_seed(self) -> int:
        """Seed of the front-end's weights: the experiment (repeat) seed, front-end and width."""
        return derive_seed(self.trial.runtime.seed, "frontend", self.trial.arch, sorted(self.trial.create_options().items()))


def segment_embedder(cfg: ScreeningConfig, device: torch.device) -> tuple[Callable[[dict], np.ndarray], int]:
    """``(embed, parameters)``: ``embed`` maps a collated batch of B segments
    (:class:`~trainables.augment.AugmentingCollate`) to (B, features)."""
    if cfg.trial.arch == MFCC:
        rate = cfg.trial.runtime.sample_rate
        return (lambda batch: np.stack([mfcc_statistics(w.numpy(), rate) for w in batch_waveform(batch, "cpu")])), 0
    model, frontend = build(cfg.trial, seed=cfg.frontend_seed)
    model, frontend = model.to(device).eval(), frontend.to(device)

    @torch.no_grad()
    def embed(batch: dict) -> np.ndarray:
        return model.features(frontend(batch_waveform(batch, device))).cpu().numpy()

    return embed, num_parameters(model.frontend)


def clip_features(embed: Callable[[dict], np.ndarray], dataset) -> dict[str, Split]:
    """Every segment's features averaged per clip, by split (clips in sorted id order); ``dataset``
    is :func:`~trainables.data.open_splits`, read once."""
    parts, collate = {"features": [], "label": [], "clip_id": [], "split": []}, AugmentingCollate(None, 0)
    for batch in dataset.iter_batches(batch_size=FEATURE_BATCH, batch_format="numpy"):
        parts["features"].append(embed(collate(batch)))
        for key in ("label", "clip_id", "split"):
            parts[key].append(np.asarray(batch[key]))
    features, labels, clip_ids, splits = (np.concatenate(parts[k]) for k in ("features", "label", "clip_id", "split"))
    out = {}
    for split in np.unique(splits):
        rows = splits == split
        ids, inverse = np.unique(clip_ids[rows].astype(str), return_inverse=True)
        x = np.zeros((len(ids), features.shape[1]))
        np.add.at(x, inverse, features[rows])
        y = np.zeros(len(ids), dtype=np.int64)
        y[inverse] = labels[rows]
        out[str(split)] = Split(x / np.bincount(inverse)[:, None], y)
    return out


def run_screening(config: dict) -> None:
    """The ``screening`` protocol's Tune function trainable: one report, no checkpoint."""
    cfg = ScreeningConfig.from_dict(config)
    rt = cfg.trial.runtime
    torch.set_num_threads(max(1, int(rt.cpus_per_worker)))
    device = torch.device("cuda" if rt.use_gpu and torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    embed, n_params = segment_embedder(cfg, device)
    splits = clip_features(embed, open_splits(rt.data_dir))
    features_s = time.perf_counter() - started
    selected, model, val_acc = select_on_val(cfg.classifier, derive_seed(cfg.frontend_seed, "classifier"),
                                             splits["train"], splits["val"])
    test = splits["test"]
    ray.tune.report({
        "epoch": 0,
        "val_clip_acc": val_acc,
        RANK_METRIC: val_acc,  # a shallow classifier's votes carry no probability to break ties with
        "test_clip_acc": float((model.predict(test.x) == test.y).mean()),
        "selected": selected,
        "feature_dim": int(test.x.shape[1]),
        "num_params": n_params,
        "features_s": features_s,
        "classifier_s": time.perf_counter() - started - features_s,
        "fold": rt.fold,
        "repeat": rt.repeat,
    })
