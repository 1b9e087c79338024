"""What Ray costs a training epoch: a plain PyTorch loop against our Ray Data + Ray Train path.

    python -m benchmarks.train_overhead --out overhead.json [--epochs 4] [--clips 24] [--arch resnet2d]

Run it with ``-m`` from the repository root, so the checkout's packages are the ones imported.
Both sides train the same model (``--arch`` at its default width, seeded alike) on the same
decoded segments of the embedded synthetic set (``--clips`` clips per class, prepared once with
:func:`soundsweep.prepare.prepare`), batch 32, Adam, no augmentation, one CPU thread, and each
epoch does the same work: one pass over the train split (log-mel on the fly, forward, backward,
step), one prediction pass over the val split, a checkpoint saved with ``torch.save``.

- ``bare_epoch_s``: a plain loop in this process, the segments read into memory with pyarrow
  and cut into shuffled batches with numpy: no Ray.
- ``ray_train_epoch_s``: :func:`trainables.trial.torch_trainer`, the TorchTrainer a trial fits
  with ``--executor train``: one worker with 1 CPU, the splits read by the worker from the
  segment store (streamed every epoch, or once per trial when they fit in memory:
  :class:`trainables.data.EpochBatches`), each epoch reported with its checkpoint through
  ``ray.train.report``.

Each figure is the median of the epochs after the first (the first pays imports, process
start and warm-up; Train keeps the metrics of the two checkpointed epochs it retains, the last
two); ``ratio`` = ray / bare. Also written: every epoch's time on both sides and
the training-pass share (``*_train_s``).
"""
import argparse
import json
import os
import platform as stdlib_platform  # the stdlib module, not the repository's façade
import statistics
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
from trainables.model_io import build
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


def bare_epochs(cfg: TrialConfig, epochs: int) -> list[dict]:
    """Train ``cfg`` with a plain PyTorch loop; seconds of each epoch (whole, and its training pass)."""
    torch.set_num_threads(1)
    train, val = load_split(cfg.runtime.data_dir, "train"), load_split(cfg.runtime.data_dir, "val")
    model, frontend = build(cfg)
    optimizer = cfg.training.optimizer_for(model)  # the recipe's optimizer, as the loop builds it
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(cfg.trial_seed)
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for epoch in range(epochs):
            started = time.perf_counter()
            model.train()
            for batch in batches(train, rng.permutation(len(train["label"]))):
                loss = loss_fn(model(frontend(batch["waveform"])), batch["label"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            train_s = time.perf_counter() - started
            predict(model, frontend, batches(val, np.arange(len(val["label"]))), torch.device("cpu")).metrics("val")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
                       os.path.join(folder, "checkpoint.pt"))
            times.append({"epoch": epoch, "epoch_s": time.perf_counter() - started, "train_s": train_s})
    return times


def ray_train_epochs(config: dict) -> list[dict]:
    """Fit the TorchTrainer of ``--executor train`` on ``config``; each epoch's reported seconds."""
    result = torch_trainer(config, f"overhead-{os.getpid()}", callbacks=[]).fit()
    if result.error:
        raise result.error
    frame = result.metrics_dataframe.sort_values("epoch")  # the epochs whose checkpoints Train kept (2)
    return [{"epoch": int(n), "epoch_s": float(e), "train_s": float(t)}
            for n, e, t in zip(frame["epoch"], frame["epoch_s"], frame["train_s"])]


def steady(times: list[dict], key: str) -> float:
    """Median of ``key`` over the epochs after the first."""
    return statistics.median(t[key] for t in times if t["epoch"] > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per side; the first is warm-up (default %(default)s)")
    parser.add_argument("--clips", type=int, default=24, help="synthetic clips per class (default %(default)s)")
    parser.add_argument("--arch", default="resnet2d", help="model (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")

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
    bare = bare_epochs(TrialConfig.from_dict(config), args.epochs)
    print(f"bare: {[round(t['epoch_s'], 2) for t in bare]} s per epoch", flush=True)
    ray_side = ray_train_epochs(config)
    print(f"ray train: {[round(t['epoch_s'], 2) for t in ray_side]} s per epoch", flush=True)
    out = {
        "machine": f"{stdlib_platform.machine()}, {os.cpu_count()} cores",
        "arch": args.arch, "clips": len(manifest), "segments": data.segments, "epochs": args.epochs,
        "bare_epoch_s": steady(bare, "epoch_s"), "ray_train_epoch_s": steady(ray_side, "epoch_s"),
        "bare_train_s": steady(bare, "train_s"), "ray_train_train_s": steady(ray_side, "train_s"),
        "bare_epochs": bare, "ray_train_epochs": ray_side,
    }
    out["ratio"] = out["ray_train_epoch_s"] / out["bare_epoch_s"]
    out["train_pass_ratio"] = out["ray_train_train_s"] / out["bare_train_s"]
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("bare_epoch_s", "ray_train_epoch_s", "ratio", "train_pass_ratio")}, indent=2))


if __name__ == "__main__":
    main()
