"""Streaming an experiment's prepared segments into training and evaluation.

The driver decodes every clip once into the segment store (:mod:`trainables.segments`,
``soundsweep.prepare``); trials only stream those segments, so decode and resample are never
repeated per trial. A trial's epochs take their batches from :class:`EpochBatches`, which keeps
a split that fits on the trial's GPU there, a small one in host memory, and streams the rest
again every epoch; it reads the store's files itself, in the trial's process (a worker's share
of them, :func:`worker_share`). Ray Data (:func:`open_split`) reads the store where many tasks
share the work: evaluation, screening, the reference.
"""
import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow.fs
import pyarrow.parquet as pq
import ray
import torch

from trainables.augment import AugmentingCollate, as_tensor
from trainables.segments import COLUMNS, SPLITS, footers, read_segment_files, segment_files, stored_shape, waveform_array

IN_MEMORY_BYTES = 512 * 2**20
"""A split whose segments take at most this much memory per worker is read once per trial and
kept (:class:`EpochBatches`): its later epochs only cut batches out of memory instead of reading
and decompressing the files again."""
SHUFFLE_BYTES = 64 * 2**20
"""A streamed epoch's shuffle window (:func:`stream_batches`): row groups, drawn in the epoch's
order, are gathered until they hold this many bytes of waveforms, and the window's rows are
permuted together (about 300 five-second 22.05 kHz mono segments). A streamed read holds about
one window and the row groups it reads ahead (:data:`PREFETCH`), whatever the split's size."""
PREFETCH = 2
"""Row groups a streamed read reads ahead of its consumer, in a background thread
(:func:`prefetched`): reading overlaps training."""
READ_TASK_BYTES = 64 * 2**20
"""Store files a read task streams: consecutive files of about this many bytes together. Measured
on an epoch's read of a 530 MB split (2 loaded cores): one task per file of 8 MB took twice the
CPU (2.2-5.7 s against 1.1-1.7 s), and smaller blocks than the task's one more (16 MiB blocks:
1.1-1.2 CPU-ms per clip against 0.9-1.0)."""


def open_split(data_dir: str, split: str) -> ray.data.Dataset:
    """A lazy, streaming Dataset of one split's segments (nothing is read until iterated), for
    consumers that read a split through Ray Data (evaluation, the reference; a trial's epochs
    read with :class:`EpochBatches`).

    Each task reads a run of consecutive store files (:data:`READ_TASK_BYTES`) a row group (a
    few MB) at a time, which Ray Data hands on as one block of about that size (it merges a
    task's output up to its 128 MiB target): a reader holds a few such blocks, whatever the
    corpus size. ``ray.data.read_parquet`` is not used: in Ray 2.60 every execution of it starts
    a pool of up to 32 footer-reading actors (about 190 MB and a second or two of CPU each) on
    every execution. The tasks ask Ray for the default 1 CPU; the
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


SHARE_SEED = 0
"""Seed of the row-group order that :func:`worker_share` cuts into the workers' shares."""

Piece = tuple[pyarrow.fs.FileSystem, str, pq.FileMetaData, int, int, int]
"""What a worker reads of one row group: ``(file system, file, its footer, row group, first row,
end row)``."""


