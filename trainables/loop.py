"""The per-worker training loop: one file, read top to bottom.

How it runs:
    soundsweep tune --space augmentation                  # Tune trials, loop run inside each trial
    soundsweep tune --space augmentation --train-workers 2  # each trial a 2-worker TorchTrainer
    soundsweep tune --gpus-per-worker 1 ...               # on a GPU cluster (features on the GPU)

The same :func:`run` serves both: inside a TorchTrainer (:class:`TrainSession`, Train V2 wired
to Tune by ``TuneReportCallback``) or directly inside a Tune function trial
(:class:`TuneSession`), which avoids a TorchTrainer's fixed cost (about 10 s per trial here) for
small single-worker CPU trials. The trial's recipe (:class:`~trainables.recipes.TrainingConfig`)
says how it trains; nothing about optimisation is hard-coded here. Each epoch: read the
worker's share of the training split from the segment store (kept after the first epoch when it
fits: on a GPU trial's device within ``--device-cache-share`` of its free memory, else in host
memory when small, :class:`~trainables.data.EpochBatches`) with waveform augmentation, log-mel
+ SpecAugment on the device, mixup, one optimizer step per batch at the learning rate the
schedule gives for the progress so far (the model in mixed precision on a GPU), then validation at
segment and clip level (of the averaged weights in the recipe's last ``average_last`` epochs), a
checkpoint and one report that also says where the worker ran (node id, node IP, host name).
With ``--record-augmentation`` each worker also writes what every training example got, per epoch
(mixup partners and weights included), so any batch can be replayed exactly.
"""
import os
import socket
import tempfile
import time

import ray
import ray.train
import ray.train.torch
import ray.tune
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from trainables.augment import AugmentationLog, Augmenter, AugmentingCollate, batch_waveform
from trainables.config import TrialConfig
from trainables.data import EpochBatches, device_cache_budget, epoch_data_line
from trainables.evaluate import predict
from trainables.mixup import Mixup
from trainables.model_io import build, load_checkpoint, load_weights, model_cost, save_checkpoint
from trainables.precision import AMP_DTYPES
from trainables.seeding import derive_seed


class TuneSession:
    """The loop's view of the world when it runs directly in a Tune function trial."""

    rank, world_size = 0, 1
    checkpoint_type = ray.tune.Checkpoint

    def __init__(self, cfg: TrialConfig):
        self.device = torch.device("cuda" if cfg.runtime.use_gpu and torch.cuda.is_available() else "cpu")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def checkpoint(self):
        return ray.tune.get_checkpoint()

    def report(self, metrics: dict, checkpoint) -> None:
        ray.tune.report(metrics, checkpoint=checkpoint)


class TrainSession:
    """The loop's view of the world inside a TorchTrainer worker (Train V2)."""

    checkpoint_type = ray.train.Checkpoint

    def __init__(self):
        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return ray.train.torch.prepare_model(model)

    def checkpoint(self):
        return ray.train.get_checkpoint()

    def report(self, metrics: dict, checkpoint) -> None:
        ray.train.report(metrics, checkpoint=checkpoint)


def train_loop_per_worker(config: dict) -> None:
    """TorchTrainer entry point."""
    run(TrialConfig.from_dict(config), TrainSession())


def training_precision(precision: str, device: torch.device) -> str:
    """What the model trains in on ``device`` for a ``--precision`` choice: fp32, bf16 or fp16.

    Mixed precision is for GPUs only: on a CPU, fp16 matmuls are slow or missing and bf16 rarely
    gains, so CPU trials always train in fp32. ``auto`` prefers bf16 (fp32's range, no loss
    scaling) and falls back to fp16 on GPUs without it.
    """
    if device.type != "cuda" or precision == "fp32":
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def where() -> dict:
    """The node, process and placement group this worker runs in, reported with every epoch."""
    group = ray.util.get_current_placement_group()
    return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "pid": os.getpid(),
            "placement_group": group.id.hex() if group is not None else None}


