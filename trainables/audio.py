"""Decode, channel policy, resample and segment: the per-file work of the data pipeline.

:func:`decode_segments` is the Ray Data ``map_batches`` function. It turns manifest rows into
fixed-length segments, one output row per segment; a file that cannot be used becomes a single
row in the ``failed`` split carrying the reason, so one broken file never stops a run.

Output batch schema (numpy format), N segments:
    waveform  float32 (N, channels, segment_samples)
    clip_id   str (N,)      the source clip; every segment keeps it
    segment   int64 (N,)    index of the segment within its clip
    label     int64 (N,)    class index (position in the sorted class list)
    split     str (N,)      train / val / test, or ``failed``
    error     str (N,)      empty, or why the file was skipped
"""
from dataclasses import asdict, dataclass

import numpy as np
import soundfile
import soxr


class AudioError(ValueError):
    """A file that decodes to nothing usable; the message says why."""


@dataclass(frozen=True)
class DecodeSpec:
    """How every file of an experiment is turned into segments.

    Attributes:
        sample_rate: target rate in Hz (SoundFusion: 22,050 for the waveform branch).
        channels: 1 mixes down to mono; 2 keeps stereo and duplicates mono files.
        segment_s: window length in seconds (SoundFusion: 5 s).
        overlap: fraction of a window shared with the next one (SoundFusion: 0.25).
        min_fill: a clip shorter than ``min_fill`` windows is skipped; a shorter tail is
            dropped; anything between is zero-padded at the end to one window.
    """

    sample_rate: int = 22050
    channels: int = 1
    segment_s: float = 5.0
    overlap: float = 0.25
    min_fill: float = 0.1

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.segment_samples * (1.0 - self.overlap))))

    def as_dict(self) -> dict:
        return asdict(self)


def decode(path: str) -> tuple[np.ndarray, int]:
    """Read ``path`` with soundfile; return float32 ``(channels, samples)`` and its rate."""
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable input
        raise AudioError(f"cannot decode: {exc}".splitlines()[0]) from exc
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


def segment(x: np.ndarray, spec: DecodeSpec) -> list[np.ndarray]:
    """Cut ``(channels, samples)`` into windows of ``spec.segment_samples`` with ``spec.overlap``."""
    win, hop = spec.segment_samples, spec.hop_samples
    n = x.shape[1]
    if n < win:
        if n < spec.min_fill * win:
            raise AudioError(f"too short: {n / spec.sample_rate:.3f} s (minimum {spec.min_fill * spec.segment_s:g} s)")
        return [np.pad(x, ((0, 0), (0, win - n)))]
    return [x[:, s : s + win] for s in range(0, n - win + 1, hop)]


def load_segments(path: str, spec: DecodeSpec) -> list[np.ndarray]:
    """Decode, apply the channel policy, resample and segment one file."""
    x, rate = decode(path)
    x = resample(set_channels(x, spec.channels), rate, spec.sample_rate)
    return segment(x, spec)


def decode_segments(batch: dict, spec: DecodeSpec) -> dict:
    """Ray Data ``map_batches`` function: manifest rows in, segment rows out (schema above)."""
    out = {k: [] for k in ("waveform", "clip_id", "segment", "label", "split", "error")}
    empty = np.zeros((spec.channels, spec.segment_samples), np.float32)
    for path, clip_id, label, split in zip(
        batch["path"], batch["clip_id"], batch["label_index"], batch["split"]
    ):
        try:
            pieces, error = load_segments(str(path), spec), ""
        except AudioError as exc:
            pieces, error = [empty], str(exc)
        for i, piece in enumerate(pieces):
            out["waveform"].append(piece)
            out["clip_id"].append(str(clip_id))
            out["segment"].append(i)
            out["label"].append(int(label))
            out["split"].append("failed" if error else str(split))
            out["error"].append(error)
    return {
        "waveform": np.stack(out["waveform"]).astype(np.float32),
        "clip_id": np.array(out["clip_id"], dtype=object),
        "segment": np.array(out["segment"], dtype=np.int64),
        "label": np.array(out["label"], dtype=np.int64),
        "split": np.array(out["split"], dtype=object),
        "error": np.array(out["error"], dtype=object),
    }
