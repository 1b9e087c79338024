"""The segment store, written once per (manifest, decode settings) and streamed by every trial.

``soundsweep.prepare`` runs :func:`decode_part` over the manifest in Ray Data tasks; each task
decodes a few clips at a time and appends their segments to its own Parquet files,
partitioned by split (``<data_dir>/split=train/part-000003.parquet`` ...) or, for a
cross-validation, by fold (``split=fold0`` ...); trials stream them back a row group at a time
(:func:`read_segment_files`, via :func:`trainables.data.open_split`). Stored :data:`COLUMNS`:
``waveform`` (a tensor column, ``(channels, samples)`` float32), ``clip_id``, ``segment``,
``label``; the split is the folder. A fold view (:data:`VIEW_FILE`) gives a store partitioned
by fold train/val/test splits without copying a segment.

Nothing here imports torch: a decode worker stays about 450 MB smaller without it.
"""
import itertools
import json
from collections import Counter
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
from ray.data.extensions import ArrowTensorArray

from trainables.audio import DecodeSpec, decode_segments
from trainables.shards import iter_shard

SPLITS = ("train", "val", "test")
COLUMNS = ["waveform", "clip_id", "segment", "label"]
CLIPS_PER_CHUNK = 8  # clips a task decodes and writes at a time: its memory, whatever the corpus size
VIEW_FILE = "_view.json"
"""A fold view's one file: ``{split: [store file, ...]}``, the files of the folds each split reads."""


def split_path(data_dir: str, split: str) -> str:
    return f"{data_dir.rstrip('/')}/split={split}"


def segment_files(data_dir: str, split: str) -> list[str]:
    """The store's files of one split (local paths or URIs), in part order; none if it is empty.

    ``data_dir`` may be a fold view (a folder with :data:`VIEW_FILE`): its split lists the files."""
    fs, view = pyarrow.fs.FileSystem.from_uri(f"{data_dir.rstrip('/')}/{VIEW_FILE}")
    if fs.get_file_info(view).type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(view) as f:
            return json.loads(f.read())[split]
    location = split_path(data_dir, split)
    fs, folder = pyarrow.fs.FileSystem.from_uri(location)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    return sorted(f"{location}/{info.base_name}" for info in infos if info.base_name.endswith(".parquet"))


def split_size(data_dir: str, split: str) -> tuple[int, int]:
    """``(segments, bytes)`` of one split, from its files' Parquet footers alone: the rows, and
    what they take in memory once decoded (the uncompressed size the footers record)."""
    rows = total = 0
    for location in segment_files(data_dir, split):
        fs, path = pyarrow.fs.FileSystem.from_uri(location)
        with fs.open_input_file(path) as f:
            metadata = pq.ParquetFile(f).metadata
            rows += metadata.num_rows
            total += sum(metadata.row_group(g).total_byte_size for g in range(metadata.num_row_groups))
    return rows, total


def read_segment_files(batch: dict) -> Iterator[pa.Table]:
    """Ray Data ``map_batches`` function: the segments of the files in ``batch["path"]``, one
    output block per row group (:data:`COLUMNS`, in stored order), plus a ``split`` column
    when the batch names each file's split."""
    for i, location in enumerate(batch["path"]):
        fs, path = pyarrow.fs.FileSystem.from_uri(str(location))
        with fs.open_input_file(path) as f:
            stored = pq.ParquetFile(f)
            for group in range(stored.num_row_groups):
                table = stored.read_row_group(group, columns=COLUMNS)
                if "split" in batch:
                    table = table.append_column("split", pa.array([str(batch["split"][i])] * table.num_rows))
                yield table


class SegmentWriter:
    """Streams :func:`~trainables.audio.decode_segments` batches of one part into the store.

    Each split (or fold) gets ``split=<split>/part-<part>.parquet``, one row group per batch; a
    retried task rewrites the same files instead of adding copies. Failed clips are not stored
    (the caller reports them).
    """

    def __init__(self, data_dir: str, part: int):
        self.data_dir, self.name = data_dir, f"part-{part:06d}.parquet"
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, batch: dict) -> None:
        for split in sorted(set(batch["split"]) - {"failed"}):
            rows = batch["split"] == split
            table = pa.table({
                "waveform": ArrowTensorArray.from_numpy(np.ascontiguousarray(batch["waveform"][rows])),
                "clip_id": pa.array(batch["clip_id"][rows].astype(str)),
                "segment": pa.array(batch["segment"][rows]),
                "label": pa.array(batch["label"][rows]),
            })
            if split not in self.writers:
                fs, folder = pyarrow.fs.FileSystem.from_uri(split_path(self.data_dir, split))
                fs.create_dir(folder, recursive=True)
                self.writers[split] = pq.ParquetWriter(f"{folder}/{self.name}", table.schema, filesystem=fs)
            self.writers[split].write_table(table)

    def __enter__(self) -> "SegmentWriter":
        return self

    def __exit__(self, *exc) -> None:
        for writer in self.writers.values():
            writer.close()


def part_sources(part: dict) -> Iterator[tuple[str, str | bytes]]:
    """``(clip_id, path or encoded bytes)`` for each clip of a part.

    Loose files give their paths; a shard is streamed and its listed clips give their bytes. A
    listed clip the shard lacks gives empty bytes, so it is reported like an empty file.
    """
    if not part["shard"]:
        yield from zip(map(str, part["clip_id"]), map(str, part["path"]))
        return
    wanted = set(map(str, part["clip_id"]))
    for clip_id, audio in iter_shard(part["shard"], part["shard_format"]):
        if clip_id in wanted:
            wanted.discard(clip_id)
            yield clip_id, audio
    for clip_id in sorted(wanted):
        yield clip_id, b""


def decode_part(part: dict, spec: DecodeSpec, data_dir: str) -> list[dict]:
    """Ray Data ``flat_map`` function: decode one part of the manifest into the store.

    A part (``soundsweep.prepare``) is a list of clips (``clip_id``, ``label_index``, ``split``)
    read from their files (``path``) or, when ``shard`` is set, from that shard
    (``shard_format``); its number names its files. Clips are decoded and written
    :data:`CLIPS_PER_CHUNK` at a time, so a task holds only those segments in memory.

    Returns one row per clip: ``clip_id``, ``split``, ``segments`` written, ``error`` (empty,
    or why the clip was skipped).
    """
    labels = dict(zip(map(str, part["clip_id"]), zip(part["label_index"], part["split"])))
    column = "audio" if part["shard"] else "path"
    summary, sources = [], part_sources(part)
    with SegmentWriter(data_dir, int(part["part"])) as writer:
        while chunk := list(itertools.islice(sources, CLIPS_PER_CHUNK)):
            ids = [clip_id for clip_id, _ in chunk]
            segments = decode_segments({
                column: [source for _, source in chunk], "clip_id": ids,
                "label_index": [labels[c][0] for c in ids], "split": [labels[c][1] for c in ids],
            }, spec)
            writer.write(segments)
            counts = Counter(segments["clip_id"])
            summary += [{"clip_id": c, "split": s, "error": e, "segments": 0 if e else counts[c]}
                        for c, s, e, i in zip(segments["clip_id"], segments["split"], segments["error"],
                                              segments["segment"]) if i == 0]
    return summary
