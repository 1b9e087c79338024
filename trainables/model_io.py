"""Model I/O: build a trial's model and front-end, save and load its checkpoints, predict a split.

The training loop (:mod:`trainables.loop`) writes checkpoints with :func:`save_checkpoint`; the
driver and the derived models (``soundsweep.derived``) rebuild a stored model with :func:`load_trained` and score it with
:func:`predict_split`. A checkpoint is one folder holding :data:`CHECKPOINT_FILE`, a dict of
tensors and plain containers loaded with ``weights_only=True``.
"""
import io
import os

import pyarrow.fs
import ray.tune
import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.data import iter_batches, open_split
from trainables.evaluate import TTA, Predictions, predict
from trainables.features import create_frontend
from trainables.models import ModelConfigError, create_model, load_compatible, model_info, num_parameters, shape_only
from trainables.quantize import quantize, size_kb

CHECKPOINT_FILE = "checkpoint.pt"
EVAL_BATCH = 64
"""Segments per forward pass when a stored model is evaluated or labels audio."""


def save_checkpoint(directory: str, model: nn.Module, epoch: int, params: dict, **states) -> None:
    """Write ``model``'s weights (unwrapped from DDP), the epoch, the trial's ``params`` and any
    further ``states`` (optimizer, scaler, schedule: their ``state_dict()``) into ``directory``."""
    state = {"model": getattr(model, "module", model).state_dict(), "epoch": epoch, "params": params,
             **{name: value.state_dict() for name, value in states.items()}}
    torch.save(state, os.path.join(directory, CHECKPOINT_FILE))


def load_checkpoint(directory: str) -> dict:
    """The checkpoint dict saved by :func:`save_checkpoint` (tensors and plain containers only)."""
    return torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location="cpu", weights_only=True)


def load_weights(model: nn.Module, uri: str) -> list[str]:
    """Initialise ``model`` from a checkpoint directory or URI; returns the skipped classifier entries.

    Raises ``ModelConfigError`` (one line) when the checkpoint comes from another architecture.
    """
    with ray.tune.Checkpoint(uri).as_directory() as directory:
        return load_compatible(model, load_checkpoint(directory)["model"])


def load_trained(uri: str, cfg: TrialConfig) -> tuple[nn.Module, nn.Module]:
    """``(model, frontend)`` of ``cfg`` with a checkpoint's weights (a folder or URI, ``weights_only=True``).

    Raises ``ModelConfigError`` (one line) when the weights do not fit ``cfg``'s model."""
    model, frontend = build(cfg)
    with ray.tune.Checkpoint(uri).as_directory() as directory:
        load_all(model, load_checkpoint(directory)["model"], cfg)
    return model, frontend


def load_quantized(location: str, cfg: TrialConfig) -> tuple[nn.Module, nn.Module]:
    """``(model, frontend)`` of ``cfg`` quantized to int8 (:func:`~trainables.quantize.quantize`),
    with the int8 state saved at ``location`` (a file path or URI) by ``soundsweep quantize``."""
    model, frontend = build(cfg)
    model = quantize(model)
    fs, path = pyarrow.fs.FileSystem.from_uri(location if "://" in location else os.path.abspath(location))
    with fs.open_input_stream(path) as f:
        state = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    load_all(model, state, cfg)
    return model, frontend


def load_all(model: nn.Module, state: dict, cfg: TrialConfig) -> None:
    """Load every entry of ``model`` from ``state``, classifier included; ``ModelConfigError`` (one
    line) names the first entry that does not fit: another architecture, width or class count."""
    skipped = load_compatible(model, state)
    if skipped:
        own, theirs = model.state_dict()[skipped[0]], state.get(skipped[0])
        found = f"has shape {tuple(theirs.shape)}" if theirs is not None else "is missing"
        raise ModelConfigError(f"checkpoint entry {skipped[0]!r} {found}, a {cfg.arch} model for "
                               f"{cfg.runtime.num_classes} classes has {tuple(own.shape)}: it was trained on "
                               "other classes")


def predict_split(model: nn.Module, frontend: nn.Module, data_dir: str, split: str, tta: TTA | None = None) -> Predictions:
    """Predict every segment of ``split`` of the prepared data with a loaded model."""
    batches = iter_batches(open_split(data_dir, split), EVAL_BATCH)
    return predict(model, frontend, batches, device=next(model.parameters()).device, tta=tta)


def create(cfg: TrialConfig) -> nn.Module:
    """The model of ``cfg`` (initialised from the global RNG; :func:`build` seeds it).

    A model that computes its own features from the waveform (input ``waveform+logmel``: the
    SoundFusion fusions) is told the data's sample rate.
    """
    rt = cfg.runtime
    options = cfg.create_options()
    if model_info(cfg.arch).input == "waveform+logmel":
        options["sample_rate"] = rt.sample_rate
    return create_model(cfg.arch, num_classes=rt.num_classes, in_channels=rt.in_channels, **options)


def model_cost(cfg: TrialConfig) -> dict:
    """What ``cfg``'s model costs, computed from shapes alone (the model built on the meta device:
    no memory, no training): ``num_params`` and ``int8_kb``, the exact
    :func:`~trainables.quantize.size_kb` of its int8 quantization (DCASE2020 1b's budget unit)."""
    model = shape_only(lambda: create(cfg))
    return {"num_params": num_parameters(model), "int8_kb": size_kb(quantize(model))}


def build(cfg: TrialConfig, seed: int | None = None) -> tuple[nn.Module, nn.Module]:
    """Model and front-end for ``cfg``, the model initialised from ``seed`` (default: the trial
    seed; a model that computes its own features gets the identity front-end)."""
    torch.manual_seed(cfg.trial_seed if seed is None else seed)
    rt = cfg.runtime
    return create(cfg), create_frontend(model_info(cfg.arch).input, rt.sample_rate, cfg.training.logmel_scale)


