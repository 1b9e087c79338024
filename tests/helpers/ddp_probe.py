"""A look inside a multi-worker TorchTrainer run: every worker's report (see test_tune_e2e.py).

Tune and the results store only ever see rank 0's report (``TuneReportCallback`` forwards
``metrics[0]``), so what the other workers did is out of sight there. :func:`loop` is the project's
training loop (:func:`trainables.loop.run`) with a session that adds, to the loop's own metrics,
what only the worker knows: its rank and world size, whether its model is wrapped in
``DistributedDataParallel``, a digest of its weights and whether it passed a checkpoint.
:class:`Reports` is a Ray Train callback (run by the Train controller) that appends each round of
reports, every worker's metrics in one line, to a JSON-lines file.
"""
import hashlib
import json

import torch
from ray.train import UserCallback
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainables.config import TrialConfig
from trainables.loop import TrainSession, run


def digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters (not its buffers), in order."""
    weights = torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()])
    return hashlib.sha256(weights.numpy().tobytes()).hexdigest()


class ProbeSession(TrainSession):
    """:class:`~trainables.loop.TrainSession` that also reports what the worker's model is."""

    model: nn.Module

    def prepare_model(self, model: nn.Module) -> nn.Module:
        self.model = super().prepare_model(model)
        return self.model

    def report(self, metrics: dict, checkpoint) -> None:
        super().report({**metrics, "rank": self.rank, "world_size": self.world_size,
                        "ddp": isinstance(self.model, DistributedDataParallel), "weights": digest(self.model),
                        "checkpointed": checkpoint is not None}, checkpoint)


def loop(config: dict) -> None:
    """TorchTrainer entry point: the project's loop in a :class:`ProbeSession`."""
    run(TrialConfig.from_dict(config), ProbeSession())


class Reports(UserCallback):
    """Appends ``{"workers": [metrics of worker 0, 1, ...], "checkpoint": path or None}`` per round to ``path``."""

    def __init__(self, path: str):
        self.path = path

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"workers": metrics, "checkpoint": checkpoint.path if checkpoint else None}) + "\n")
