"""The manifest table every reader feeds: its columns, split rules and final checks.

Readers return what their dataset states (at least ``path, label``; usually ``split, fold,
group`` and extras); :func:`complete_manifest` fills the rest the same way for all of them and
enforces the contract training relies on: three non-empty splits and no group in two splits.
"""
import hashlib
import os

import numpy as np
import pandas as pd
import soundfile
from sklearn.model_selection import StratifiedGroupKFold

from soundsweep.errors import UsageError

MANIFEST_COLUMNS = ["clip_id", "path", "label", "split", "fold", "group", "duration_s", "sample_rate", "channels"]
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
SPLITS = ("train", "val", "test")


def complete_manifest(manifest: pd.DataFrame, seed: int, source: str) -> pd.DataFrame:
    """Fill the optional columns and check what training needs (a one-line error otherwise).

    Missing ``clip_id``/``group`` values default to the file name; a missing ``split`` is assigned by a
    stratified group split (60/20/20 by 5 folds: fold 0 test, fold 1 val); audio facts missing
    from the table are read from the file headers (a file that cannot be read keeps NaN here:
    the decode step skips and lists it). A group found in two splits is an error, since it
    would leak the same recording, track or location into evaluation.
    """
    manifest = manifest.copy()
    if manifest.empty:
        raise UsageError(f"dataset {source} has no clips: check --data")
    manifest["clip_id"] = clip_ids(manifest)
    if "group" not in manifest:
        manifest["group"] = manifest["clip_id"]
    manifest["group"] = manifest["group"].fillna(manifest["clip_id"]).astype(str)
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
    splits_per_group = manifest.groupby("group")["split"].nunique()
    straddling = splits_per_group.index[splits_per_group > 1]
    if len(straddling):
        raise UsageError(f"dataset {source}: group {straddling[0]!r} (and {len(straddling) - 1} more) spans several "
                         "splits; keep each group in one split or drop the split column to have one assigned")
    if "fold" not in manifest:
        manifest["fold"] = -1
    for column in ("duration_s", "sample_rate", "channels"):
        if column not in manifest:
            manifest[column] = np.nan
    for i in manifest.index[manifest["sample_rate"].isna()]:
        try:
            info = soundfile.info(manifest.at[i, "path"])
            manifest.loc[i, ["duration_s", "sample_rate", "channels"]] = [info.duration, info.samplerate, info.channels]
        except Exception:  # unreadable here: the decode step skips and lists it
            pass
    manifest = index_labels(manifest)
    columns = MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    return manifest[columns].reset_index(drop=True)


def clip_ids(manifest: pd.DataFrame) -> list[str]:
    """Each row's clip id: its ``clip_id`` value, else (no column, or an empty value) the file name
    without extension; when those are not unique, a hash of the path. Segment keys and seeds
    derive from the id."""
    stems = pd.Series([os.path.splitext(os.path.basename(p))[0] for p in manifest["path"]], index=manifest.index)
    ids = manifest["clip_id"].astype(object).where(manifest["clip_id"].notna(), stems) if "clip_id" in manifest else stems
    if ids.duplicated().any():
        return [hashlib.sha1(p.encode()).hexdigest()[:12] for p in manifest["path"]]
    return ids.tolist()


def index_labels(manifest: pd.DataFrame) -> pd.DataFrame:
    """``label`` as text and ``label_index`` its position among the sorted class names (in place)."""
    manifest["label"] = manifest["label"].astype(str)
    classes = sorted(manifest["label"].unique())
    manifest["label_index"] = manifest["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
    return manifest


def stratified_group_folds(manifest: pd.DataFrame, k: int, seed: int, source: str, purpose: str) -> np.ndarray:
    """Each clip's fold among ``k`` folds stratified by label, groups kept whole (seeded).

    ``purpose`` finishes the error message when a class has fewer than ``k`` groups.
    """
    counts = manifest.groupby("label")["group"].nunique()
    if (counts < k).any():
        few = ", ".join(f"{c} ({n})" for c, n in counts[counts < k].items())
        raise UsageError(f"dataset {source}: class(es) {few} have fewer than {k} groups, too few {purpose}; "
                         "add clips or give a split column")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
    fold = np.zeros(len(manifest), dtype=int)
    labels = manifest["label"].to_numpy(dtype=object)
    groups = manifest["group"].to_numpy(dtype=object)
    for i, (_, held_out) in enumerate(folds.split(np.zeros(len(manifest)), labels, groups)):
        fold[held_out] = i
    return fold


def assign_splits(manifest: pd.DataFrame, seed: int, source: str) -> pd.DataFrame:
    """Stratified group split: 5 folds by label with groups kept whole; fold 0 test, 1 val."""
    fold = stratified_group_folds(manifest, 5, seed, source, "to split into train/val/test")
    manifest["fold"] = fold
    manifest["split"] = np.where(fold == 0, "test", np.where(fold == 1, "val", "train"))
    return manifest


def cv_folds(manifest: pd.DataFrame, k: int, seed: int, source: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A k-fold cross-validation of a manifest: each clip's fold, and k (test fold, val fold) pairs.

    Official folds (a ``fold`` on every clip, 3 or more of them: ESC-50, UrbanSound8K, GTZAN, the
    synthetic set, and layouts the catalog split itself) are kept: the first k are the test
    fold in turn, the next fold (wrapping) is val, the others train, as ``--test-fold`` does.
    Otherwise the clips get max(k, 3) stratified group folds, used the same way.
    """
    fold = pd.to_numeric(manifest["fold"], errors="coerce").fillna(-1).astype(int).to_numpy()
    numbers = sorted(set(fold.tolist()))
    if len(numbers) < 3 or numbers[0] < 0:
        fold = stratified_group_folds(manifest, max(k, 3), seed, source, f"for {k}-fold cross-validation")
        numbers = sorted(set(fold.tolist()))
    if k > len(numbers):
        raise UsageError(f"--folds {k}: dataset {source} has {len(numbers)} folds; use --folds {len(numbers)} or fewer")
    return fold, [(numbers[i], numbers[(i + 1) % len(numbers)]) for i in range(k)]


def splits_from_folds(folds: pd.Series, test_fold: int, source: str) -> np.ndarray:
    """Train/val/test from numbered folds: ``test_fold`` is test, the next fold (wrapping) val.

    Used for datasets that ship official folds (ESC-50, UrbanSound8K) and for GTZAN's k folds,
    so a cross-validation run only changes ``test_fold``.
    """
    numbers = sorted(int(f) for f in folds.unique())
    if len(numbers) < 3:
        raise UsageError(f"dataset {source} has {len(numbers)} fold(s); train, val and test need at least 3")
    if test_fold not in numbers:
        raise UsageError(f"dataset {source}: test fold {test_fold} is not one of its folds "
                         f"{numbers[0]}..{numbers[-1]}; pick one of those")
    val_fold = numbers[(numbers.index(test_fold) + 1) % len(numbers)]
    return np.where(folds == test_fold, "test", np.where(folds == val_fold, "val", "train"))
