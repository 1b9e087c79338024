"""What Ray costs a training epoch: a plain PyTorch loop against our Ray Train path.

    python -m benchmarks.train_overhead --out overhead.json [--epochs 4] [--clips 24] [--rounds 2] [--arch resnet2d]

Run it with ``-m`` from the repository root, so the checkout's packages are the ones imported.
Both sides train the same model (``--arch`` at its default width, seeded alike) on the same
decoded segments of the embedded synthetic set (``--clips`` clips per class, prepared once with
:func:`soundsweep.prepare.prepare`), batch 32, the recipe's optimizer, no augmentation, one CPU
thread, and each epoch does the same work: one pass over the train split (log-mel on the fly,
forward, backward, step), one prediction pass over the val split, and a checkpoint written with
:func:`trainables.model_io.save_checkpoint`.

- bare: a plain loop in this process, the segments read into memory with pyarrow and cut into
  shuffled batches with numpy, the checkpoint saved into a folder: no Ray.
- Ray Train: :func:`trainables.trial.torch_trainer`, the TorchTrainer a trial fits with
  ``--executor train`` (one worker with 1 CPU, the splits read by the worker itself from
  the segment store: :class:`trainables.data.EpochBatches`), running the platform's loop
  (:func:`trainables.loop.run`) in a :class:`StampedSession`, so each epoch's checkpoint is
  written, then persisted into the run's storage by ``ray.train.report``.

What is timed: wall-clock stamps (``time.time()``; both sides run on this machine) taken when an
epoch's work is done: on the bare side once its checkpoint is saved, on the Ray side in the
worker once ``ray.train.report`` has returned. Per side and round:

- ``startup_s`` (Ray only): from calling ``fit()`` to the training function starting in the
  worker: Train's controller, the worker process, its placement group and process group.
- ``first_epoch_s``: from the loop's start (bare: before reading the splits; Ray: the training
  function's entry) to the first epoch's stamp: the model built, the splits' first read, epoch 0
  and its checkpoint.
- ``epoch_s``: stamp to stamp, every epoch after the first: one epoch's work and, on the Ray
  side, one report with its checkpoint's persistence and whatever gap Train leaves before the
  next epoch starts.
- ``shutdown_s`` (Ray only): from the last stamp to ``fit()`` returning.
- ``steady_epoch_s``: the median of ``epoch_s``; ``train_s``: each epoch's training pass alone
  (from the start of the epoch), ``steady_train_s`` its median over the epochs after the first.

``--rounds N`` runs the bare side then the Ray side N times in one Ray session, so load noise
shows as the rounds' spread; each round's ``ratio`` = Ray / bare steady epoch
(``train_pass_ratio`` the same for the training pass). The top-level keys are medians over the
rounds: ``startup_s``, ``shutdown_s``, ``bare_first_epoch_s``, ``ray_train_first_epoch_s``,
``bare_epoch_s``, ``ray_train_epoch_s``, ``ratio``, ``train_pass_ratio``. The JSON also holds
the command and the load average when it started and ended.
"""
import argparse
import functools
import json
import os
import platform as stdlib_platform  # the stdlib module, not the repository's façade
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import ray
import torch
from torch import nn

from soundsweep.catalog import load_manifest
from trainables.audio import DecodeSpec
from trainables.config import TrialConfig
from trainables.evaluate import predict
from trainables.loop import TrainSession, run
from trainables.model_io import build, save_checkpoint
from trainables.segments import dequantize, read_segment_files, segment_files
from trainables.trial import torch_trainer

BATCH = 32


def load_split(data_dir: str, split: str) -> dict:
    """One split of the segment store in memory: waveforms ``(N, C, T)``, labels, clip ids, keys."""
    table = pa.concat_tables(read_segment_files({"path": segment_files(data_dir, split)}))
    clip_ids = np.array(table.column("clip_id").to_pylist(), dtype=object)
    segments = table.column("segment").to_pylist()
    return {
        "waveform": torch.from_numpy(dequantize(table.column("waveform").combine_chunks().to_numpy(),
                                                table.column("scale").to_numpy())),
        "label": torch.tensor(table.column("label").to_pylist()),
        "clip_id": clip_ids,
        "keys": [f"{c}#{s}" for c, s in zip(clip_ids, segments)],
    }


def batches(split: dict, order: np.ndarray):
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        yield {"waveform": split["waveform"][idx], "label": split["label"][idx],
               "clip_id": split["clip_id"][idx], "keys": [split["keys"][i] for i in idx]}


