"""Augmentations, registered by name, each drawing from an explicit generator.

Waveform augmentations run on the training split as an epoch's batches are cut
(:class:`~trainables.data.EpochBatches`, see :class:`AugmentingCollate`), on whatever device the
batch is on: a GPU trial whose split is kept on the GPU augments there; SpecAugment runs on the
training device after the front-end.
Draws always come from CPU generators (noise too, copied to the device), so an example gets the
same parameters and noise on any device.
Every draw for an example comes from a generator seeded by (experiment seed, purpose, epoch,
example key), so the same seed gives the same draws on any number of workers (only the partner
that ``mix_same_class`` picks also depends on the batch: it must be a batch mate). Each call
returns the parameters it applied; :class:`AugmentationLog` records them per epoch and
:func:`replay` rebuilds an augmented batch from that record.
"""
import json
from dataclasses import dataclass, fields
from fractions import Fraction

import numpy as np
import pyarrow.fs
import torch
import torchaudio
from ray.data.collate_fn import NumpyBatchCollateFn
from scipy.fft import next_fast_len

from trainables.seeding import torch_generator

AUGMENTATIONS: dict[str, type] = {}


def register_augmentation(cls: type) -> type:
    """Class decorator: make an augmentation available by its ``name``."""
    AUGMENTATIONS[cls.name] = cls
    return cls


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
        return x + params["std"] * noise.to(x.device)


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


@register_augmentation
@dataclass
class TimeShift(Augmentation):
    """Roll the segment circularly by ``s ~ U(-max_fraction, max_fraction)`` of its length.

    A roll keeps every sample (and so the energy); it moves where events and the seam of a
    loop-padded step fall. Parameters: ``{"samples": shift}``.
    """

    name = "time_shift"
    max_fraction: float = 0.0

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.max_fraction <= 0:
            return {}
        return {"samples": round(float(torch.rand((), generator=gen) * 2 - 1) * self.max_fraction * shape[-1])}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        return torch.roll(x, params["samples"], dims=-1)


