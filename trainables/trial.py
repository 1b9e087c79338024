"""The Tune function trainable: one trial = one configuration run by its protocol.

A search space's ``protocol`` constant says what a trial does: ``train`` (the default) trains
the configuration with the loop; ``screening`` computes features with a frozen random
front-end and fits shallow classifiers (:mod:`trainables.screening`). A repeated
configuration (``--folds`` / ``--repeats``) first picks its fold and seed
(:func:`~trainables.config.resolve_repeat`).

Train V2 does not accept a TorchTrainer as a Tune trainable, so a training trial is a function
that either runs the loop itself (``executor="local"``) or builds and fits a TorchTrainer whose
``TuneReportCallback`` forwards every report to this trial (``executor="train"``). The
TorchTrainer's run is named after the trial, so a retried or restored trial finds its own
Train checkpoints and continues.
"""
import os

import ray.train
import ray.tune
from ray.train import DataConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from trainables.config import TrialConfig, resolve_repeat
from trainables.data import open_split
from trainables.loop import TuneSession, run, train_loop_per_worker
from trainables.screening import run_screening


def run_trial(config: dict) -> None:
    """Tune function trainable (wrap with ``tune.with_resources`` per the resource plan)."""
    config = resolve_repeat(config)
    protocol = config.get("protocol", "train")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: known are {', '.join(sorted(PROTOCOLS))}")
    PROTOCOLS[protocol]({k: v for k, v in config.items() if k != "protocol"})


def train_trial(config: dict) -> None:
    """The ``train`` protocol: the loop in this trial, or in a TorchTrainer it fits."""
    cfg = TrialConfig.from_dict(config)
    rt = cfg.runtime
    if rt.executor == "local":
        run(cfg, TuneSession(cfg))
        return
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=rt.train_workers,
            use_gpu=rt.use_gpu,
            resources_per_worker={"CPU": rt.cpus_per_worker},
        ),
        datasets={s: open_split(rt.data_dir, s) for s in ("train", "val")},
        dataset_config=DataConfig(datasets_to_split=["train"]),
        run_config=ray.train.RunConfig(
            name=ray.tune.get_context().get_trial_id(),
            storage_path=os.path.join(rt.storage_path, "train_runs"),
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="val_clip_acc", checkpoint_score_order="max"
            ),
        ),
    )
    trainer.fit()


PROTOCOLS = {"train": train_trial, "screening": run_screening}
"""Protocol name (a search space's ``protocol`` constant) -> what one trial runs."""