def bare_run(cfg: TrialConfig, epochs: int) -> dict:
    """Train ``cfg`` with a plain PyTorch loop; its :func:`timeline`."""
    started = time.time()
    torch.set_num_threads(1)
    train, val = load_split(cfg.runtime.data_dir, "train"), load_split(cfg.runtime.data_dir, "val")
    model, frontend = build(cfg)
    optimizer = cfg.training.optimizer_for(model)  # the recipe's optimizer, as the loop builds it
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(cfg.trial_seed)
    stamps = []
    with tempfile.TemporaryDirectory() as folder:
        for epoch in range(epochs):
            epoch_started = time.perf_counter()
            model.train()
            for batch in batches(train, rng.permutation(len(train["label"]))):
                loss = loss_fn(model(frontend(batch["waveform"])), batch["label"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            train_s = time.perf_counter() - epoch_started
            predict(model, frontend, batches(val, np.arange(len(val["label"]))), torch.device("cpu")).metrics("val")
            save_checkpoint(folder, model, epoch, cfg.params(), optimizer=optimizer)
            stamps.append({"epoch": epoch, "at": time.time(), "train_s": train_s})
    return timeline(started, stamps)


class StampedSession(TrainSession):
    """The loop's :class:`~trainables.loop.TrainSession` that, once each report has returned
    (the checkpoint persisted, the metrics handed to Train), appends the epoch, the time and the
    loop's own training-pass seconds to a JSON-lines file; its first line is the loop's start."""

    def __init__(self, path: str):
        self.path = path
        self.write({"start": time.time()})
        super().__init__()

    def write(self, line: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")

    def report(self, metrics: dict, checkpoint) -> None:
        super().report(metrics, checkpoint)
        self.write({"epoch": metrics["epoch"], "at": time.time(), "train_s": metrics["train_s"]})


def stamped_loop(path: str, config: dict) -> None:
    """TorchTrainer entry point: the platform's loop in a :class:`StampedSession` writing to ``path``."""
    run(TrialConfig.from_dict(config), StampedSession(path))


def ray_train_run(config: dict, name: str) -> dict:
    """Fit the TorchTrainer of ``--executor train`` on ``config`` with :func:`stamped_loop`;
    its :func:`timeline` with the start-up before the loop and the shutdown after it."""
    path = os.path.join(config["runtime"]["storage_path"], f"{name}-stamps.jsonl")
    fit_started = time.time()
    result = torch_trainer(config, name, callbacks=[], loop=functools.partial(stamped_loop, path)).fit()
    fit_ended = time.time()
    if result.error:
        raise result.error
    with open(path) as f:
        start, *stamps = [json.loads(line) for line in f]
    return {"startup_s": start["start"] - fit_started, "shutdown_s": fit_ended - stamps[-1]["at"],
            **timeline(start["start"], stamps)}


def timeline(started: float, stamps: list[dict]) -> dict:
    """A side's figures (module docstring) from its loop's start and its epochs' stamps."""
    at = [s["at"] for s in stamps]
    epoch_s = [b - a for a, b in zip(at, at[1:])]
    train_s = [s["train_s"] for s in stamps]
    return {"first_epoch_s": at[0] - started, "epoch_s": epoch_s, "train_s": train_s,
            "steady_epoch_s": statistics.median(epoch_s), "steady_train_s": statistics.median(train_s[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per side and round; the first is warm-up "
                        "(default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="times both sides run, alternately (default %(default)s)")
    parser.add_argument("--clips", type=int, default=24, help="synthetic clips per class (default %(default)s)")
    parser.add_argument("--arch", default="resnet2d", help="model (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    load_at_start = os.getloadavg()
    from soundsweep.prepare import prepare  # imports Ray Data; after argument errors

    ray.init(address="local", num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False,
             logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    work = tempfile.mkdtemp(prefix="soundsweep-overhead-")
    manifest = load_manifest(None, args.seed, args.clips)
    data = prepare(manifest, DecodeSpec(), os.path.join(work, "cache"))
    config = {
        "arch": args.arch, "width": None, "batch_size": BATCH,
        "runtime": {"data_dir": data.path, "num_classes": len(data.classes), "in_channels": 1,
                    "sample_rate": 22050, "seed": args.seed, "max_epochs": args.epochs, "executor": "train",
                    "train_workers": 1, "cpus_per_worker": 1.0, "storage_path": work},
    }
    rounds = []
    for number in range(args.rounds):
        bare = bare_run(TrialConfig.from_dict(config), args.epochs)
        ray_side = ray_train_run(config, f"overhead-{os.getpid()}-{number}")
        rounds.append({"bare": bare, "ray_train": ray_side,
                       "ratio": ray_side["steady_epoch_s"] / bare["steady_epoch_s"],
                       "train_pass_ratio": ray_side["steady_train_s"] / bare["steady_train_s"]})
        print(f"round {number}: bare {[round(t, 2) for t in bare['epoch_s']]} s, ray train "
              f"{[round(t, 2) for t in ray_side['epoch_s']]} s per epoch after the first, "
              f"ratio {rounds[-1]['ratio']:.3f}", flush=True)

    def median(side: str | None, key: str) -> float:
        return statistics.median(r[side][key] if side else r[key] for r in rounds)

    out = {
        "command": " ".join(["python -m benchmarks.train_overhead", *sys.argv[1:]]),
        "machine": f"{stdlib_platform.machine()}, {os.cpu_count()} cores",
        "load_average_start": load_at_start, "load_average_end": os.getloadavg(),
        "arch": args.arch, "clips": len(manifest), "segments": data.segments, "epochs": args.epochs,
        "startup_s": median("ray_train", "startup_s"), "shutdown_s": median("ray_train", "shutdown_s"),
        "bare_first_epoch_s": median("bare", "first_epoch_s"),
        "ray_train_first_epoch_s": median("ray_train", "first_epoch_s"),
        "bare_epoch_s": median("bare", "steady_epoch_s"), "ray_train_epoch_s": median("ray_train", "steady_epoch_s"),
        "ratio": median(None, "ratio"), "train_pass_ratio": median(None, "train_pass_ratio"),
        "rounds": rounds,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: v for k, v in out.items() if k != "rounds"}, indent=2))

if __name__ == "__main__":
    main()
