"""The embedded default dataset: deterministic synthetic "genres" written as real FLAC files.

Each genre is a recipe that differs from the others in rhythm (tempo, drum pattern, swing),
pitch and harmony (scale, chord size, register) and timbre (oscillator, envelope, brightness)
at once; several genres share one or two of those traits, so no single cue separates them.
Every clip then gets nuisance variation: tempo and key jitter, gain, background noise at a
random SNR and a random "device" EQ. Clips come in groups (an "artist": a fixed key and tempo
offset and device), and a group never straddles splits.

A seed picks everything: ``generate(root, seed=0)`` writes the same bytes every time.
:func:`synthetic_default` generates the embedded default once into the cache folder.
"""
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import soundfile

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 3, 5, 7, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}


@dataclass(frozen=True)
class Genre:
    """One class's recipe (16-step drum patterns: 1 = hit)."""

    name: str
    bpm: float
    kick: str
    snare: str
    hat: str
    swing: float
    scale: str
    chord_size: int
    octave: int
    notes_per_beat: float
    timbre: str
    decay_s: float
    brightness: float


GENRES = (
    Genre("ambient", 72, "1000000000000000", "0000000000000000", "0000000010000000", 0.0, "major", 4, 4, 0.5, "sine", 1.6, 0.3),
    Genre("techno", 128, "1000100010001000", "0000100000001000", "0010001000100010", 0.0, "minor", 1, 3, 2.0, "saw", 0.25, 0.9),
    Genre("rock", 118, "1000000010100000", "0000100000001000", "1010101010101010", 0.0, "pentatonic", 3, 3, 1.0, "square", 0.5, 0.7),
    Genre("folk", 100, "1000000010000000", "0000000000000000", "0000100000001000", 0.1, "major", 3, 4, 2.0, "pluck", 0.6, 0.5),
    Genre("jazz", 140, "1000000000100000", "0000000100000001", "1001101010011010", 0.33, "dorian", 4, 4, 1.5, "fm", 0.7, 0.5),
    Genre("hiphop", 90, "1000001010000000", "0000100000001000", "1010101010101010", 0.2, "minor", 2, 2, 1.0, "sine", 0.4, 0.4),
    Genre("metal", 160, "1010101010101010", "0000100000001000", "1111111111111111", 0.0, "phrygian", 2, 2, 4.0, "square", 0.2, 1.0),
    Genre("reggae", 76, "0000000010000000", "0000000010000000", "0010001000100010", 0.15, "major", 3, 3, 1.0, "pluck", 0.3, 0.6),
)

TIMBRES = ("sine", "saw", "square", "fm", "pluck")


