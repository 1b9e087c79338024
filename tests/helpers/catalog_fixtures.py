"""Tiny copies of each dataset's exact on-disk layout, with real (0.5 s, 8 kHz) audio files.

Each ``write_*`` function fills an empty folder and returns what the tests check against. The
metadata follows the real files' formats, quirks included: FMA's multi-row header, ESC-50's
``{fold}-{src_file}-{take}-{target}.wav`` names, UrbanSound8K's fold folders, DCASE's
tab-separated tables and device suffixes.
"""
import os

import numpy as np
import pandas as pd
import soundfile

RATE = 8000


def write_tone(path: str, frequency: float = 440.0, seconds: float = 0.5) -> str:
    """Write a short sine to ``path``; the extension picks the format (wav, flac, mp3, au)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), RATE)
    return path


FMA_TRACKS = [  # track id, set/subset, set/split, track/genre_top, artist/id
    (2, "small", "training", "Hip-Hop", 1),
    (3, "small", "training", "Hip-Hop", 1),
    (5, "small", "validation", "Rock", 2),
    (10, "small", "test", "Rock", 3),
    (134, "small", "test", "Hip-Hop", None),
    (98565, "small", "training", "Rock", 4),  # garbage bytes: undecodable
    (1001, "medium", "training", "Rock", 5),
    (1002, "medium", "validation", "Hip-Hop", 6),
    (1003, "large", "training", None, 7),
]
FMA_GARBAGE = 98565


def write_fma(root: str) -> None:
    """``fma_metadata/tracks.csv`` written the way FMA's own was (pandas, MultiIndex header,
    a ``track_id`` row) and ``fma_small/``, ``fma_medium/`` with one mp3 per listed track."""
    columns = pd.MultiIndex.from_tuples([
        ("album", "title"), ("artist", "id"), ("artist", "name"),
        ("set", "split"), ("set", "subset"), ("track", "genre_top"), ("track", "title"),
    ])
    rows = [[f"album {a}", a, f"artist {a}", split, subset, genre, f"track {tid}"]
            for tid, subset, split, genre, a in FMA_TRACKS]
    index = pd.Index([t[0] for t in FMA_TRACKS], name="track_id")
    os.makedirs(os.path.join(root, "fma_metadata"))
    pd.DataFrame(rows, index=index, columns=columns).to_csv(os.path.join(root, "fma_metadata", "tracks.csv"))
    for tid, subset, *_ in FMA_TRACKS:
        folders = {"small": ("fma_small", "fma_medium"), "medium": ("fma_medium",)}.get(subset, ())
        for folder in folders:
            name = f"{tid:06d}"
            path = os.path.join(root, folder, name[:3], f"{name}.mp3")
            if tid == FMA_GARBAGE:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(np.random.default_rng(0).bytes(3000))
            else:
                write_tone(path, 200 + tid % 500)


GTZAN_GENRES = ("blues", "jazz", "rock")


def write_gtzan(root: str, folder: str = "genres", clips: int = 10, extension: str = "wav") -> None:
    """``<folder>/<genre>/<genre>.000NN.<extension>`` for 3 genres, plus the stray top-level
    files the original archive ships."""
    for g, genre in enumerate(GTZAN_GENRES):
        for n in range(clips):
            write_tone(os.path.join(root, folder, genre, f"{genre}.{n:05d}.{extension}"), 200 + 100 * g + n)
    with open(os.path.join(root, folder, "input.mf"), "w") as f:
        f.write("blues/blues.00000.au\tblues\n")


def write_gtzan_split(folder: str, lists: dict[str, list[str]]) -> None:
    """Fault-filtered style lists: ``{split}_filtered.txt`` with ``genre/genre.000NN.wav`` lines."""
    os.makedirs(folder, exist_ok=True)
    for split, lines in lists.items():
        with open(os.path.join(folder, f"{split}_filtered.txt"), "w") as f:
            f.write("".join(f"{line}\n" for line in lines))


ESC50_CATEGORIES = ((0, "dog", True), (10, "rain", True), (37, "clock_alarm", False))


def write_esc50(root: str) -> pd.DataFrame:
    """``meta/esc50.csv`` and ``audio/``: 5 folds x 3 categories x 2 takes of one source file."""
    rows = []
    for fold in range(1, 6):
        for target, category, esc10 in ESC50_CATEGORIES:
            src_file = 100000 + 100 * fold + target
            for take in "AB":
                filename = f"{fold}-{src_file}-{take}-{target}.wav"
                write_tone(os.path.join(root, "audio", filename), 300 + target * 10 + fold)
                rows.append((filename, fold, target, category, esc10, src_file, take))
    table = pd.DataFrame(rows, columns=["filename", "fold", "target", "category", "esc10", "src_file", "take"])
    os.makedirs(os.path.join(root, "meta"))
    table.to_csv(os.path.join(root, "meta", "esc50.csv"), index=False)
    return table


US8K_CLASSES = ((1, "car_horn"), (3, "dog_bark"))


def write_urbansound8k(root: str) -> pd.DataFrame:
    """``metadata/UrbanSound8K.csv`` and ``audio/fold1..10``: per fold and class one Freesound
    recording; the recordings of fold 3 are cut into two slices each."""
    rows = []
    for fold in range(1, 11):
        for class_id, name in US8K_CLASSES:
            fs_id = 7000 + 10 * fold + class_id
            for occurrence in range(2 if fold == 3 else 1):
                slice_name = f"{fs_id}-{class_id}-{occurrence}-0.wav"
                write_tone(os.path.join(root, "audio", f"fold{fold}", slice_name), 250 + 20 * class_id + fold)
                rows.append((slice_name, fs_id, 0.5 * occurrence, 0.5 * occurrence + 0.5, 1 + occurrence, fold,
                             class_id, name))
    table = pd.DataFrame(rows, columns=["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID",
                                        "class"])
    os.makedirs(os.path.join(root, "metadata"))
    table.to_csv(os.path.join(root, "metadata", "UrbanSound8K.csv"), index=False)
    return table


DCASE_SCENES = ("airport", "park", "bus")
DCASE_DEVICES = ("a", "b", "s1")


def write_dcase2020(root: str, task: str = "1a") -> pd.DataFrame:
    """The development-set layout, tab-separated: per scene 5 train and 1 test location in two
    cities, each recorded by devices a, b and s1 (1a) or by a only (1b, 3 coarse labels), plus
    one s7 file listed in meta.csv but in neither setup list."""
    coarse = {"airport": "indoor", "park": "outdoor", "bus": "transportation"}
    devices = DCASE_DEVICES if task == "1a" else ("a",)
    rows = []
    for s, scene in enumerate(DCASE_SCENES):
        for location in range(6):
            city = ("barcelona", "lyon")[location % 2]
            identifier = f"{city}-{10 * s + location}"
            for device in devices:
                filename = f"audio/{scene}-{identifier}-{location * 10}-{device}.wav"
                write_tone(os.path.join(root, filename), 300 + 50 * s + location)
                split = "test" if location == 5 else "train"
                label = scene if task == "1a" else coarse[scene]
                rows.append((filename, label, identifier, device, split))
    write_tone(os.path.join(root, "audio/airport-lyon-99-0-s7.wav"))
    rows.append(("audio/airport-lyon-99-0-s7.wav", "airport" if task == "1a" else "indoor", "lyon-99", "s7", None))
    table = pd.DataFrame(rows, columns=["filename", "scene_label", "identifier", "source_label", "split"])
    table.drop(columns="split").to_csv(os.path.join(root, "meta.csv"), sep="\t", index=False)
    os.makedirs(os.path.join(root, "evaluation_setup"))
    for split, name in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        listed = table[table["split"] == split][["filename", "scene_label"]]
        listed.to_csv(os.path.join(root, "evaluation_setup", name), sep="\t", index=False)
    return table


def write_folder_per_class(root: str, labels: tuple[str, ...] = ("cat", "dog"), clips: int = 5) -> None:
    """``<label>/<clip>.flac``: the generic layout."""
    for i, label in enumerate(labels):
        for n in range(clips):
            write_tone(os.path.join(root, label, f"{label}{n}.flac"), 300 + 100 * i + 10 * n)


WRITERS = {
    "fma": write_fma, "gtzan": write_gtzan, "esc50": write_esc50, "urbansound8k": write_urbansound8k,
    "dcase2020": write_dcase2020, "folder": write_folder_per_class,
}
