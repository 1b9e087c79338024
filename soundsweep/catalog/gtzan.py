"""GTZAN: 10 genres x 100 clips, ``genres/<genre>/<genre>.000NN.wav`` (or ``.au``).

The root may hold ``genres/`` (the original archive) or ``genres_original/`` (a common
re-packaging), or be that folder itself. GTZAN has no metadata, so ``group`` is the clip.

Splits, by default, come from ``folds`` stratified folds: each genre's clips, in file order,
are cut into contiguous blocks, one per fold. Contiguous rather than shuffled because GTZAN
stores clips of one artist or album next to each other, so blocks leak less than a shuffle;
``test_fold`` picks the test fold and the next one is val. GTZAN still repeats artists and
whole recordings across the set: ``split_dir`` replaces the folds with a fault-filtered split
given as lists of clips (files named ``train*.txt``, ``valid*.txt`` or ``val*.txt``, and
``test*.txt``, one ``blues/blues.00000.wav`` line per clip); clips in no list are left out.
"""
import os
import re

import pandas as pd

from soundsweep.catalog._manifest import AUDIO_EXTENSIONS, SPLITS, splits_from_folds
from soundsweep.catalog._reader import Reader, class_folder_clips, first_names, register_reader
from soundsweep.errors import UsageError

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
CLIP_NAME = re.compile(r"^[a-z]+\.\d{5}\.(wav|au)$")
GENRE_FOLDERS = ("genres", "genres_original")


def _clip_key(path: str) -> str:
    """``genre/stem`` of a clip path or split-file line, whatever its extension or prefix."""
    parent, name = os.path.split(path.strip().replace("\\", "/"))
    if name.lower().endswith(AUDIO_EXTENSIONS):
        name = os.path.splitext(name)[0]
    return f"{os.path.basename(parent)}/{name}"


def _is_genre_folder(folder: str) -> bool:
    return any(any(CLIP_NAME.match(n) for n in first_names(os.path.join(folder, g))) for g in GENRES)


class Gtzan(Reader):
    name = "gtzan"
    title = "GTZAN"
    layout = "the folder that holds genres/<genre>/<genre>.00000.wav (or genres_original/)"

    def _genre_folder(self, root: str) -> str | None:
        """The folder holding the genre sub-folders, or None if ``root`` is not a GTZAN root."""
        for candidate in GENRE_FOLDERS:
            if os.path.isdir(os.path.join(root, candidate)):
                return os.path.join(root, candidate)
        return root if os.path.isdir(root) and _is_genre_folder(root) else None

    def detect(self, root: str) -> bool:
        return self._genre_folder(root) is not None

    def read(self, root: str, test_fold: int = 1, folds: int = 10, split_dir: str | None = None) -> pd.DataFrame:
        """All clips, split by ``folds`` contiguous folds (``test_fold`` test) or by ``split_dir``."""
        genres = self._genre_folder(root)
        if genres is None:
            raise self.missing(root, "genres/ (or genres_original/)")
        rows = class_folder_clips(genres)
        if not rows:
            raise UsageError(f"GTZAN root {root}: {genres} holds no <genre>/<clip> audio files; "
                             f"point --data at {self.layout}")
        clips = pd.DataFrame(rows)
        if split_dir is not None:
            return self._listed_split(clips, split_dir)
        position = clips.groupby("label").cumcount()
        size = clips.groupby("label")["path"].transform("size")
        clips["fold"] = 1 + position * folds // size
        clips["split"] = splits_from_folds(clips["fold"], test_fold, f"GTZAN {root}")
        return clips

    @staticmethod
    def _listed_split(clips: pd.DataFrame, split_dir: str) -> pd.DataFrame:
        """Keep the clips listed in ``split_dir``'s files, with the split each file names."""
        if not os.path.isdir(split_dir):
            raise UsageError(f"GTZAN split folder {split_dir}: no such folder; give the folder that holds the "
                             "train*.txt, valid*.txt and test*.txt lists")
        files = {}
        for name in sorted(n for n in os.listdir(split_dir) if n.lower().endswith(".txt")):
            split = next((s for s in SPLITS if name.lower().startswith(s)), None)  # "valid..." starts with "val"
            if split in files:
                raise UsageError(f"GTZAN split folder {split_dir} has two {split} lists ({files[split]}, {name}): "
                                 "keep one")
            if split:
                files[split] = name
        lacking = [s for s in SPLITS if s not in files]
        if lacking:
            raise UsageError(f"GTZAN split folder {split_dir} lacks a list for {', '.join(lacking)}: it needs "
                             "train*.txt, valid*.txt and test*.txt with lines like blues/blues.00000.wav")
        split_of = {}
        for split, name in files.items():
            with open(os.path.join(split_dir, name)) as lines:
                split_of.update((_clip_key(line), split) for line in lines if line.strip())
        keys = clips["path"].map(_clip_key)
        unknown = sorted(set(split_of) - set(keys))
        if unknown:
            raise UsageError(f"GTZAN split folder {split_dir} lists {len(unknown)} clip(s) not found under the "
                             f"genre folders (e.g. {unknown[0]}): use split lists made for this copy of GTZAN")
        clips["split"] = keys.map(split_of)
        return clips[clips["split"].notna()]


register_reader(Gtzan())
