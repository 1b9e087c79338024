"""Streaming an experiment's prepared segments into training and evaluation.

The driver decodes every clip once into the segment store (:mod:`trainables.segments`,
``soundsweep.prepare``); trials only stream those segments, so decode and resample are never
repeated per trial. A trial's epochs take their batches from :class:`EpochBatches`, which keeps
a small split in memory instead of streaming it again every epoch.
"""
import numpy as np
import pyarrow.fs
import ray

from trainables.augment import AugmentingCollate
from trainables.segments import SPLITS, read_segment_files, segment_files, split_size

IN_MEMORY_BYTES = 512 * 2**20
"""A split whose segments take at most this much memory per worker is read once per trial and
kept (:class:`EpochBatches`): each epoch's new Ray Data execution costs about half a second,
as much as a small split's whole training pass."""
READ_TASK_BYTES = 64 * 2**20
"""Store files a read task streams: consecutive files of about this many bytes together. Measured
on an epoch's read of a 530 MB split (2 loaded cores): one task per file of 8 MB took twice the
CPU (2.2-5.7 s against 1.1-1.7 s), and smaller blocks than the task's one more (16 MiB blocks:
1.1-1.2 CPU-ms per clip against 0.9-1.0)."""


def open_split(data_dir: str, split: str) -> ray.data.Dataset:
    """A lazy, streaming Dataset of one split's segments (nothing is read until iterated).

    Each task reads a run of consecutive store files (:data:`READ_TASK_BYTES`) a row group (a
    few MB) at a time, which Ray Data hands on as one block of about that size (it merges a
    task's output up to its 128 MiB target): a reader holds a few such blocks, whatever the
    corpus size. ``ray.data.read_parquet`` is not used: in Ray 2.60 every execution of it starts
    a pool of up to 32 footer-reading actors (about 190 MB and a second or two of CPU each), and
    a trial executes its datasets every epoch. The tasks ask Ray for the default 1 CPU; the
    resource plan keeps that free next to the trials, so reads never starve behind training
    (docs/ARCHITECTURE.md, Ray facts).
    """
    return _stream([{"path": f} for f in segment_files(data_dir, split)])


def open_splits(data_dir: str, splits: tuple[str, ...] = SPLITS) -> ray.data.Dataset:
    """Several splits in one Dataset, each row with its ``split``: one read where a consumer needs
    every split once (a screening trial), instead of one read per split."""
    return _stream([{"path": f, "split": s} for s in splits for f in segment_files(data_dir, s)])


def read_tasks(files: list[dict]) -> int:
    """How many read tasks share ``files`` (rows with a ``path``): one per :data:`READ_TASK_BYTES`
    of them, at least one, at most one per file."""
    if not files:
        return 1
    fs, _ = pyarrow.fs.FileSystem.from_uri(files[0]["path"])
    total = sum(info.size for info in fs.get_file_info([pyarrow.fs.FileSystem.from_uri(f["path"])[1] for f in files]))
    return min(len(files), max(1, -(-total // READ_TASK_BYTES)))


def _stream(files: list[dict]) -> ray.data.Dataset:
    """The files cut into :func:`read_tasks` runs of consecutive files, one task each
    (:func:`~trainables.segments.read_segment_files`)."""
    dataset = ray.data.from_items(files, override_num_blocks=read_tasks(files))
    dataset = dataset.map_batches(read_segment_files, batch_size=None)
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


class EpochBatches:
    """One split's batches, epoch after epoch: ``batches(batch_size, collate, shuffle_seed)``.

    A split larger than :data:`IN_MEMORY_BYTES` per worker is streamed by Ray Data every epoch
    (:func:`iter_batches`: a local shuffle buffer). A smaller one is read whole at its first use
    and kept; each epoch then draws a full permutation from ``shuffle_seed`` (no seed: stored
    order) and cuts it into batches for ``collate``. The choice depends on the split's size
    alone, and an epoch's order only on its seed, so a resumed trial sees the same batches as
    one that never stopped.
    """

    def __init__(self, dataset, data_dir: str, split: str, world_size: int = 1):
        self.dataset = dataset
        segments, size = split_size(data_dir, split)
        self.in_memory = size / world_size <= IN_MEMORY_BYTES
        self.segments_per_worker = -(-segments // world_size)  # what one worker's epoch sees, at most
        self.rows: dict[str, np.ndarray] | None = None

    def __call__(self, batch_size: int, collate: AugmentingCollate | None = None, shuffle_seed: int | None = None):
        if not self.in_memory:
            return iter_batches(self.dataset, batch_size, collate, shuffle_seed)
        if self.rows is None:
            parts = list(self.dataset.iter_batches(batch_size=1024, batch_format="numpy"))
            self.rows = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} if parts else {}
        return self._cut(batch_size, collate or AugmentingCollate(None, 0), shuffle_seed)

    def _cut(self, batch_size: int, collate: AugmentingCollate, shuffle_seed: int | None):
        count = len(next(iter(self.rows.values()), ()))
        order = np.arange(count) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(count)
        for start in range(0, count, batch_size):
            rows = order[start:start + batch_size]
            yield collate({key: values[rows] for key, values in self.rows.items()})
