"""GPU feed: how fast each way of feeding a trial's epochs keeps the training device busy.

    python -m benchmarks.gpu_feed --out gpu_feed.json [--segments 20000] [--epochs 1] [--quick]

Run it with ``-m`` from the repository root. Data: the embedded synthetic set (seed ``--seed``,
24 clips per class) scaled up like ``benchmarks/data_pipeline.py`` scales its corpus: its clips
listed again under new clip ids, all in the train split, until that split holds at least
``--segments`` segments (5 s windows at 22.05 kHz, 25 % overlap; three per 13 s clip). It is
decoded once with :func:`soundsweep.prepare.prepare` into ``<cache>/bench/gpu_feed``
(``$SOUNDSWEEP_CACHE``, default ``~/.cache/soundsweep``) and reused. Models: ResNet2D at width
16 and 64 and the Simple CNN at its paper width (``resnet2d``, ``simple_cnn``). Each trains with
the training loop's step (:mod:`trainables.loop`): waveform gain and noise in the collate
(``gain_db`` 6, ``noise_std`` 0.01), log-mel and SpecAugment (p 0.5) on the device, Adam, batch
``--batch-size``, mixed precision on a GPU (``--precision auto``), ``loss.item()`` each step.
Three ways to feed it, all :class:`trainables.data.EpochBatches` forced to one path:

- ``memory``: the split read once into host memory (numpy); each epoch cuts a permutation into
  batches, collated and augmented on the CPU, then copied to the device.
- ``stream``: the split read from the segment store every epoch, in the process (a background
  thread reads row groups, shuffled in windows), collated and augmented on the CPU.
- ``device``: the split read once onto the device; each epoch indexes it there, and the collate
  augments there (the device cache of ``--device-cache-share``).

Each (model, way) first runs ``--warmup-steps`` steps of epoch 0 (a kept split is read then,
cuDNN picks its kernels), then ``--epochs`` whole epochs, which are timed.

Keys written (JSON):

``gpu``, ``note``
    The GPU's name, or ``null`` and a note saying that no GPU was found: the run then trains on
    the CPU (the ``device`` way keeps its tensors in host memory) and its figures say nothing
    about feeding a GPU.
``device``, ``segments``, ``split_mb``, ``batch_size``, ``epochs``, ``precision``
    Where the models trained, the train split's segments and size (the store's uncompressed
    size), the batch, the timed epochs and the precision the models trained in.
``device_cache_budget_mb``, ``fits_device_cache``
    ``--device-cache-share 0.5`` of the GPU's free memory before the first model, and whether a
    real trial would keep this split on the device (the benchmark forces every path regardless).
``nvml``
    How GPU busy was sampled, or why it was not (``pip install 'soundsweep[gpu]'`` for NVML).
``models.<model>.<way>``
    ``segments_per_s``: training segments per second over the timed epochs (wall clock).
    ``gpu_busy_pct``: the mean of NVML's utilisation (the share of time a kernel ran on the GPU),
    sampled every 0.1 s during the timed epochs; ``null`` without NVML or a GPU.
    ``data_wait_share``: the share of step time spent waiting for data: the time in ``next()`` of
    the batch iterator (reading, cutting, collating and augmenting the batch) over the step time
    (from asking for the batch to the end of ``loss.item()``, which waits for the GPU).
    ``setup_s``: the first batch's wait of the warm-up (for ``memory`` and ``device`` the split's
    read, paid once per trial, by the first model only: the kept split is shared by the models).
    ``step_ms``: mean step time. ``steps``: timed steps.
    ``vs_memory``: ``segments_per_s`` over the ``memory`` way's, measured in the same run.
"""
import argparse
import json
import logging
import math
import os
import platform as stdlib_platform  # the stdlib module, not the repository's façade
import threading
import time

import ray
import torch
from torch import nn

from soundsweep.catalog import cache_root, load_manifest
from trainables.audio import DecodeSpec
from trainables.augment import Augmenter, AugmentingCollate, batch_waveform
from trainables.config import TrialConfig
from trainables.data import DEVICE, MEMORY, STREAM, EpochBatches, device_cache_budget
from trainables.loop import training_precision
from trainables.model_io import build
from trainables.precision import AMP_DTYPES
from trainables.seeding import derive_seed

