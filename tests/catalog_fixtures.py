"""Tiny copies of each dataset's exact on-disk layout, with real (0.5 s, 8 kHz) audio files.

Each ``write_*`` function fills an empty folder and returns what the tests check against. The
metadata follows the real files' formats, quirks included: FMA's multi-row header, ESC-50's
``{fold}-{src_file}-{take}-{target}.wav`` names, UrbanSound8K's fold folders, DCASE's
tab-separated tables and device suffixes.
"""
import os

import numpy as np
import soundfile

RATE = 8000


def write_tone(path: str, frequency: float = 440.0, seconds: float = 0.5) -> str:
    """Write a short sine to ``path``; the extension picks the format (wav, flac, mp3, au)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), RATE)
    return path


def write_folder_per_class(root: str, labels: tuple[str, ...] = ("cat", "dog"), clips: int = 5) -> None:
    """``<label>/<clip>.flac``: the generic layout."""
    for i, label in enumerate(labels):
        for n in range(clips):
            write_tone(os.path.join(root, label, f"{label}{n}.flac"), 300 + 100 * i + 10 * n)


WRITERS = {
    "folder": write_folder_per_class,
}
