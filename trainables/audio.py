"""Decode, channel policy, resample and segment: the per-file work of the data pipeline.

:func:`decode_segments` is the Ray Data ``map_batches`` function. It turns manifest rows into
fixed-length segments, one output row per segment; a file that cannot be used becomes a single
row in the ``failed`` split carrying the reason, so one broken file never stops a run. Audio
comes from a file path or from encoded bytes (a shard), decoded the same way.

Two input policies (SoundFusion): *window* cuts each clip into overlapping windows, *full clip*
makes each clip one segment of a fixed length, cut or zero-padded.

Output batch schema (numpy format), N segments:
    waveform  float32 (N, channels, segment_samples)
    clip_id   str (N,)      the source clip; every segment keeps it
    segment   int64 (N,)    index of the segment within its clip
    label     int64 (N,)    class index (position in the sorted class list)
    split     str (N,)      train / val / test, or ``failed``
    error     str (N,)      empty, or why the file was skipped
    seconds   float64 (N,)  the clip's decoded length (0 for a failed file): below ``segment_s``
                            it was padded
"""
import io
from dataclasses import asdict, dataclass

import numpy as np
import soundfile
import soxr

from trainables.seeding import numpy_generator


class AudioError(ValueError):
    """A file that decodes to nothing usable; the message says why."""


@dataclass(frozen=True)
class DecodeSpec:
    """How every file of an experiment is turned into segments.

    Attributes:
        sample_rate: target rate in Hz (SoundFusion: 22,050 for the waveform branch, 44,100
            for the spectrogram branch).
        channels: 1 mixes down to mono; 2 keeps stereo and duplicates mono files.
        segment_s: segment length in seconds (SoundFusion: 5 s windows, 30 s full clips).
        overlap: fraction of a window shared with the next one (SoundFusion: 0.25).
        min_fill: a clip shorter than ``min_fill`` segments is skipped; in window mode a
            shorter tail is dropped; a clip between is zero-padded to one segment.
        full_clip: one segment per clip, its first ``segment_s`` or the whole clip padded,
            instead of windows (SoundFusion's full-clip input).
        pad_seed: where a training clip's padding goes. None: at the end. An integer: the
            zeros form one block at a uniformly random position, drawn per clip from
            ``(pad_seed, clip_id)`` (SoundFusion's random padding). Validation and test clips
            are always padded at the end, so evaluation is deterministic.
        repeat_pad: fill a short clip by looping it instead of with zeros (Pons and Serra's
            repeat-padding of UrbanSound8K clips shorter than 4 s).
    """

    sample_rate: int = 22050
    channels: int = 1
    segment_s: float = 5.0
    overlap: float = 0.25
    min_fill: float = 0.1
    full_clip: bool = False
    pad_seed: int | None = None
    repeat_pad: bool = False

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.segment_samples * (1.0 - self.overlap))))

    def as_dict(self) -> dict:
        return asdict(self)