def worker_share(files: list[tuple[str, pq.FileMetaData]], rank: int = 0, world_size: int = 1) -> list[Piece]:
    """What worker ``rank`` of ``world_size`` reads of a split whose files and footers are
    ``files`` (:func:`~trainables.segments.footers`): the pieces of the ``rank``-th of
    ``world_size`` runs of consecutive rows, each of ``rows // world_size`` rows (the last
    ``rows % world_size`` are left out). Every worker of a DDP trial so steps as many batches
    (one that ran out would leave the others waiting in their gradient all-reduce), the workers'
    rows are disjoint, and the row counts come from the footers alone.

    With several workers the rows run through the row groups in an order drawn once from
    :data:`SHARE_SEED` (the same on every worker), not in stored order: a store written class
    by class (a manifest sorted by label) would otherwise give each worker a few classes, and
    each its own batch-norm statistics. Row groups hold a few clips each (one per
    :data:`~trainables.segments.CLIPS_PER_CHUNK` clips a task writes), so every share mixes the
    whole split. One worker reads the files in stored order."""
    groups = [(location, footer, group) for location, footer in files for group in range(footer.num_row_groups)]
    if world_size > 1:
        groups = [groups[i] for i in np.random.default_rng(SHARE_SEED).permutation(len(groups))]
    rows = sum(footer.num_rows for _, footer in files) // world_size
    begin, pieces, at = rank * rows, [], 0
    systems = {location: pyarrow.fs.FileSystem.from_uri(location) for location, _ in files}
    for location, footer, group in groups:
        count = footer.row_group(group).num_rows
        first, end = max(begin - at, 0), min(begin + rows - at, count)
        if first < end:
            pieces.append((*systems[location], footer, group, first, end))
        at += count
    return pieces


def read_piece(piece: Piece) -> dict[str, np.ndarray]:
    """One :func:`worker_share` piece as numpy columns (:data:`~trainables.segments.COLUMNS`,
    ``waveform`` a ``(rows, channels, samples)`` int16 view of the row group's bytes). The footer
    and file system resolved with the share are reused (parsing the footer again per row group
    cost a fifth of a read), and pyarrow decodes the row group's few columns in this thread (its
    thread pool cost more than it gained on row groups of a few MB)."""
    fs, path, footer, group, first, end = piece
    with fs.open_input_file(path) as f:
        table = pq.ParquetFile(f, metadata=footer).read_row_group(group, columns=COLUMNS, use_threads=False)
    table = table.slice(first, end - first)
    columns = {key: table.column(key).to_numpy() for key in COLUMNS if key != "waveform"}
    columns["waveform"] = waveform_array(table.column("waveform"), stored_shape(path, footer.metadata))
    return columns


def prefetched(read: Callable, items: Iterable, depth: int = PREFETCH) -> Iterator:
    """``read(item)`` for each of ``items``, in order, computed by a background thread at most
    ``depth`` items ahead of the consumer (pyarrow reads without holding the GIL). A consumer that
    stops early leaves at most the read in progress to finish."""
    items = iter(items)
    with ThreadPoolExecutor(1) as pool:
        pending = deque(pool.submit(read, item) for item in itertools.islice(items, depth))
        try:
            while pending:
                result = pending.popleft().result()
                pending.extend(pool.submit(read, item) for item in itertools.islice(items, 1))
                yield result
        finally:
            for future in pending:
                future.cancel()


