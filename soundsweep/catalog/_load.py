"""Loading a manifest: the built-in readers, registered in detection order, and
:func:`load_manifest` (public as :mod:`soundsweep.catalog`'s, which imports this module on first use)."""
import inspect
import os

import pandas as pd

# isort: off
from soundsweep.catalog import fma, gtzan, folds, dcase, shards, generic  # noqa: F401  registration order = detection order
# isort: on
from soundsweep.catalog._manifest import complete_manifest
from soundsweep.catalog._reader import READERS
from soundsweep.catalog.synthetic import synthetic_default
from soundsweep.errors import UsageError


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
