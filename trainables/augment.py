"""Augmentations, registered by name, each drawing from an explicit generator.

Waveform augmentations run on the training split as batches leave Ray Data (see
:class:`AugmentingCollate`); SpecAugment runs on the training device after the front-end.
Every draw for an example comes from a generator seeded by (experiment seed, purpose, epoch,
example key), so the same seed gives the same draws on any number of workers. Each call
returns the parameters it applied; :class:`AugmentationLog` records them per epoch and
:func:`replay` rebuilds an augmented batch from that record.
"""
import json
from dataclasses import dataclass, fields

import numpy as np
import pyarrow.fs
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


class Augmentation:
    """Base of every augmentation: draw an example's parameters, then apply them.

    Drawing (random, from the example's generator) is kept apart from applying (deterministic,
    from the parameters alone), so the parameters an example got can be recorded and
    :func:`replay` can rebuild the exact tensor without any generator.
    """

    name: str

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        """Parameters for one example of ``shape`` (JSON-serialisable); ``{}`` leaves it as is."""
        raise NotImplementedError

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        """``x`` with the drawn ``params`` applied."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        params = self.draw(gen, x.shape)
        return (self.apply(x, params) if params else x), params


@register_augmentation
@dataclass
class GaussianNoise(Augmentation):
    """Add ``std * N(0, 1)`` to the waveform (SoundFusion's best: std 0.02).

    The noise comes from its own generator whose seed is drawn and recorded, so a replay needs
    one integer instead of the noise samples.
    """

    name = "gaussian_noise"
    std: float = 0.02

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.std <= 0:
            return {}
        return {"std": self.std, "seed": int(torch.randint(0, 2**62, (), generator=gen))}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(params["seed"]))
        return x + params["std"] * noise


@register_augmentation
@dataclass
class RandomGain(Augmentation):
    """Multiply by ``10 ** (g / 20)``, ``g ~ U(-max_db, max_db)`` (SoundFusion: 12 dB)."""

    name = "gain"
    max_db: float = 12.0

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.max_db <= 0:
            return {}
        return {"db": float((torch.rand((), generator=gen) * 2 - 1) * self.max_db)}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        return x * 10 ** (params["db"] / 20)


@register_augmentation
@dataclass
class SpecAugment(Augmentation):
    """Frequency and time masks (Park et al.), filled with the example's mean value.

    With probability ``p`` an example gets ``freq_masks`` masks of up to ``max_pct`` of the
    frequency axis and ``time_masks`` masks of up to ``max_pct`` of the time axis; widths and
    positions are uniform; every channel of ``(channels, freq, time)`` gets the same mask.
    Parameters: ``{"freq": [[start, width], ...], "time": [...]}``. SoundFusion's best: p 1.0,
    max_pct 0.3, 2 + 2 masks.
    """

    name = "specaugment"
    p: float = 1.0
    max_pct: float = 0.3
    freq_masks: int = 2
    time_masks: int = 2

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if float(torch.rand((), generator=gen)) >= self.p:
            return {}
        params = {"freq": [], "time": []}
        for axis, size, count in (("freq", shape[-2], self.freq_masks), ("time", shape[-1], self.time_masks)):
            limit = int(self.max_pct * size)
            for _ in range(count):
                width = int(torch.randint(0, limit + 1, (), generator=gen))
                start = int(torch.randint(0, size - width + 1, (), generator=gen))
                params[axis].append([start, width])
        return params

    @staticmethod
    def apply(spec: torch.Tensor, params: dict) -> torch.Tensor:
        mask = torch.zeros(spec.shape[-2:], dtype=torch.bool, device=spec.device)
        for start, width in params["freq"]:
            mask[start : start + width, :] = True
        for start, width in params["time"]:
            mask[:, start : start + width] = True
        return torch.where(mask, spec.mean(), spec)


def replay(x: torch.Tensor, applied: dict) -> torch.Tensor:
    """Apply one example's recorded ``{augmentation name: params}`` again, in recorded order.

    ``applied`` is what :class:`Augmenter` returned (or :class:`AugmentationLog` wrote) for the
    example; the result equals the augmented tensor bit for bit.
    """
    for name, params in applied.items():
        x = AUGMENTATIONS[name].apply(x, params)
    return x


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
        self.waveform_steps: list[Augmentation] = [
            RandomGain(config.gain_db),
            GaussianNoise(config.noise_std),
        ]
        self.specaugment = SpecAugment(
            config.specaug_p, config.specaug_max_pct, config.specaug_freq_masks, config.specaug_time_masks
        )

    def waveforms(self, x: torch.Tensor, keys: list[str], epoch: int) -> tuple[torch.Tensor, list[dict]]:
        """Augment a ``(B, C, T)`` batch; ``keys`` name the examples (``clip_id#segment``).

        Returns the batch and, per example, ``{augmentation name: params}`` of what was applied.
        """
        out, records = [], []
        for xi, key in zip(x, keys):
            gen = torch_generator(self.seed, "waveform", epoch, key)
            record = {}
            for step in self.waveform_steps:
                xi, params = step(xi, gen)
                if params:
                    record[step.name] = params
            out.append(xi)
            records.append(record)
        return torch.stack(out), records

    def spectrograms(self, s: torch.Tensor, keys: list[str], epoch: int) -> tuple[torch.Tensor, list[dict]]:
        """SpecAugment a ``(B, C, F, T)`` batch on whatever device it lives on (records as
        :meth:`waveforms`)."""
        if self.specaugment.p <= 0:
            return s, [{} for _ in keys]
        out, records = [], []
        for si, key in zip(s, keys):
            si, params = self.specaugment(si, torch_generator(self.seed, "spec", epoch, key))
            out.append(si)
            records.append({self.specaugment.name: params} if params else {})
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


def record_path(directory: str, epoch: int, rank: int) -> str:
    """The file :class:`AugmentationLog` writes for one worker and epoch under ``directory``."""
    return f"{directory.rstrip('/')}/augmentation/epoch{epoch:04d}-rank{rank}.jsonl"


class AugmentationLog:
    """Records the parameters each training example got in one epoch (a no-op without a directory).

    One JSON line per example, in the order the model saw them: ``{"epoch", "rank", "batch",
    "key", "waveform": {name: params}, "spectrogram": {name: params}}``. With the example's
    un-augmented segment (``key`` is ``clip_id#segment``), :func:`replay` of ``waveform``, the
    front-end, then :func:`replay` of ``spectrogram`` rebuild the exact model input. The
    directory is a local folder or a URI (pyarrow.fs); every epoch and worker has its own file
    (:func:`record_path`), so a retried epoch rewrites only its own record. Use as a context
    manager; lines are streamed out, nothing accumulates.
    """

    def __init__(self, directory: str | None, epoch: int, rank: int):
        self.epoch, self.rank, self.batch = epoch, rank, 0
        self.stream = None
        if directory:
            fs, path = pyarrow.fs.FileSystem.from_uri(record_path(directory, epoch, rank))
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            self.stream = fs.open_output_stream(path)

    def write(self, keys: list[str], waveform: list[dict], spectrogram: list[dict] | None = None) -> None:
        """Record one batch: its example keys and the per-example parameters applied."""
        if self.stream is None:
            return
        spectrogram = spectrogram or [{} for _ in keys]
        lines = (json.dumps({"epoch": self.epoch, "rank": self.rank, "batch": self.batch, "key": key,
                             "waveform": w, "spectrogram": s}) + "\n"
                 for key, w, s in zip(keys, waveform, spectrogram))
        self.stream.write("".join(lines).encode())
        self.batch += 1

    def __enter__(self) -> "AugmentationLog":
        return self

    def __exit__(self, *exc) -> None:
        if self.stream is not None:
            self.stream.close()