def gather(window: list[dict[str, np.ndarray]], index: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``index`` (ascending) of the pieces of ``window`` taken as one table, each column copied
    once (no concatenated window)."""
    starts = np.cumsum([0] + [len(piece["label"]) for piece in window])
    owner = np.searchsorted(starts, index, side="right") - 1
    cuts = [0, *(np.flatnonzero(np.diff(owner)) + 1), len(index)]
    out = {}
    for key, first in window[0].items():
        column = np.empty((len(index), *first.shape[1:]), first.dtype)
        for a, b in itertools.pairwise(cuts):
            np.take(window[owner[a]][key], index[a:b] - starts[owner[a]], axis=0, out=column[a:b])
        out[key] = column
    return out


def stream_batches(pieces: list[Piece], batch_size: int,
                   shuffle_seed: int | None) -> Iterator[dict[str, np.ndarray]]:
    """Numpy batches of ``pieces`` (:func:`worker_share`), read from the files in the background
    (:func:`prefetched`).

    With a seed, the pieces are read in an order drawn from it and their rows shuffled in windows
    of :data:`SHUFFLE_BYTES`: each window's rows are permuted together, cut into batches (a
    batch's rows in window order), and the rows short of a whole batch carried into the next
    window. The order depends on the seed alone, so a resumed epoch repeats the batches of one
    that never stopped. Without a seed: stored order. Every row comes once.
    """
    rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
    order = range(len(pieces)) if rng is None else rng.permutation(len(pieces))
    window, size = [], 0
    for done, piece in enumerate(prefetched(read_piece, (pieces[i] for i in order)), 1):
        window.append(piece)
        size += piece["waveform"].nbytes
        last = done == len(pieces)
        if size < SHUFFLE_BYTES and not last:
            continue
        rows = sum(len(piece["label"]) for piece in window)
        index = np.arange(rows) if rng is None else rng.permutation(rows)
        whole = rows if last else rows - rows % batch_size
        for start in range(0, whole, batch_size):
            yield gather(window, np.sort(index[start:min(start + batch_size, whole)]))
        window = [gather(window, np.sort(index[whole:]))] if whole < rows else []
        size = sum(piece["waveform"].nbytes for piece in window)


STREAM, MEMORY, DEVICE = "stream", "memory", "device"
"""Where :class:`EpochBatches` keeps a split between epochs: nowhere (read from the store every
epoch), in host memory, or on the training device."""
IDENTITY_COLUMNS = ("clip_id", "segment")
"""Columns that name an example: seeds, keys and records derive from them on the host, so the
device cache leaves them there."""


def device_cache_budget(device: torch.device, share: float) -> int:
    """Bytes of ``device`` a trial may fill with its splits: ``share`` of the memory
    ``torch.cuda.mem_get_info`` reports free (after the model is on it). 0 for any other device:
    a CPU trial keeps the host-memory path."""
    if device.type != "cuda":
        return 0
    free, _ = torch.cuda.mem_get_info(device)
    return int(share * free)


class EpochBatches:
    """One worker's share of a split (:func:`worker_share`: rank ``rank`` of ``world_size``; the
    whole split for one worker), epoch after epoch: ``batches(batch_size, collate, shuffle_seed)``.

    Where the split stays between epochs (:attr:`where`) depends on its size per worker and the
    budgets alone:

    - ``device``: at most ``device_budget`` bytes (:func:`device_cache_budget`, a GPU trial).
      It is read once, at its first use, into tensors on ``device``; each epoch only indexes
      them there, so batches reach the collate (waveform augmentation) and the front-end
      without a host-to-device copy.
    - ``memory``: at most ``host_budget`` bytes (:data:`IN_MEMORY_BYTES`): read once and kept
      as numpy arrays; each epoch cuts them into batches for ``collate``.
    - ``stream``: larger; read from the store's files every epoch in this process
      (:func:`stream_batches`: a few row groups in memory, read in the background, shuffled
      in windows). Not through Ray Data: its object-store copy, batching and shuffle buffer
      held an epoch's read to 0.4-0.5 of pyarrow reading the same files
      (``benchmarks/data_pipeline.py``, ``epoch_read_ratio``).

    Both kept paths take an epoch's order from one permutation drawn on the host from
    ``shuffle_seed`` (no seed: stored order), which the device path copies to the device (8
    bytes per segment), so the two give the same batches: a resumed trial sees the batches of
    one that never stopped, even where the device's free memory made it choose the other kept
    path. The streamed path's order also depends on the seed alone (another order than the kept
    paths'). The device path keeps each column's dtype (the collate converts);
    :data:`IDENTITY_COLUMNS` stay on the host.
    """

    def __init__(self, data_dir: str, split: str, rank: int = 0, world_size: int = 1,
                 device: torch.device | None = None, device_budget: float = 0, host_budget: float = IN_MEMORY_BYTES):
        self.split = split
        files = footers(data_dir, split)
        self.pieces = worker_share(files, rank, world_size)
        self.segments_per_worker = sum(end - first for *_, first, end in self.pieces)  # what one worker's epoch sees
        size = sum(footer.row_group(g).total_byte_size for _, footer in files for g in range(footer.num_row_groups))
        self.bytes_per_worker = size / world_size
        if device is not None and 0 < device_budget and self.bytes_per_worker <= device_budget:
            self.where = DEVICE
        else:
            self.where = MEMORY if self.bytes_per_worker <= host_budget else STREAM
        self.device = device if self.where == DEVICE else None
        self.rows: dict[str, np.ndarray] | None = None  # host columns, once read
        self.tensors: dict[str, torch.Tensor] = {}  # device columns, once read

    @property
    def in_memory(self) -> bool:
        """Whether the split is read once and kept (in host memory or on the device)."""
        return self.where != STREAM

    @property
    def device_bytes(self) -> float:
        """What this split takes of the device budget: its size per worker, if it is kept there."""
        return self.bytes_per_worker if self.where == DEVICE else 0.0

    def describe(self) -> str:
        """``train 12.3 MB per worker on cuda:0`` (or ``in host memory``, ``streamed from the store every epoch``)."""
        how = {DEVICE: f"on {self.device}", MEMORY: "in host memory", STREAM: "streamed from the store every epoch"}
        return f"{self.split} {self.bytes_per_worker / 2**20:,.1f} MB per worker {how[self.where]}"

    def __call__(self, batch_size: int, collate: AugmentingCollate | None = None, shuffle_seed: int | None = None):
        collate = collate or AugmentingCollate(None, 0)
        if self.where == STREAM:
            return map(collate, stream_batches(self.pieces, batch_size, shuffle_seed))
        if self.rows is None:
            self._read()
        return self._cut(batch_size, collate, shuffle_seed)

    def _read(self) -> None:
        """Read the worker's share once. Host columns are concatenated; device columns are copied
        piece by piece into one tensor per column of :attr:`segments_per_worker` rows, so neither
        side ever holds a second copy of the split."""
        host: dict[str, list[np.ndarray]] = {}
        count = 0
        for part in prefetched(read_piece, self.pieces):
            rows = len(part["label"])
            for key, values in part.items():
                if self.device is None or key in IDENTITY_COLUMNS:
                    host.setdefault(key, []).append(values)
                    continue
                values = as_tensor(values)
                if key not in self.tensors:
                    self.tensors[key] = torch.empty((self.segments_per_worker, *values.shape[1:]), dtype=values.dtype,
                                                    device=self.device)
                self.tensors[key][count:count + rows] = values
            count += rows
        self.rows = {key: np.concatenate(parts) for key, parts in host.items()}

    def _cut(self, batch_size: int, collate: AugmentingCollate, shuffle_seed: int | None):
        count = len(next(iter(self.rows.values()), ()))
        order = np.arange(count) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(count)
        on_device = torch.from_numpy(order).to(self.device) if self.tensors else None
        for start in range(0, count, batch_size):
            batch = {key: values[order[start:start + batch_size]] for key, values in self.rows.items()}
            batch.update({key: values[on_device[start:start + batch_size]] for key, values in self.tensors.items()})
            yield collate(batch)


def epoch_data_line(splits: list[EpochBatches], device: torch.device, share: float, budget: int) -> str:
    """The one line a trial logs about where its splits stay between epochs (:class:`EpochBatches`)
    and the device cache's budget: ``epoch data: train 8,810.2 MB per worker on cuda:0, val ...;
    device cache budget 70,000.0 MB (50% of cuda:0's free memory)``, plus the splits that do not
    fit it, or ``no device cache on cpu``."""
    if device.type != "cuda":
        cache = f"no device cache on {device.type}"
    else:
        cache = f"device cache budget {budget / 2**20:,.1f} MB ({share:.0%} of {device}'s free memory)"
        missed = [s.split for s in splits if s.where != DEVICE]
        if missed:
            cache += f"; too large for it: {', '.join(missed)}"
    return f"epoch data: {', '.join(s.describe() for s in splits)}; {cache}"