def run(cfg: TrialConfig, session) -> None:
    rt, recipe = cfg.runtime, cfg.training
    # Small CPU trials share cores: one intra-op thread per reserved CPU avoids oversubscription.
    torch.set_num_threads(max(1, int(rt.cpus_per_worker)))
    model, frontend = build(cfg)
    checkpoint = session.checkpoint()
    if checkpoint is None and rt.init_from:  # transfer: fine-tune from another run's weights
        load_weights(model, rt.init_from)
    cost = model_cost(cfg)
    model, frontend = session.prepare_model(model), frontend.to(session.device)
    plain = getattr(model, "module", model)  # without DDP's wrapper: what is saved and averaged
    optimizer = recipe.optimizer_for(model)
    precision = training_precision(rt.precision, session.device)
    dtype = getattr(torch, AMP_DTYPES[precision]) if precision in AMP_DTYPES else None
    autocast = {"device_type": session.device.type, "dtype": dtype, "enabled": precision != "fp32"}
    # fp16 is too narrow for small gradients, so its loss is scaled; bf16 and fp32 need no scaler.
    scaler = torch.amp.GradScaler(session.device.type, enabled=precision == "fp16")
    placement = {**where(), "device": str(session.device), "precision": precision}
    augmenter = Augmenter(cfg.augment, cfg.trial_seed, rt.sample_rate, rt.in_channels)
    mixup = Mixup(recipe.mixup_alpha, cfg.trial_seed) if recipe.mixup_alpha > 0 else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction="none")
    # The last epochs' weights are averaged (recipe.average_last); those epochs validate the average.
    average_from = rt.max_epochs - min(recipe.average_last, rt.max_epochs) if recipe.average_last > 1 else rt.max_epochs
    averaged = AveragedModel(plain, use_buffers=True) if average_from < rt.max_epochs else None

    # Resume: a retried or restored trial continues after its last finished epoch.
    start_epoch = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_checkpoint(directory)
        plain.load_state_dict(state.get("raw", state["model"]))
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if averaged is not None and "averaged" in state:
            averaged.load_state_dict(state["averaged"])
        start_epoch = state["epoch"] + 1

    # A GPU trial keeps the splits that fit its share of the device's free memory on the device
    # (train first); the rest stay in host memory or stream, as on a CPU trial.
    budget = device_cache_budget(session.device, rt.device_cache_share)
    train_batches = EpochBatches(rt.data_dir, "train", session.rank, session.world_size, session.device, budget)
    val_batches = EpochBatches(rt.data_dir, "val",  # whole on every worker
                               device=session.device, device_budget=budget - train_batches.device_bytes)
    if session.rank == 0:
        print(epoch_data_line([train_batches, val_batches], session.device, rt.device_cache_share, budget), flush=True)
    steps_per_epoch = max(1, -(-train_batches.segments_per_worker // recipe.batch_size))
    for epoch in range(start_epoch, rt.max_epochs):
        started = time.perf_counter()
        # Dropout draws come from the global RNG: seed it per epoch so a resumed epoch repeats exactly.
        torch.manual_seed(derive_seed(cfg.trial_seed, "epoch", epoch))
        model.train()
        seen, loss_sum = 0, 0.0
        collate = AugmentingCollate(augmenter, epoch)
        shuffle_seed = derive_seed(cfg.trial_seed, "shuffle", epoch, session.rank)
        with AugmentationLog(rt.trial_dir if rt.record_augmentation else None, epoch, session.rank) as log:
            for step, batch in enumerate(train_batches(recipe.batch_size, collate, shuffle_seed)):
                # The learning rate is a function of progress alone, so a resumed epoch needs no scheduler state.
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr_at(epoch + min(step / steps_per_epoch, 1.0), rt.max_epochs)
                # Features in fp32 on the device (a power spectrum overflows fp16), the model under autocast.
                x = frontend(batch_waveform(batch, session.device))
                applied = [{} for _ in batch["keys"]]
                if x.dim() == 4:  # spectrogram input: SpecAugment on the device
                    x, applied = augmenter.spectrograms(x, batch["keys"], epoch)
                y = batch["label"].to(session.device)
                if mixup is not None:
                    lam, partner = mixup.draw(len(y), epoch, session.rank, step)
                    x = Mixup.mix(x, lam, partner)
                    for record, weight, other in zip(applied, lam.tolist(), partner.tolist()):
                        record["mixup"] = {"lam": weight, "partner": batch["keys"][other]}
                log.write(batch["keys"], batch["applied"], applied)
                with torch.autocast(**autocast):
                    logits = model(x)
                    loss = loss_fn(logits, y)
                    if mixup is not None:  # the targets mixed with the inputs' weights
                        lam = lam.to(session.device)
                        loss = lam * loss + (1 - lam) * loss_fn(logits, y[partner.to(y.device)])
                    loss = loss.mean()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if recipe.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                seen += len(y)
                loss_sum += loss.item() * len(y)
        train_s = time.perf_counter() - started

        evaluated = plain
        if averaged is not None and epoch >= average_from:
            averaged.update_parameters(plain)
            evaluated = averaged.module
        # Every worker sees the whole (unsplit) validation set, so clip votes are complete.
        val = predict(evaluated, frontend, val_batches(64), session.device)
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "train_segments": seen,
            "lr": optimizer.param_groups[0]["lr"],
            **val.metrics("val"),
            "epoch_s": time.perf_counter() - started,
            "train_s": train_s,
            "epoch_data": train_batches.where,  # where the train split stays between epochs
            **cost,
            "fold": rt.fold,
            "repeat": rt.repeat,
            **placement,
        }
        with tempfile.TemporaryDirectory() as directory:
            saved = None
            if session.rank == 0:
                # "model" holds the weights validated this epoch (the average, once averaging);
                # "raw" the weights training continues from.
                states = {"optimizer": optimizer, "scaler": scaler}
                if averaged is not None:
                    states.update(raw=plain, averaged=averaged)
                save_checkpoint(directory, evaluated, epoch, cfg.params(), **states)
                saved = session.checkpoint_type.from_directory(directory)
            session.report(metrics, saved)