SPEC = DecodeSpec()  # 22.05 kHz mono, 5 s windows, 25 % overlap: the default input policy
MODELS = {"resnet2d-w16": ("resnet2d", 16), "resnet2d-w64": ("resnet2d", 64), "simple_cnn": ("simple_cnn", None)}
WAYS = (MEMORY, STREAM, DEVICE)
AUGMENT = {"gain_db": 6.0, "noise_std": 0.01, "specaug_p": 0.5}
CACHE_SHARE = 0.5
QUICK = {"segments": 48, "batch_size": 16, "warmup_steps": 2, "epochs": 1}
"""``--quick``: a few steps per model and way, a few minutes on a 2-core CPU."""


def scaled_data(segments: int, seed: int):
    """The synthetic set's clips, all in the train split, listed until the split holds at least
    ``segments`` segments (copies get new clip ids), prepared once (a cache hit after that)."""
    from soundsweep.prepare import prepare  # imports Ray Data's driver side

    base = load_manifest(None, seed).assign(split="train")
    windows = [1 + (int(d * SPEC.sample_rate) - SPEC.segment_samples) // SPEC.hop_samples for d in base["duration_s"]]
    rows, total = [], 0
    while total < segments:
        i = len(rows)
        rows.append(i % len(base))
        total += windows[i % len(base)]
    manifest = base.iloc[rows].reset_index(drop=True)
    manifest["clip_id"] = [f"{c}-r{i // len(base)}" for i, c in enumerate(manifest["clip_id"])]
    data = prepare(manifest, SPEC, os.path.join(cache_root(), "bench", "gpu_feed"))
    assert data.segments["train"] >= segments and not data.failures, data.failures[:3]
    return data


class BusySampler:
    """NVML's GPU utilisation, sampled every 0.1 s between :meth:`start` and :meth:`stop`."""

    def __init__(self, device: torch.device):
        self.handle, self.why = None, "no GPU"
        if device.type != "cuda":
            return
        try:
            import pynvml
        except ImportError:
            self.why = "not sampled: pynvml is not installed (pip install 'soundsweep[gpu]')"
            return
        try:
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            self.read = lambda: pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
            self.why = "pynvml: nvmlDeviceGetUtilizationRates every 0.1 s"
        except pynvml.NVMLError as exc:  # no driver library, or no access: GPU busy stays unknown
            self.why = f"not sampled: {type(exc).__name__}: {exc}"

    def start(self) -> None:
        self.samples, self.stopping = [], threading.Event()
        if self.handle is not None:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()

    def _sample(self) -> None:
        while not self.stopping.wait(0.1):
            self.samples.append(self.read())

    def stop(self) -> float | None:
        """The mean utilisation in percent since :meth:`start` (``None`` if not sampled)."""
        self.stopping.set()
        if self.handle is None:
            return None
        self.thread.join()
        return sum(self.samples) / len(self.samples) if self.samples else None


def train(cfg: TrialConfig, batches: EpochBatches, device: torch.device, warmup_steps: int, epochs: int,
          busy: BusySampler) -> dict:
    """Warm up, then train ``epochs`` whole epochs from ``batches``; the timed figures."""
    torch.manual_seed(cfg.trial_seed)
    model, frontend = build(cfg)
    model, frontend = model.to(device), frontend.to(device)
    optimizer = cfg.training.optimizer_for(model)
    precision = training_precision("auto", device)
    dtype = getattr(torch, AMP_DTYPES[precision]) if precision in AMP_DTYPES else None
    autocast = {"device_type": device.type, "dtype": dtype, "enabled": precision != "fp32"}
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    augmenter = Augmenter(cfg.augment, cfg.trial_seed, cfg.runtime.sample_rate, cfg.runtime.in_channels)
    loss_fn = nn.CrossEntropyLoss()

    def epoch_steps(epoch: int, limit: float):
        """``(wait_s, step_s, segments)`` of each step of one epoch, ``limit`` steps at most."""
        asked = time.perf_counter()  # a kept split is read when its first epoch is asked for
        shuffle_seed = derive_seed(cfg.trial_seed, "shuffle", epoch)
        batches_of_epoch = batches(cfg.training.batch_size, AugmentingCollate(augmenter, epoch), shuffle_seed)
        for step, batch in enumerate(batches_of_epoch):
            got = time.perf_counter()
            x = frontend(batch_waveform(batch, device))
            x, _ = augmenter.spectrograms(x, batch["keys"], epoch)
            y = batch["label"].to(device)
            with torch.autocast(**autocast):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss.item()  # the loop's per-step sync: the step ends when the GPU is done
            done = time.perf_counter()
            yield got - asked, done - asked, len(y)
            if step + 1 >= limit:
                return
            asked = time.perf_counter()

    model.train()
    setup_s = list(epoch_steps(0, warmup_steps))[0][0]
    busy.start()
    steps = [step for epoch in range(1, epochs + 1) for step in epoch_steps(epoch, math.inf)]
    gpu_busy = busy.stop()
    wait_s, step_s, segments = (sum(column) for column in zip(*steps))
    return {"segments_per_s": segments / step_s, "gpu_busy_pct": gpu_busy, "data_wait_share": wait_s / step_s,
            "setup_s": setup_s, "step_ms": 1000 * step_s / len(steps), "steps": len(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--segments", type=int, default=20000, help="train segments at least (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="segments per step (default %(default)s, the "
                        "default recipe's)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="untimed steps per model and way (default "
                        "%(default)s)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per model and way (default %(default)s)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"a few steps on a small split: {QUICK}")
    args = parser.parse_args()
    if args.quick:  # new defaults: flags given beside --quick still win
        parser.set_defaults(**QUICK)
        args = parser.parse_args()

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no lines per dataset execution
    ray.init(address="local", num_cpus=args.cpus, object_store_memory=2 * 2**30, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, args.cpus))
    data = scaled_data(args.segments, args.seed)
    budget = device_cache_budget(device, CACHE_SHARE)
    ways = {
        MEMORY: EpochBatches(data.path, "train", host_budget=math.inf),
        STREAM: EpochBatches(data.path, "train", host_budget=0),
        DEVICE: EpochBatches(data.path, "train", device=device, device_budget=math.inf),
    }
    assert [ways[way].where for way in WAYS] == list(WAYS)
    busy = BusySampler(device)
    out = {
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        **({} if device.type == "cuda" else {"note": "no GPU: trained on the CPU, the device way's tensors in host "
                                                     "memory; these figures say nothing about feeding a GPU"}),
        "device": str(device), "machine": f"{stdlib_platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "load_average_at_start": os.getloadavg(),
        "segments": data.segments["train"], "split_mb": ways[MEMORY].bytes_per_worker / 2**20,
        "batch_size": args.batch_size, "epochs": args.epochs, "warmup_steps": args.warmup_steps,
        "precision": training_precision("auto", device), "augment": AUGMENT,
        "device_cache_budget_mb": budget / 2**20, "fits_device_cache": ways[MEMORY].bytes_per_worker <= budget,
        "nvml": busy.why, "models": {},
    }
    if "note" in out:
        print(out["note"], flush=True)
    for name, (arch, width) in MODELS.items():
        cfg = TrialConfig.from_dict({
            "arch": arch, "width": width, "batch_size": args.batch_size, **AUGMENT,
            "runtime": {"data_dir": data.path, "num_classes": len(data.classes), "in_channels": SPEC.channels,
                        "sample_rate": SPEC.sample_rate, "seed": args.seed},
        })
        figures = out["models"][name] = {}
        for way in WAYS:
            figures[way] = train(cfg, ways[way], device, args.warmup_steps, args.epochs, busy)
            figures[way]["vs_memory"] = figures[way]["segments_per_s"] / figures[MEMORY]["segments_per_s"]
            print(f"{name} {way}: {figures[way]['segments_per_s']:.1f} segments/s, data wait "
                  f"{figures[way]['data_wait_share']:.0%}, x{figures[way]['vs_memory']:.2f} vs memory", flush=True)
    out["load_average_at_end"] = os.getloadavg()
    ray.shutdown()
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
