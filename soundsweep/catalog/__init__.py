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
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from soundsweep.options import option
from soundsweep.registries import dataset_names

if TYPE_CHECKING:
    import pandas as pd

# The rest of the catalog's interface, by the module it lives in. The readers import pandas, and
# the command line builds its dataset flags from DatasetOptions without them, so these load on
# first use (module __getattr__ below).
_HOMES = {
    "MANIFEST_COLUMNS": "_manifest", "complete_manifest": "_manifest", "cv_folds": "_manifest",
    "Reader": "_reader", "register_reader": "_reader", "scene_hierarchy": "dcase", "coarse_manifest": "hierarchy",
    "hierarchy_for": "hierarchy", "cache_root": "synthetic", "synthetic_default": "synthetic",
    "detect_dataset": "_load", "list_datasets": "_load", "load_manifest": "_load",
}
__all__ = ["READER_OPTIONS", "DatasetOptions", *_HOMES]

# The reader options load_manifest passes through (each reader accepts its own subset).
READER_OPTIONS = ("test_fold", "subset", "split_dir", "val_fraction")


def __getattr__(name: str):
    """``soundsweep.catalog.<name>`` for the names in ``_HOMES``: loads the built-in readers first
    (:mod:`soundsweep.catalog._load`, so they keep their detection order ahead of any reader a
    user registers), then the name's module."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(f"{__name__}._load")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


@dataclass
class DatasetOptions:
    """Which dataset a command reads: ``--data``, ``--dataset``, the reader options and the size of
    the synthetic default (the flags ``soundsweep tune``, ``probe`` and ``shard`` share)."""

    data: str | None = option(None, "dataset root (FMA, GTZAN, ESC-50, UrbanSound8K, DCASE2020: detected), a folder "
                              "with one sub-folder per class, a manifest CSV (path,label[,split,fold,group]) or a "
                              "shard set (folder or URI with shards.json); default: the embedded synthetic set",
                              group="data")
    dataset: str | None = option(None, "force the layout instead of detecting it", group="data",
                                 choices=dataset_names)
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

    def manifest(self, seed: int) -> "pd.DataFrame":
        """The manifest these options select (:func:`load_manifest`)."""
        from soundsweep.catalog._load import load_manifest

        return load_manifest(self.data, seed, self.synthetic_clips, self.dataset, **self.reader_options())
