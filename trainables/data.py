"""Reading the prepared (decoded, resampled, segmented) data of an experiment with Ray Data.

The driver decodes every file once into Parquet, partitioned by split (``split=train/`` ...,
see ``soundsweep.prepare``); trials only stream those segments, so decode and resample are
never repeated per trial. Rows follow the schema of :mod:`trainables.audio`.
"""
import os

import ray

from trainables.augment import AugmentingCollate

SPLITS = ("train", "val", "test")


def split_path(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"split={split}")


def open_split(data_dir: str, split: str) -> ray.data.Dataset:
    """A lazy, streaming Dataset of one split's segments (nothing is read until iterated).

    Its tasks ask Ray for the default 1 CPU; the resource plan keeps that free next to the
    trials, so reads never starve behind training (DESIGN.md, Ray facts).
    """
    return _read([split_path(data_dir, split)], ["waveform", "clip_id", "segment", "label"])


def open_splits(data_dir: str, splits: tuple[str, ...] = SPLITS) -> ray.data.Dataset:
    """Several splits in one Dataset, each row with its ``split``: one read where a consumer needs
    every split once (a screening trial), instead of one read per split."""
    return _read([split_path(data_dir, s) for s in splits], ["waveform", "clip_id", "segment", "label", "split"])


def _read(paths: list[str], columns: list[str]) -> ray.data.Dataset:
    # The ``split`` column comes from the hive-style ``split=<name>`` folder names.
    dataset = ray.data.read_parquet(paths).select_columns(columns)
    dataset.context.enable_progress_bars = False  # trials print one progress line, not bars
    # Same seed, same data order: blocks reach the local shuffle in file order on every run.
    dataset.context.execution_options.preserve_order = True
    return dataset


def iter_batches(dataset, batch_size: int, collate: AugmentingCollate | None = None,
                 shuffle_seed: int | None = None):
    """Torch batches from a Dataset or a Train shard; shuffled locally when a seed is given.

    Without ``collate`` no augmentation is applied (evaluation); batches have the keys of
    :class:`~trainables.augment.AugmentingCollate`.
    """
    return dataset.iter_torch_batches(
        batch_size=batch_size,
        collate_fn=collate or AugmentingCollate(None, 0),
        local_shuffle_buffer_size=4 * batch_size if shuffle_seed is not None else None,
        local_shuffle_seed=shuffle_seed,
    )
