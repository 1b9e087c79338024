"""Augmentations, registered by name, each drawing from an explicit generator.

Waveform augmentations run on the training split as batches leave Ray Data (see
:class:`AugmentingCollate`); SpecAugment runs on the training device after the front-end.
Every draw for an example comes from a generator seeded by (experiment seed, purpose, epoch,
example key), so the same seed gives the same draws on any number of workers, and each call
returns the parameters it applied so that a batch can be replayed.
"""
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from trainables.seeding import torch_generator

AUGMENTATIONS: dict[str, type] = {}


def register_augmentation(cls: type) -> type:
    """Class decorator: make an augmentation available by its ``name``."""
    AUGMENTATIONS[cls.name] = cls
    return cls


def list_augmentations() -> list[str]:
    return sorted(AUGMENTATIONS)


@register_augmentation
@dataclass
class GaussianNoise:
    """Add ``std * N(0, 1)`` to the waveform (SoundFusion's best: std 0.02)."""

    name = "gaussian_noise"
    std: float = 0.02

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        if self.std <= 0:
            return x, {}
        return x + self.std * torch.randn(x.shape, generator=gen), {"noise_std": self.std}


@register_augmentation
@dataclass
class RandomGain:
    """Multiply by ``10 ** (g / 20)``, ``g ~ U(-max_db, max_db)`` (SoundFusion: 12 dB)."""

    name = "gain"
    max_db: float = 12.0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        if self.max_db <= 0:
            return x, {}
        g = float((torch.rand((), generator=gen) * 2 - 1) * self.max_db)
        return x * 10 ** (g / 20), {"gain_db": g}


@register_augmentation
@dataclass
class SpecAugment:
    """Frequency and time masks (Park et al.), filled with the example's mean value.

    With probability ``p`` an example gets ``freq_masks`` masks of up to ``max_pct`` of the
    frequency axis and ``time_masks`` masks of up to ``max_pct`` of the time axis; widths and
    positions are uniform. SoundFusion's best: p 1.0, max_pct 0.3, 2 + 2 masks.
    """

    name = "specaugment"
    p: float = 1.0
    max_pct: float = 0.3
    freq_masks: int = 2
    time_masks: int = 2

    def mask(self, n_freq: int, n_time: int, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Draw one example's boolean ``(n_freq, n_time)`` mask and the parameters applied."""
        mask = torch.zeros(n_freq, n_time, dtype=torch.bool)
        if float(torch.rand((), generator=gen)) >= self.p:
            return mask, {}
        applied = {"freq": [], "time": []}
        for axis, size, count in (("freq", n_freq, self.freq_masks), ("time", n_time, self.time_masks)):
            limit = int(self.max_pct * size)
            for _ in range(count):
                width = int(torch.randint(0, limit + 1, (), generator=gen))
                start = int(torch.randint(0, size - width + 1, (), generator=gen))
                if axis == "freq":
                    mask[start : start + width, :] = True
                else:
                    mask[:, start : start + width] = True
                applied[axis].append((start, width))
        return mask, applied

    def __call__(self, spec: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Mask one example ``(channels, freq, time)``; every channel gets the same mask."""
        mask, applied = self.mask(spec.shape[-2], spec.shape[-1], gen)
        if not applied:
            return spec, {}
        return torch.where(mask.to(spec.device), spec.mean(), spec), applied


@dataclass
class AugmentConfig:
    """Every augmentation knob a search space may set (0 turns an augmentation off)."""

    noise_std: float = 0.0
    gain_db: float = 0.0
    specaug_p: float = 0.0
    specaug_max_pct: float = 0.3
    specaug_freq_masks: int = 2
    specaug_time_masks: int = 2

    @classmethod
    def from_dict(cls, config: dict) -> "AugmentConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


class Augmenter:
    """Applies an :class:`AugmentConfig` with per-example generators derived from ``seed``."""

    def __init__(self, config: AugmentConfig, seed: int):
        self.seed = seed
        # Gain before noise: the gain then changes the signal-to-noise ratio, which survives the
        # per-example normalisation of the log-mel front-end (a pure gain would not).
        self.waveform_steps: list[Callable] = [
            RandomGain(config.gain_db),
            GaussianNoise(config.noise_std),
        ]
        self.specaugment = SpecAugment(
            config.specaug_p, config.specaug_max_pct, config.specaug_freq_masks, config.specaug_time_masks
        )

    def waveforms(self, x: torch.Tensor, keys: list[str], epoch: int) -> tuple[torch.Tensor, list[dict]]:
        """Augment a ``(B, C, T)`` batch; ``keys`` name the examples (``clip_id#segment``)."""
        out, records = [], []
        for xi, key in zip(x, keys):
            gen = torch_generator(self.seed, "waveform", epoch, key)
            record = {}
            for step in self.waveform_steps:
                xi, applied = step(xi, gen)
                record.update(applied)
            out.append(xi)
            records.append(record)
        return torch.stack(out), records

    def spectrograms(self, s: torch.Tensor, keys: list[str], epoch: int) -> tuple[torch.Tensor, list[dict]]:
        """SpecAugment a ``(B, C, F, T)`` batch on whatever device it lives on."""
        if self.specaugment.p <= 0:
            return s, [{} for _ in keys]
        out, records = [], []
        for si, key in zip(s, keys):
            si, applied = self.specaugment(si, torch_generator(self.seed, "spec", epoch, key))
            out.append(si)
            records.append(applied)
        return torch.stack(out), records


def example_keys(batch: dict) -> list[str]:
    """``clip_id#segment`` for each row of a batch: the identity seeds are derived from."""
    return [f"{c}#{int(s)}" for c, s in zip(batch["clip_id"], batch["segment"])]


class AugmentingCollate(NumpyBatchCollateFn):
    """``iter_torch_batches(collate_fn=...)`` for the training split: numpy batch in, tensors out.

    Waveform augmentation happens here, as batches leave Ray Data, because only the consumer
    knows the epoch that the per-example seeds need. Output keys: ``waveform`` (B, C, T) float32,
    ``label`` (B,) int64, ``keys`` (list of ``clip_id#segment``), ``applied`` (list of dicts).
    """

    def __init__(self, augmenter: Augmenter | None, epoch: int):
        self.augmenter, self.epoch = augmenter, epoch

    def __call__(self, batch: dict) -> dict:
        keys = example_keys(batch)
        x = torch.from_numpy(np.array(batch["waveform"], dtype=np.float32))
        applied = [{} for _ in keys]
        if self.augmenter is not None:
            x, applied = self.augmenter.waveforms(x, keys, self.epoch)
        return {
            "waveform": x,
            "label": torch.from_numpy(np.array(batch["label"], dtype=np.int64)),
            "clip_id": [str(c) for c in batch["clip_id"]],
            "keys": keys,
            "applied": applied,
        }
