"""Dataset catalog: a dataset root becomes a manifest table, one row per clip.

Manifest columns: ``clip_id, path, label, split, fold, group, duration_s, sample_rate,
channels, label_index`` plus dataset extras (``device``, ``coarse_label``, ``esc10``, ...).
``group`` is the unit that must never straddle splits; ``split`` is train, val or test.

One reader per layout, registered by name (:func:`list_datasets`): ``fma``, ``gtzan``,
``esc50``, ``urbansound8k``, ``dcase2020``, ``shards`` (a shard set written by ``soundsweep
shard``, local or at a URI), then the generic ``folder`` (one sub-folder per class) and
``csv`` (a manifest file). ``load_manifest(None)`` gives the embedded synthetic default
instead. Example::

    load_manifest("/data/ESC-50-master")                 # detected: esc50, test fold 1
    load_manifest("/data/UrbanSound8K", test_fold=3)     # reader options pass through
    load_manifest("/data/gtzan", dataset="gtzan", split_dir="/data/gtzan-filtered")
"""
import inspect
import os
from dataclasses import dataclass

import pandas as pd

# isort: off
from soundsweep.catalog import fma, gtzan, folds, dcase, shards, generic  # noqa: F401  registration order = detection order
# isort: on
from soundsweep.catalog._manifest import MANIFEST_COLUMNS, complete_manifest, cv_folds
from soundsweep.catalog._reader import READERS, Reader, register_reader
from soundsweep.catalog.dcase import scene_hierarchy
from soundsweep.catalog.hierarchy import coarse_manifest, hierarchy_for
from soundsweep.catalog.synthetic import cache_root, synthetic_default
from soundsweep.errors import UsageError
from soundsweep.options import option

__all__ = [
    "MANIFEST_COLUMNS", "READER_OPTIONS", "DatasetOptions", "Reader", "cache_root", "coarse_manifest",
    "complete_manifest", "cv_folds", "detect_dataset", "hierarchy_for", "list_datasets", "load_manifest",
    "register_reader", "scene_hierarchy", "synthetic_default",
]

# The reader options load_manifest passes through (each reader accepts its own subset).
READER_OPTIONS = ("test_fold", "subset", "split_dir", "val_fraction")


def list_datasets() -> list[str]:
    """Reader names, in the order detection tries them (the valid ``dataset=`` values)."""
    return list(READERS)


def detect_dataset(root: str) -> str:
    """The name of the first reader that recognises ``root``; a one-line error if none does."""
    for name, reader in READERS.items():
        if reader.detect(root):
            return name
    raise UsageError(f"--data {root}: not a known dataset layout ({', '.join(READERS)}) and no <label>/<clip> "
                     "audio sub-folders; point --data at a dataset root, a class-folder tree or a manifest CSV")


def load_manifest(data: str | None, seed: int = 0, synthetic_clips: int = 24, dataset: str | None = None,
                  **options) -> pd.DataFrame:
    """The manifest for ``--data``: None (synthetic default), a dataset root, a folder or a CSV.

    The layout is detected unless ``dataset`` names the reader; ``options`` go to that reader's
    ``read`` (e.g. ``test_fold=`` for esc50/urbansound8k/gtzan, ``subset=`` for fma,
    ``split_dir=`` for gtzan, ``val_fraction=`` for dcase2020). ``seed`` drives the split of
    layouts that state none.
    """
    if data is None:
        if dataset is not None or options:
            what = f"dataset {dataset}" if dataset else f"option(s) {', '.join(options)}"
            raise UsageError(f"{what} without --data: give --data, the folder that holds the dataset")
        return complete_manifest(synthetic_default(seed, synthetic_clips), seed, source="synthetic")
    if "://" in data:  # a URI: only a shard set can live there
        root = data
    elif os.path.exists(data):
        root = os.path.abspath(data)
    else:
        raise UsageError(f"--data {data}: no such file or folder; give a dataset folder or a manifest CSV")
    if dataset is None:
        dataset = detect_dataset(root)
    if dataset not in READERS:
        raise UsageError(f"unknown dataset {dataset!r}; pick one of {', '.join(READERS)}")
    reader = READERS[dataset]
    accepted = [p for p in inspect.signature(reader.read).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(f"dataset {dataset} has no option(s) {', '.join(unknown)}; "
                         f"its options: {', '.join(accepted) or 'none'}")
    return complete_manifest(reader.read(root, **options), seed, source=f"{reader.title} {root}")


@dataclass
class DatasetOptions:
    """Which dataset a command reads: ``--data``, ``--dataset``, the reader options and the size of
    the synthetic default (the flags ``soundsweep tune``, ``probe`` and ``shard`` share)."""

    data: str | None = option(None, "dataset root (FMA, GTZAN, ESC-50, UrbanSound8K, DCASE2020: detected), a folder "
                              "with one sub-folder per class, a manifest CSV (path,label[,split,fold,group]) or a "
                              "shard set (folder or URI with shards.json); default: the embedded synthetic set",
                              group="data")
    dataset: str | None = option(None, "force the layout instead of detecting it", group="data",
                                 choices=list_datasets)
    test_fold: int | None = option(None, "fold held out for test (esc50: 1, urbansound8k: 10, gtzan: 1); the next "
                                   "fold is val", group="data")
    subset: str | None = option(None, "FMA subset: small or medium", group="data")
    split_dir: str | None = option(None, "GTZAN: folder with train/valid/test lists (fault-filtered split)",
                                   group="data")
    val_fraction: float | None = option(None, "DCASE2020: share of train locations used for val", group="data")
    synthetic_clips: int = option(24, "clips per class of the synthetic set (default %(default)s)", group="data")

    def reader_options(self) -> dict:
        """The dataset-reader options that were given (each reader accepts its own subset)."""
        return {n: getattr(self, n) for n in READER_OPTIONS if getattr(self, n) is not None}

    def manifest(self, seed: int) -> pd.DataFrame:
        """The manifest these options select (:func:`load_manifest`)."""
        return load_manifest(self.data, seed, self.synthetic_clips, self.dataset, **self.reader_options())