def resample_to_length(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` played ``factor`` times faster (frequencies and tempo times ``factor``), looped or
    cropped back to its length.

    The factor is applied as the nearest fraction with a denominator up to 100 (torchaudio's
    polyphase resampler needs integer rates; small ones keep its kernel short).
    """
    ratio = Fraction(factor).limit_denominator(100)
    y = torchaudio.functional.resample(x, ratio.numerator, ratio.denominator)
    length = x.shape[-1]
    if y.shape[-1] < length:
        y = y.repeat(*[1] * (y.dim() - 1), -(-length // y.shape[-1]))
    return y[..., :length]


@register_augmentation
@dataclass
class Speed(Augmentation):
    """Tape-style speed change by ``f ~ U(1 - max_change, 1 + max_change)``: resampled, so pitch
    and tempo change together, then looped (faster) or cropped (slower) back to the segment
    length. Hu et al.'s DCASE2020 "speed change" stretched tempo only (a phase vocoder,
    rate U(0.5, 2)); resampling costs a fraction of that per example. Parameters:
    ``{"factor": f}``.
    """

    name = "speed"
    max_change: float = 0.0

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.max_change <= 0:
            return {}
        return {"factor": 1 + float(torch.rand((), generator=gen) * 2 - 1) * self.max_change}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        return resample_to_length(x, params["factor"])


@register_augmentation
@dataclass
class PitchShift(Augmentation):
    """Shift by ``n ~ U(-max_semitones, max_semitones)`` semitones (DCASE2020, Hu et al.: 4).

    Done as :class:`Speed` by ``2 ** (n / 12)``, so the content's tempo changes with its pitch
    while the segment keeps its length (Hu et al. kept the tempo with librosa's phase-vocoder
    pitch shift: some 25x the cost per example on CPU). Parameters: ``{"semitones": n}``.
    """

    name = "pitch_shift"
    max_semitones: float = 0.0

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.max_semitones <= 0:
            return {}
        return {"semitones": float(torch.rand((), generator=gen) * 2 - 1) * self.max_semitones}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        return resample_to_length(x, 2 ** (params["semitones"] / 12))


@register_augmentation
@dataclass
class ChannelSwap(Augmentation):
    """Swap left and right of a stereo example with probability ``p`` (a left/right-symmetric
    scene stays the same scene). Stereo only: :class:`Augmenter` refuses it for mono data.
    Parameters: ``{"swapped": True}``.
    """

    name = "channel_swap"
    p: float = 0.0

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.p <= 0 or float(torch.rand((), generator=gen)) >= self.p:
            return {}
        return {"swapped": True}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        if x.shape[-2] != 2:
            raise ValueError(f"channel_swap needs stereo (2, T) examples, got {tuple(x.shape)}")
        return x.flip(-2)


@register_augmentation
@dataclass
class RandomEQ(Augmentation):
    """Multiply the spectrum by a random smooth gain curve: a recording-device stand-in in the
    spirit of DCASE2020's spectrum correction (Hu et al. corrected device A recordings towards
    the other devices' mean spectrum; here the device response is random).

    ``points`` gains ``U(-max_db, max_db)`` dB at log-spaced frequencies from ``low_hz`` to
    Nyquist, interpolated linearly in dB over log frequency (held flat outside), applied to the
    FFT of the whole segment, zero-padded to a length of factors 2, 3 and 5 (faster than most
    segment lengths, and the filter's ringing does not wrap the segment's end onto its start);
    every channel gets the same curve. Parameters: ``{"hz": [...], "db": [...], "sample_rate": sr}``.
    """

    name = "eq"
    max_db: float = 0.0
    sample_rate: int = 0
    points: int = 6
    low_hz: float = 60.0

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.max_db <= 0:
            return {}
        hz = np.geomspace(self.low_hz, self.sample_rate / 2, self.points)
        db = (torch.rand(self.points, generator=gen) * 2 - 1) * self.max_db
        return {"hz": hz.tolist(), "db": db.tolist(), "sample_rate": self.sample_rate}

    @staticmethod
    def gain_db(params: dict, n_fft: int) -> np.ndarray:
        """The curve in dB at each bin of an ``n_fft``-point ``rfft``."""
        bins = np.fft.rfftfreq(n_fft, 1 / params["sample_rate"])
        return np.interp(np.log(np.maximum(bins, params["hz"][0])), np.log(params["hz"]), params["db"])

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        length = x.shape[-1]
        n = next_fast_len(length, real=True)
        gain = torch.from_numpy(10 ** (RandomEQ.gain_db(params, n) / 20)).to(x.device, x.dtype)
        return torch.fft.irfft(torch.fft.rfft(x, n) * gain, n)[..., :length]


def fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Linear convolution of ``x`` and ``h`` along time, cut to ``x``'s length (an FFT of factors
    2, 3 and 5: up to 3x faster than the next power of two or the exact length)."""
    length = x.shape[-1]
    n = next_fast_len(length + h.shape[-1] - 1, real=True)
    return torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(h, n), n)[..., :length]


@register_augmentation
@dataclass
class Reverb(Augmentation):
    """With probability ``p``, mix in the segment convolved with a synthetic room response.

    The response is Gaussian noise under an exponential decay that reaches -60 dB at
    ``rt60 ~ U(*rt60_s)`` seconds (its length), normalised to unit energy, one independent noise
    per channel; the output is ``(1 - wet) * x + wet * (x * h)`` with ``wet ~ U(*wet)``. DCASE2020
    (Hu et al.) reverberated with measured room responses and then compressed the result: with
    :class:`DynamicRangeCompression` after it, this is their reverb + DRC. The noise is drawn
    from a recorded seed. Parameters: ``{"rt60": s, "wet": w, "seed": n, "sample_rate": sr}``.
    """

    name = "reverb"
    p: float = 0.0
    sample_rate: int = 0
    rt60_s: tuple[float, float] = (0.2, 1.0)
    wet: tuple[float, float] = (0.2, 0.6)

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.p <= 0 or float(torch.rand((), generator=gen)) >= self.p:
            return {}
        u = torch.rand(2, generator=gen).tolist()
        return {"rt60": self.rt60_s[0] + u[0] * (self.rt60_s[1] - self.rt60_s[0]),
                "wet": self.wet[0] + u[1] * (self.wet[1] - self.wet[0]),
                "seed": int(torch.randint(0, 2**62, (), generator=gen)), "sample_rate": self.sample_rate}

    @staticmethod
    def impulse_response(params: dict, channels: int) -> torch.Tensor:
        """The ``(channels, rt60 * sample_rate)`` response the parameters describe."""
        length = max(1, round(params["rt60"] * params["sample_rate"]))
        decay = 10 ** (-3 * torch.arange(length) / length)  # amplitude: -60 dB at the end
        h = torch.randn(channels, length, generator=torch.Generator().manual_seed(params["seed"])) * decay
        return h / h.norm(dim=-1, keepdim=True)

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        wet = fft_convolve(x, Reverb.impulse_response(params, x.shape[-2]).to(x.device))
        return (1 - params["wet"]) * x + params["wet"] * wet


@register_augmentation
@dataclass
class DynamicRangeCompression(Augmentation):
    """With probability ``p``, a static compressor: above a threshold the level rises only
    ``1 / ratio`` dB per dB (DCASE2020, Hu et al., after reverberation).

    The level is the RMS over ``window_s`` around each sample, taken over all channels (linked
    stereo); ``threshold ~ U(*threshold_db)`` dB below the segment's loudest level and
    ``ratio ~ U(*ratio)``; no make-up gain (the front-end normalises the level). Parameters:
    ``{"threshold_db": t, "ratio": r, "window": samples}``.
    """

    name = "drc"
    p: float = 0.0
    sample_rate: int = 0
    threshold_db: tuple[float, float] = (-30.0, -10.0)
    ratio: tuple[float, float] = (2.0, 8.0)
    window_s: float = 0.01

    def draw(self, gen: torch.Generator, shape: torch.Size) -> dict:
        if self.p <= 0 or float(torch.rand((), generator=gen)) >= self.p:
            return {}
        u = torch.rand(2, generator=gen).tolist()
        return {"threshold_db": self.threshold_db[0] + u[0] * (self.threshold_db[1] - self.threshold_db[0]),
                "ratio": self.ratio[0] + u[1] * (self.ratio[1] - self.ratio[0]),
                "window": max(1, round(self.window_s * self.sample_rate))}

    @staticmethod
    def apply(x: torch.Tensor, params: dict) -> torch.Tensor:
        window = params["window"]
        power = torch.nn.functional.pad(x.double().pow(2).mean(-2), (window // 2 + 1, (window - 1) // 2))
        energy = power.cumsum(-1)
        level = 10 * torch.log10(((energy[window:] - energy[:-window]) / window).clamp_min(1e-20))
        over = (level - (level.max() + params["threshold_db"])).clamp_min(0)
        return x * 10 ** (-over * (1 - 1 / params["ratio"]) / 20).to(x.dtype)


@register_augmentation
@dataclass
class MixSameClass:
    """With probability ``p``, mix the example with another of its class from the same batch:
    ``gain * x + partner_gain * partner``, both gains ``U(0.5, 1)`` ("mix audios", DCASE2020,
    Hu et al.).

    A batch-level step (:meth:`Augmenter.waveforms` gives it the batch's labels): the partner is
    chosen with the example's generator among the other examples of its class, and mixed
    un-augmented. Parameters: ``{"partner": key, "gain": g, "partner_gain": h}``; replaying it
    needs the partner's un-augmented segment (``replay(..., partner=...)``).
    """

    name = "mix_same_class"
    p: float = 0.0

    def draw(self, gen: torch.Generator, candidates: list[str]) -> dict:
        """Parameters for an example whose same-class batch mates are ``candidates`` (keys)."""
        if self.p <= 0:
            return {}
        # Always four draws, so the later steps' draws do not depend on the batch's make-up.
        coin, pick, gain, partner_gain = torch.rand(4, generator=gen).tolist()
        if coin >= self.p or not candidates:
            return {}
        return {"partner": candidates[int(pick * len(candidates))],
                "gain": 0.5 + gain / 2, "partner_gain": 0.5 + partner_gain / 2}

    @staticmethod
    def apply(x: torch.Tensor, params: dict, partner: torch.Tensor) -> torch.Tensor:
        return params["gain"] * x + params["partner_gain"] * partner


def replay(x: torch.Tensor, applied: dict, partner: torch.Tensor | None = None) -> torch.Tensor:
    """Apply one example's recorded ``{augmentation name: params}`` again, in recorded order.

    ``applied`` is what :class:`Augmenter` returned (or :class:`AugmentationLog` wrote) for the
    example; the result equals the augmented tensor bit for bit. An example that got
    ``mix_same_class`` also needs ``partner``: the un-augmented segment of the example its
    parameters name (``applied["mix_same_class"]["partner"]``).
    """
    for name, params in applied.items():
        if name == MixSameClass.name:
            if partner is None:
                raise ValueError(f"replaying mix_same_class needs the un-augmented segment of {params['partner']}")
            x = MixSameClass.apply(x, params, partner)
        else:
            x = AUGMENTATIONS[name].apply(x, params)
    return x


@dataclass
class AugmentConfig:
    """Every augmentation knob a search space may set (0 turns an augmentation off).

    Attributes:
        noise_std, gain_db: :class:`GaussianNoise`, :class:`RandomGain`.
        specaug_*: :class:`SpecAugment`.
        time_shift: :class:`TimeShift`, largest roll as a fraction of the segment.
        speed: :class:`Speed`, largest relative change (0.1: factor U(0.9, 1.1)).
        pitch_shift: :class:`PitchShift`, largest shift in semitones (DCASE2020: 4).
        channel_swap_p: :class:`ChannelSwap` probability (stereo data only).
        eq_db: :class:`RandomEQ`, largest gain of a control point in dB.
        reverb_p, drc_p: :class:`Reverb`, :class:`DynamicRangeCompression` probabilities.
        mix_same_class_p: :class:`MixSameClass` probability.
    """

    noise_std: float = 0.0
    gain_db: float = 0.0
    specaug_p: float = 0.0
    specaug_max_pct: float = 0.3
    specaug_freq_masks: int = 2
    specaug_time_masks: int = 2
    time_shift: float = 0.0
    speed: float = 0.0
    pitch_shift: float = 0.0
    channel_swap_p: float = 0.0
    eq_db: float = 0.0
    reverb_p: float = 0.0
    drc_p: float = 0.0
    mix_same_class_p: float = 0.0

    @classmethod
    def from_dict(cls, config: dict) -> "AugmentConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    def check(self, sample_rate: int | None, channels: int | None) -> None:
        """Raise ``ValueError`` for knobs the data cannot take (``None``: not known)."""
        if not 0 <= self.speed < 1:
            raise ValueError(f"speed {self.speed}: the largest relative change must be in [0, 1)")
        if self.channel_swap_p > 0 and channels is not None and channels != 2:
            raise ValueError(f"channel_swap_p {self.channel_swap_p} swaps stereo channels but the data has "
                             f"{channels} channel(s): prepare it with --channels 2")
        needs_rate = [name for name in ("eq_db", "reverb_p", "drc_p") if getattr(self, name) > 0]
        if needs_rate and not sample_rate:
            raise ValueError(f"{', '.join(needs_rate)} need the sample rate: Augmenter(..., sample_rate=...)")


class Augmenter:
    """Applies an :class:`AugmentConfig` with per-example generators derived from ``seed``.

    ``sample_rate`` and ``channels`` describe the data: :class:`RandomEQ`, :class:`Reverb` and
    :class:`DynamicRangeCompression` need the rate, :class:`ChannelSwap` stereo; a config the
    data cannot take raises ``ValueError`` here (:meth:`AugmentConfig.check`).
    """

    def __init__(self, config: AugmentConfig, seed: int, sample_rate: int | None = None,
                 channels: int | None = None):
        config.check(sample_rate, channels)
        self.seed = seed
        rate = sample_rate or 0
        self.mix = MixSameClass(config.mix_same_class_p)
        # The order of a recording chain: the scene's content (mixed, re-paced, moved), the room,
        # the device's response and its compressor, then the level. Gain before noise: the gain
        # then changes the signal-to-noise ratio, which survives the per-example normalisation of
        # the log-mel front-end (a pure gain would not). A step that is off draws nothing, so the
        # others draw what they drew before it existed.
        self.waveform_steps: list[Augmentation] = [
            Speed(config.speed),
            PitchShift(config.pitch_shift),
            TimeShift(config.time_shift),
            ChannelSwap(config.channel_swap_p),
            Reverb(config.reverb_p, rate),
            RandomEQ(config.eq_db, rate),
            DynamicRangeCompression(config.drc_p, rate),
            RandomGain(config.gain_db),
            GaussianNoise(config.noise_std),
        ]
        self.specaugment = SpecAugment(
            config.specaug_p, config.specaug_max_pct, config.specaug_freq_masks, config.specaug_time_masks
        )

    def waveforms(self, x: torch.Tensor, keys: list[str], epoch: int,
                  labels: list[int] | torch.Tensor | None = None) -> tuple[torch.Tensor, list[dict]]:
        """Augment a ``(B, C, T)`` batch; ``keys`` name the examples (``clip_id#segment``), ``labels``
        their classes (needed by ``mix_same_class`` only).

        Returns the batch and, per example, ``{augmentation name: params}`` of what was applied.
        Every draw depends on the seed, epoch and key alone, except the partner of
        ``mix_same_class``, which can only be one of the batch's examples.
        """
        if self.mix.p > 0 and labels is None:
            raise ValueError("mix_same_class_p needs the batch's labels: waveforms(..., labels=...)")
        labels = torch.as_tensor(labels).tolist() if labels is not None else []  # one device sync, not one per label
        out, records = [], []
        for i, (xi, key) in enumerate(zip(x, keys)):
            gen = torch_generator(self.seed, "waveform", epoch, key)
            record = {}
            if self.mix.p > 0:
                params = self.mix.draw(gen, [k for j, k in enumerate(keys) if j != i and labels[j] == labels[i]])
                if params:
                    xi = self.mix.apply(xi, params, x[keys.index(params["partner"])])
                    record[self.mix.name] = params
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


def as_tensor(values) -> torch.Tensor:
    """A batch column as a tensor, left on the device it is on: a tensor as it is, a numpy array
    shared, or copied when read-only (a batch of one Ray Data block is a read-only view, which
    torch cannot share)."""
    if isinstance(values, torch.Tensor):
        return values
    values = np.asarray(values)
    return torch.from_numpy(values if values.flags.writeable else values.copy())


class AugmentingCollate(NumpyBatchCollateFn):
    """``iter_torch_batches(collate_fn=...)`` for the training split: numpy batch in, tensors out.

    Waveform augmentation happens here, as an epoch's batches are cut (or leave Ray Data),
    because only the consumer knows the epoch that the per-example seeds need.
    Input: segment store rows (``waveform`` int16 with its ``scale``,
    :func:`trainables.segments.quantize`) or decoded rows (``waveform`` float32, no ``scale``); a
    batch of the device cache (:class:`~trainables.data.EpochBatches`) holds tensors already on
    the device, which stay there. Output keys: ``waveform`` (B, C, T) and
    ``scale`` (B,) float32, ``label`` (B,) int64, ``keys`` (list of ``clip_id#segment``),
    ``applied`` (list of dicts). Read the waveform with :func:`batch_waveform`: augmentation works
    on float32 (scale 1), but without an augmenter stored int16 stays int16, half the bytes to
    the device.
    """

    def __init__(self, augmenter: Augmenter | None, epoch: int):
        self.augmenter, self.epoch = augmenter, epoch

    def __call__(self, batch: dict) -> dict:
        keys = example_keys(batch)
        x = as_tensor(batch["waveform"])
        scale = as_tensor(batch["scale"]).float() if "scale" in batch else torch.ones(len(keys), device=x.device)
        labels = as_tensor(batch["label"]).long()
        applied = [{} for _ in keys]
        if self.augmenter is not None:
            x = batch_waveform({"waveform": x, "scale": scale}, x.device)
            scale = torch.ones_like(scale)
            x, applied = self.augmenter.waveforms(x, keys, self.epoch, labels)
        return {
            "waveform": x,
            "scale": scale,
            "label": labels,
            "clip_id": [str(c) for c in batch["clip_id"]],
            "keys": keys,
            "applied": applied,
        }


def batch_waveform(batch: dict, device: torch.device | str) -> torch.Tensor:
    """A collated batch's waveform as float32 on ``device``: stored int16 is moved first and
    scaled there (``samples * scale`` in float32, bit for bit
    :func:`trainables.segments.dequantize`)."""
    x = batch["waveform"].to(device)
    if x.is_floating_point():
        return x.float()
    return x.float() * batch["scale"].to(device, torch.float32)[:, None, None]


def record_path(directory: str, epoch: int, rank: int) -> str:
    """The file :class:`AugmentationLog` writes for one worker and epoch under ``directory``."""
    return f"{directory.rstrip('/')}/augmentation/epoch{epoch:04d}-rank{rank}.jsonl"


class AugmentationLog:
    """Records the parameters each training example got in one epoch (a no-op without a directory).

    One JSON line per example, in the order the model saw them: ``{"epoch", "rank", "batch",
    "key", "waveform": {name: params}, "spectrogram": {name: params}}``. With the example's
    un-augmented segment (``key`` is ``clip_id#segment``; after ``mix_same_class``, its partner's
    too), :func:`replay` of ``waveform``, the front-end, then :func:`replay` of ``spectrogram``
    rebuild the exact model input. The
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