def decode(source: str | bytes) -> tuple[np.ndarray, int]:
    """Read a file path or encoded bytes with soundfile; return float32 ``(channels, samples)``
    and its rate. Bytes decode exactly as the file they came from."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        data, rate = soundfile.read(stream, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable input
        # soundfile names a file object by its repr ("<_io.BytesIO object at 0x...>"): say "the bytes".
        reason = f"cannot decode: {exc}"
        if isinstance(source, bytes):
            reason = reason.replace(repr(stream), "the bytes")
        raise AudioError(reason.splitlines()[0]) from exc
    if data.size == 0:
        raise AudioError("no samples")
    if not np.isfinite(data).all():
        raise AudioError("NaN or Inf samples")
    return np.ascontiguousarray(data.T), int(rate)


def set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Mix down to mono (``channels=1``) or to stereo (mono duplicated, extra channels mixed)."""
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if x.shape[0] == 1:
        return np.repeat(x, channels, axis=0)
    if x.shape[0] == channels:
        return x
    return np.stack([x[i::channels].mean(axis=0) for i in range(channels)])


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample ``(channels, samples)`` with soxr (high quality); a no-op at equal rates."""
    if rate == target:
        return x
    return np.ascontiguousarray(soxr.resample(x.T, rate, target).T, dtype=np.float32)


def fit_length(x: np.ndarray, length: int, rng: np.random.Generator | None = None, repeat: bool = False) -> np.ndarray:
    """Cut ``(channels, samples)`` to ``length``, or pad it up to ``length``: looped with
    ``repeat``, else with zeros.

    The zeros form one block: at the end without ``rng``, else at one of the ``samples + 1``
    positions drawn uniformly from ``rng``; the samples keep their order either way.
    """
    n = x.shape[1]
    if n >= length:
        return x[:, :length]
    if repeat:
        return np.tile(x, (1, -(-length // n)))[:, :length]
    at = n if rng is None else int(rng.integers(0, n + 1))
    zeros = np.zeros((x.shape[0], length - n), x.dtype)
    return np.concatenate([x[:, :at], zeros, x[:, at:]], axis=1)


def segment(x: np.ndarray, spec: DecodeSpec, pad_rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Cut ``(channels, samples)`` into segments of ``spec.segment_samples``: windows with
    ``spec.overlap``, or the one full-clip segment; ``pad_rng`` places padding (:func:`fit_length`)."""
    win, n = spec.segment_samples, x.shape[1]
    if n < spec.min_fill * win:
        raise AudioError(f"too short: {n / spec.sample_rate:.3f} s (minimum {spec.min_fill * spec.segment_s:g} s)")
    if spec.full_clip or n < win:
        return [fit_length(x, win, pad_rng, spec.repeat_pad)]
    return [x[:, s : s + win] for s in range(0, n - win + 1, spec.hop_samples)]


def load_clip(source: str | bytes, spec: DecodeSpec) -> np.ndarray:
    """Decode one clip (a path or encoded bytes), apply the channel policy and resample it:
    ``(spec.channels, samples)`` at ``spec.sample_rate``."""
    x, rate = decode(source)
    return resample(set_channels(x, spec.channels), rate, spec.sample_rate)


def load_segments(source: str | bytes, spec: DecodeSpec, pad_rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Decode (a path or encoded bytes), apply the channel policy, resample and segment one clip."""
    return segment(load_clip(source, spec), spec, pad_rng)


def padding_rng(spec: DecodeSpec, clip_id: str, split: str) -> np.random.Generator | None:
    """The generator that places a clip's padding: per clip for training with ``pad_seed``, else None."""
    if spec.pad_seed is None or split != "train":
        return None
    return numpy_generator(spec.pad_seed, "pad", clip_id)


def decode_segments(batch: dict, spec: DecodeSpec) -> dict:
    """Ray Data ``map_batches`` function: clip rows in, segment rows out (schema above).

    Input columns: ``clip_id``, ``label_index``, ``split`` and either ``audio`` (encoded bytes)
    or ``path`` (a file to read).
    """
    out = {k: [] for k in ("waveform", "clip_id", "segment", "label", "split", "error", "seconds")}
    empty = np.zeros((spec.channels, spec.segment_samples), np.float32)
    sources = [bytes(a) for a in batch["audio"]] if "audio" in batch else [str(p) for p in batch["path"]]
    for source, clip_id, label, split in zip(sources, batch["clip_id"], batch["label_index"], batch["split"]):
        try:
            x = load_clip(source, spec)
            pieces, error = segment(x, spec, padding_rng(spec, str(clip_id), str(split))), ""
            seconds = x.shape[1] / spec.sample_rate
        except AudioError as exc:
            pieces, error, seconds = [empty], str(exc), 0.0
        for i, piece in enumerate(pieces):
            out["waveform"].append(piece)
            out["clip_id"].append(str(clip_id))
            out["segment"].append(i)
            out["label"].append(int(label))
            out["split"].append("failed" if error else str(split))
            out["error"].append(error)
            out["seconds"].append(seconds)
    return {
        "waveform": np.stack(out["waveform"]).astype(np.float32, copy=False),
        "clip_id": np.array(out["clip_id"], dtype=object),
        "segment": np.array(out["segment"], dtype=np.int64),
        "label": np.array(out["label"], dtype=np.int64),
        "split": np.array(out["split"], dtype=object),
        "error": np.array(out["error"], dtype=object),
        "seconds": np.array(out["seconds"], dtype=np.float64),
    }