def _oscillator(kind: str, freq: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    phase = 2 * np.pi * freq * t
    if kind == "sine":
        return np.sin(phase) + 0.1 * np.sin(2 * phase)
    if kind == "saw":
        return 2 * ((freq * t) % 1.0) - 1
    if kind == "square":
        return np.tanh(3 * np.sin(phase))
    if kind == "fm":
        return np.sin(phase + 1.5 * np.exp(-3 * t) * np.sin(phase * 2.01))
    # "pluck": decaying harmonics with a slightly random spectrum
    weights = rng.uniform(0.3, 1.0, 6) / np.arange(1, 7)
    return sum(w * np.sin(phase * (k + 1)) * np.exp(-t * (k + 1) * 2) for k, w in enumerate(weights))


def _drum(kind: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    if kind == "kick":
        return np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 12)
    noise = rng.standard_normal(n)
    if kind == "snare":
        return (0.7 * noise + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 20)
    return np.diff(noise, prepend=0.0) * 0.5 * np.exp(-t * 60)  # hat: high-passed noise


def _device_eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random smooth gain curve over frequency (a cheap "recording device")."""
    spec = np.fft.rfft(x)
    f = np.linspace(0, 1, len(spec))
    tilt = rng.uniform(-10, 10) * f
    bump = rng.uniform(-12, 12) * np.exp(-((f - rng.uniform(0.05, 0.6)) ** 2) / rng.uniform(0.002, 0.05))
    return np.fft.irfft(spec * 10 ** ((tilt + bump) / 20), n=len(x))


def render_clip(genre: Genre, seconds: float, rate: int, rng: np.random.Generator,
                key: int, tempo_scale: float, eq_rng_seed: int) -> np.ndarray:
    """Render one clip of ``genre`` (mono float32 in [-1, 1])."""
    n = int(seconds * rate)
    out = np.zeros(n + rate * 3)
    bpm = genre.bpm * tempo_scale * rng.uniform(0.92, 1.08)
    step = 60.0 / bpm / 4
    # Half of the clips borrow another genre's drum pattern, and the drum/melody balance
    # varies, so rhythm alone is unreliable too.
    drums = genre if rng.random() > 0.5 else GENRES[int(rng.integers(0, len(GENRES)))]
    drum_level = rng.uniform(0.3, 1.5)
    for i in range(int(seconds / step)):
        start = int((i * step + (genre.swing * step if i % 2 else 0)) * rate)
        for kind, pattern, level in (("kick", drums.kick, 0.9), ("snare", drums.snare, 0.5), ("hat", drums.hat, 0.2)):
            if pattern[i % 16] == "1" and rng.random() > 0.08:
                hit = _drum(kind, int(0.3 * rate), rate, rng)
                out[start : start + len(hit)] += drum_level * level * rng.uniform(0.7, 1.0) * hit
    scale = SCALES[genre.scale]
    note_s = 60.0 / bpm / genre.notes_per_beat
    # Half of the clips borrow another genre's instrument, so timbre alone is unreliable.
    timbre = genre.timbre if rng.random() > 0.5 else str(rng.choice(TIMBRES))
    brightness = np.clip(genre.brightness + rng.uniform(-0.45, 0.45), 0.05, 1.0)
    for i in range(int(seconds / note_s)):
        if rng.random() < 0.15:
            continue
        degree = int(rng.integers(0, len(scale) * 2))
        length = int(min(genre.decay_s * rng.uniform(0.6, 1.4), 2.5) * rate)
        t = np.arange(length) / rate
        env = np.minimum(t / 0.01, 1.0) * np.exp(-t / max(genre.decay_s, 0.05) * 2)
        note = np.zeros(length)
        for c in range(genre.chord_size):
            d = degree + 2 * c
            semitone = scale[d % len(scale)] + 12 * (d // len(scale)) + key
            freq = 440.0 * 2 ** ((semitone + 12 * (genre.octave - 4) - 9) / 12)
            note += _oscillator(timbre, freq, t, rng)
        start = int(i * note_s * rate)
        out[start : start + length] += 0.35 * env * note / genre.chord_size
    x = out[:n]
    # timbre brightness: a one-pole low-pass whose strength depends on the recipe and the draw
    alpha = 0.15 + 0.85 * brightness
    x = np.asarray(pd.Series(x).ewm(alpha=alpha).mean()) if alpha < 0.99 else x
    x = _device_eq(x, np.random.default_rng(eq_rng_seed))
    x /= np.max(np.abs(x)) + 1e-9
    snr_db = rng.uniform(-6, 15)
    noise = rng.standard_normal(n)
    noise = np.cumsum(noise) * 0.02 + noise  # reddish background
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    x = (x + noise) * 10 ** (rng.uniform(-18, 0) / 20)
    return np.clip(x, -1, 1).astype(np.float32)


def generate(root: str, seed: int = 0, clips_per_class: int = 24, clip_seconds: float = 13.0,
             sample_rate: int = 22050, num_classes: int = 6, clips_per_group: int = 2) -> pd.DataFrame:
    """Write FLAC files under ``root/audio`` and ``root/manifest.csv``; return the manifest.

    Splits are assigned per group (60/20/20 of each class's groups).
    """
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    rows = []
    for genre in GENRES[:num_classes]:
        groups = int(np.ceil(clips_per_class / clips_per_group))
        for g in range(groups):
            grng = np.random.default_rng([seed, GENRES.index(genre), g])
            key, tempo_scale, device = int(grng.integers(-5, 7)), grng.uniform(0.85, 1.15), int(grng.integers(0, 1000))
            fraction = g / groups
            split = "train" if fraction < 0.6 else "val" if fraction < 0.8 else "test"
            for c in range(clips_per_group):
                index = g * clips_per_group + c
                if index >= clips_per_class:
                    break
                clip_id = f"{genre.name}-{index:03d}"
                rng = np.random.default_rng([seed, GENRES.index(genre), g, c, 1])
                audio = render_clip(genre, clip_seconds, sample_rate, rng, key, tempo_scale, device * 7 + seed)
                path = os.path.join(root, "audio", f"{clip_id}.flac")
                soundfile.write(path, audio, sample_rate, subtype="PCM_16")
                rows.append({
                    "clip_id": clip_id, "path": path, "label": genre.name, "split": split, "fold": g % 5,
                    "group": f"{genre.name}-artist{g:02d}", "duration_s": clip_seconds,
                    "sample_rate": sample_rate, "channels": 1, "device": f"dev{device % 9}",
                })
    manifest = pd.DataFrame(rows)
    manifest.to_csv(os.path.join(root, "manifest.csv"), index=False)
    return manifest


def cache_root() -> str:
    """Where generated data and decode caches live by default (``$SOUNDSWEEP_CACHE``)."""
    return os.path.abspath(os.environ.get("SOUNDSWEEP_CACHE", os.path.expanduser("~/.cache/soundsweep")))


def synthetic_default(seed: int = 0, clips_per_class: int = 24, num_classes: int = 6) -> pd.DataFrame:
    """The embedded default dataset, generated on first use (about 10 s) and reused after."""
    root = os.path.join(cache_root(), "synthetic", f"seed{seed}-n{clips_per_class}-c{num_classes}")
    manifest_path = os.path.join(root, "manifest.csv")
    if not os.path.exists(manifest_path):
        tmp = root + f".tmp{os.getpid()}"
        generate(tmp, seed=seed, clips_per_class=clips_per_class, num_classes=num_classes)
        manifest = pd.read_csv(os.path.join(tmp, "manifest.csv"))
        manifest["path"] = [p.replace(tmp, root, 1) for p in manifest["path"]]
        manifest.to_csv(os.path.join(tmp, "manifest.csv"), index=False)
        try:
            os.rename(tmp, root)
        except OSError:  # another process generated it first
            pass
    return pd.read_csv(manifest_path)
