"""Dataset catalog: a dataset root becomes a manifest table, one row per clip.

Manifest columns: ``clip_id, path, label, split, fold, group, duration_s, sample_rate,
channels`` (plus dataset extras such as ``device``). ``group`` is the unit that must never
straddle splits. ``load_manifest(None)`` gives the embedded synthetic default, generated once
into the cache folder; a path gives a folder-per-class tree or a manifest CSV.
"""
import hashlib
import os

import numpy as np
import pandas as pd
import soundfile
from sklearn.model_selection import StratifiedGroupKFold

from soundsweep.catalog import synthetic
from soundsweep.errors import UsageError

MANIFEST_COLUMNS = ["clip_id", "path", "label", "split", "fold", "group", "duration_s", "sample_rate", "channels"]
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
SPLITS = ("train", "val", "test")


def cache_root() -> str:
    """Where generated data and decode caches live by default (``$SOUNDSWEEP_CACHE``)."""
    return os.path.abspath(os.environ.get("SOUNDSWEEP_CACHE", os.path.expanduser("~/.cache/soundsweep")))


def synthetic_default(seed: int = 0, clips_per_class: int = 24, num_classes: int = 6) -> pd.DataFrame:
    """The embedded default dataset, generated on first use (about 10 s) and reused after."""
    root = os.path.join(cache_root(), "synthetic", f"seed{seed}-n{clips_per_class}-c{num_classes}")
    manifest_path = os.path.join(root, "manifest.csv")
    if not os.path.exists(manifest_path):
        tmp = root + f".tmp{os.getpid()}"
        synthetic.generate(tmp, seed=seed, clips_per_class=clips_per_class, num_classes=num_classes)
        manifest = pd.read_csv(os.path.join(tmp, "manifest.csv"))
        manifest["path"] = [p.replace(tmp, root, 1) for p in manifest["path"]]
        manifest.to_csv(os.path.join(tmp, "manifest.csv"), index=False)
        try:
            os.rename(tmp, root)
        except OSError:  # another process generated it first
            pass
    return pd.read_csv(manifest_path)


def load_manifest(data: str | None, seed: int = 0, synthetic_clips: int = 24) -> pd.DataFrame:
    """The manifest for ``--data``: None (synthetic default), a folder, or a CSV file."""
    if data is None:
        manifest = synthetic_default(seed, synthetic_clips)
    elif not os.path.exists(data):
        raise UsageError(f"--data {data}: no such file or folder; give a dataset folder or a manifest CSV")
    elif os.path.isdir(data):
        manifest = _folder_per_class(data)
    else:
        manifest = _manifest_csv(data)
    return complete_manifest(manifest, seed, source=data or "synthetic")


def _folder_per_class(root: str) -> pd.DataFrame:
    rows = []
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(AUDIO_EXTENSIONS):
                rows.append({"path": os.path.join(folder, name), "label": label})
    if not rows:
        raise UsageError(
            f"--data {root}: no audio files in class sub-folders; expected {root}/<label>/<clip>.wav "
            "(or give a manifest CSV with path,label columns)"
        )
    return pd.DataFrame(rows)


def _manifest_csv(path: str) -> pd.DataFrame:
    try:
        manifest = pd.read_csv(path)
    except Exception as exc:
        raise UsageError(f"--data {path}: cannot read it as CSV ({exc}); give a manifest CSV or a folder") from exc
    missing = [c for c in ("path", "label") if c not in manifest.columns]
    if missing:
        raise UsageError(f"manifest {path} lacks column(s) {', '.join(missing)}: a manifest needs path,label "
                         "(and optionally split,fold,group)")
    base = os.path.dirname(os.path.abspath(path))
    manifest["path"] = [p if os.path.isabs(p) else os.path.join(base, p) for p in manifest["path"].astype(str)]
    return manifest


def complete_manifest(manifest: pd.DataFrame, seed: int, source: str) -> pd.DataFrame:
    """Fill the optional columns and check what training needs (a one-line error otherwise).

    Missing ``clip_id``/``group`` default to the file name; a missing ``split`` is assigned by a
    stratified group split (60/20/20 by 5 folds: fold 0 test, fold 1 val); audio facts missing
    from the table are read from the file headers.
    """
    manifest = manifest.copy()
    if manifest.empty:
        raise UsageError(f"dataset {source} has no clips: check --data")
    if "clip_id" not in manifest:
        manifest["clip_id"] = [os.path.splitext(os.path.basename(p))[0] for p in manifest["path"]]
    if manifest["clip_id"].duplicated().any():
        manifest["clip_id"] = [hashlib.sha1(p.encode()).hexdigest()[:12] for p in manifest["path"]]
    if "group" not in manifest:
        manifest["group"] = manifest["clip_id"]
    if "split" not in manifest:
        manifest = assign_splits(manifest, seed, source)
    manifest["split"] = manifest["split"].astype(str).str.lower().replace({"validation": "val", "training": "train"})
    unknown = sorted(set(manifest["split"]) - set(SPLITS))
    if unknown:
        raise UsageError(f"dataset {source}: unknown split value(s) {unknown}; use train, val or test")
    for split in SPLITS:
        if not (manifest["split"] == split).any():
            raise UsageError(f"dataset {source}: the {split} split is empty; give every split at least one clip "
                             "or drop the split column to have one assigned")
    if "fold" not in manifest:
        manifest["fold"] = -1
    for column in ("duration_s", "sample_rate", "channels"):
        if column not in manifest:
            manifest[column] = np.nan
    unknown_facts = manifest["sample_rate"].isna()
    for i in manifest.index[unknown_facts]:
        try:
            info = soundfile.info(manifest.at[i, "path"])
            manifest.loc[i, ["duration_s", "sample_rate", "channels"]] = [info.duration, info.samplerate, info.channels]
        except Exception:  # unreadable here: the decode step skips and lists it
            pass
    manifest["label"] = manifest["label"].astype(str)
    classes = sorted(manifest["label"].unique())
    manifest["label_index"] = manifest["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
    columns = MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    return manifest[columns].reset_index(drop=True)


def assign_splits(manifest: pd.DataFrame, seed: int, source: str) -> pd.DataFrame:
    """Stratified group split: 5 folds by label with groups kept whole; fold 0 test, 1 val."""
    counts = manifest.groupby("label")["group"].nunique()
    if (counts < 5).any():
        few = ", ".join(f"{k} ({v})" for k, v in counts[counts < 5].items())
        raise UsageError(f"dataset {source}: class(es) {few} have fewer than 5 groups, too few to split "
                         "into train/val/test; add clips or give a split column")
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed % 2**32)
    fold = np.zeros(len(manifest), dtype=int)
    labels = manifest["label"].to_numpy(dtype=object)
    groups = manifest["group"].to_numpy(dtype=object)
    for k, (_, held_out) in enumerate(folds.split(np.zeros(len(manifest)), labels, groups)):
        fold[held_out] = k
    manifest["fold"] = fold
    manifest["split"] = np.where(fold == 0, "test", np.where(fold == 1, "val", "train"))
    return manifest
