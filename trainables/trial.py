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
Train checkpoints and continues. Either way the loop learns the trial's folder in the
experiment storage (``runtime.trial_dir``), where it keeps per-trial files such as the
augmentation record.
"""
import os
from collections.abc import Callable

import ray.train
import ray.tune
from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from trainables.config import TrialConfig, resolve_repeat
from trainables.fidelity import RUNS_METRIC, run_configuration
from trainables.loop import TuneSession, run, train_loop_per_worker
from trainables.model_io import model_cost
from trainables.objective import METRIC, RANK_METRIC, checkpoint_config
from trainables.screening import run_screening


def oversize(cfg: TrialConfig, cost: dict) -> str | None:
    """Why ``cfg``'s model breaks a hard budget, the int8 size ``runtime.max_model_kb`` or the
    parameter count ``runtime.max_params``, or ``None``; ``cost`` is its
    :func:`~trainables.model_io.model_cost` (from shapes alone: no training, no memory)."""
    rt = cfg.runtime
    if rt.max_params and cost["num_params"] > rt.max_params:
        return f"{cost['num_params']:,} parameters exceed --max-params {rt.max_params:,}"
    if rt.max_model_kb and cost["int8_kb"] > rt.max_model_kb:
        return f"int8 model size {cost['int8_kb']:.1f} KB exceeds --max-model-kb {rt.max_model_kb:g}"
    return None


def storage_trial_dir(storage_path: str) -> str:
    """This trial's folder in the experiment storage (a path or URI), not the local working copy
    that ``get_trial_dir()`` names: files written there need no syncing and reach any node."""
    context = ray.tune.get_context()
    return "/".join((storage_path.rstrip("/"), context.get_experiment_name(), os.path.basename(context.get_trial_dir())))


def run_trial(config: dict) -> None:
    """Tune function trainable (wrap with ``tune.with_resources`` per the resource plan)."""
    runtime = config["runtime"]
    config = resolve_repeat({**config, "runtime": {**runtime, "trial_dir": storage_trial_dir(runtime["storage_path"])}})
    protocol = config.get("protocol", "train")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: known are {', '.join(sorted(PROTOCOLS))}")
    PROTOCOLS[protocol]({k: v for k, v in config.items() if k != "protocol"})


def train_trial(config: dict) -> None:
    """The ``train`` protocol: the loop in this trial, or in a TorchTrainer it fits, or with
    ``--fidelity runs`` the loop once per fold and seed of the configuration.

    A configuration over a hard budget (``--max-model-kb``, ``--max-params``) stops before it
    trains with one report: ``pruned`` (the reason, which the driver stores with status
    ``PRUNED``), its cost and the worst value of every objective (accuracy 0, time infinite), so
    that Optuna learns to steer away from oversize configurations (a trial without a value would
    teach it nothing).
    """
    cfg = TrialConfig.from_dict(config)
    rt = cfg.runtime
    cost = model_cost(cfg)
    reason = oversize(cfg, cost)
    if reason:
        ray.tune.report({"pruned": reason, METRIC: 0.0, RANK_METRIC: 0.0, RUNS_METRIC: 0.0, "epoch_s": float("inf"), **cost})
        return
    if rt.fidelity == "runs":  # every fold and seed of the configuration, in this trial
        run_configuration(config)
        return
    if rt.executor == "local":
        run(cfg, TuneSession(cfg))
        return
    torch_trainer(config, ray.tune.get_context().get_trial_id(), [TuneReportCallback()]).fit()


def torch_trainer(config: dict, name: str, callbacks: list, loop: Callable[[dict], None] = train_loop_per_worker
                  ) -> TorchTrainer:
    """The TorchTrainer that runs ``loop`` (:func:`~trainables.loop.train_loop_per_worker`, or the
    same loop instrumented by a test or benchmark) on ``config``: ``runtime.train_workers``
    workers, each reading its share of the train split and the whole val split from the store
    itself (:class:`~trainables.data.EpochBatches`: no Ray Data datasets to pass); its state under
    ``<storage_path>/train_runs/<name>``."""
    rt = TrialConfig.from_dict(config).runtime
    return TorchTrainer(
        loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=rt.train_workers,
            use_gpu=rt.use_gpu,
            resources_per_worker={"CPU": rt.cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=os.path.join(rt.storage_path, "train_runs"),
            callbacks=callbacks,
            checkpoint_config=checkpoint_config(ray.train.CheckpointConfig),
        ),
    )


PROTOCOLS = {"train": train_trial, "screening": run_screening}
"""Protocol name (a search space's ``protocol`` constant) -> what one trial runs."""
