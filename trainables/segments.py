"""The segment store, written once per (manifest, decode settings) and streamed by every trial.

``soundsweep.prepare`` runs :func:`decode_part` over the manifest in Ray Data tasks; each task
decodes a few clips at a time and appends their segments to its own Parquet files,
partitioned by split (``<data_dir>/split=train/part-000003.parquet`` ...) or, for a
cross-validation, by fold (``split=fold0`` ...); they are read back a row group at a time, by a
trial itself (:func:`trainables.data.read_piece`) or by Ray Data tasks (:func:`read_segment_files`,
via :func:`trainables.data.open_split`). Stored :data:`COLUMNS`:
``waveform`` (``(channels, samples)`` int16, :func:`quantize`), ``scale`` (float32: the
segment's samples are ``waveform * scale``), ``clip_id``, ``segment``, ``label``; the split is
the folder. A fold view (:data:`VIEW_FILE`) gives a store partitioned by fold train/val/test
splits without copying a segment.

The format is :data:`STORE_VERSION`. Each file's Parquet metadata (:data:`FORMAT_KEY`) holds
it and the segments' shape; ``soundsweep.prepare`` records it with the store too and decodes
again where a cached store has another. ``waveform`` is written as one fixed-size binary value
per segment (its int16 bytes) and read back as a ``(channels, samples)`` int16 tensor column:
Parquet has no 16-bit type, and an int16 list column would be stored as 32-bit integers with a
repetition level per sample (about 2 bytes a sample only while dictionary encoding lasts, and
read several times slower).

Why int16 and a scale, not float16 or float32 (``benchmarks/store_precision.py``): half the
bytes of float32 on disk, in a kept split and on the way to the device, like float16, but
lossless for 16-bit PCM (most WAV and FLAC, the embedded synthetic set), which float16 with its
11-bit significand is not (errors up to 2^-12 against 16-bit's steps of 2^-15). Other audio
(float or 24-bit sources, resampled or mixed down) is off by at most half a step of its
segment's own scale, ``peak / 32767``: about 96 dB below the segment's peak, where float16 keeps
about 66 dB.

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
STORE_VERSION = 2
"""The store's format: 1 (never written down) held float32 waveforms; 2 holds int16 and a scale."""
FORMAT_KEY = b"soundsweep.segment_store"
"""Parquet metadata key of a store file: JSON ``{"version": STORE_VERSION, "shape": [channels, samples]}``."""
COLUMNS = ["waveform", "scale", "clip_id", "segment", "label"]
PCM16_STEP = 2.0**-15
"""The step between 16-bit PCM samples as soundfile decodes them to float (``int16 / 32768``)."""
GRID_PROBE = 64
"""Samples of a segment :func:`quantize` checks against the 16-bit grid before checking them all:
resampled or mixed audio is off the grid within a few samples."""
CLIPS_PER_CHUNK = 8  # clips a task decodes and writes at a time: its memory, whatever the corpus size
WAVEFORM_CODEC = "none"
"""Parquet codec of the ``waveform`` column. Snappy (what format 2 wrote at first) kept int16
PCM (a tone plus noise, 64 five-second segments) at 1.00x its size for 20 % more CPU to write and
40 % more to read. Each column chunk names its codec, so files of either read the same and the
codec is not part of :data:`STORE_VERSION`."""
VIEW_FILE = "_view.json"
"""A fold view's one file: ``{split: [store file, ...]}``, the files of the folds each split reads."""


def quantize(waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 segments ``(N, channels, samples)`` as stored: ``(int16 samples, float32 scale
    (N,))``, the segments being ``samples * scale`` (:func:`dequantize`).

    A segment whose samples all lie on the 16-bit PCM grid (a 16-bit file decoded at its own rate,
    zero padding) gets scale :data:`PCM16_STEP` and comes back bit for bit. Any other gets
    ``peak / 32767``: each sample comes back within half that step (plus the float32 rounding of
    the quotient and of the product), and a quiet segment keeps its own resolution.

    All in float32, and the full grid check only for segments whose first :data:`GRID_PROBE`
    samples are on the grid: in float64 with a full check of every segment, quantizing took a
    third as much CPU as the benchmark's decode + resample (2.8 against 8.4 ms a clip; now 0.4,
    ``benchmarks/data_pipeline.py``, ``stage_cpu_ms_per_clip``).
    """
    flat = np.asarray(waveform, np.float32).reshape(len(waveform), -1)
    low, high = flat.min(axis=1, initial=0.0), flat.max(axis=1, initial=0.0)
    scale = (np.maximum(high, -low) / np.float32(32767)).astype(np.float32)
    probe = flat[:, :GRID_PROBE] * np.float32(1 / PCM16_STEP)  # a power of two: exact
    for i in np.flatnonzero((probe == np.rint(probe)).all(axis=1) & (low >= -1) & (high <= 1 - PCM16_STEP)):
        pcm = flat[i] * np.float32(1 / PCM16_STEP)
        if np.array_equal(pcm, np.rint(pcm)):
            scale[i] = PCM16_STEP  # also every silent segment, so no scale below is 0
    samples = np.rint(flat / scale[:, None]).astype(np.int16)
    return samples.reshape(waveform.shape), scale


def dequantize(samples: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Stored segments ``(N, channels, samples)`` int16 and their ``(N,)`` scales back as float32
    (the product in float32: what :func:`trainables.augment.batch_waveform` computes in torch)."""
    return samples.astype(np.float32) * np.asarray(scale, np.float32)[:, None, None]


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


def footers(data_dir: str, split: str) -> list[tuple[str, pq.FileMetaData]]:
    """Every file of one split (:func:`segment_files`) with its Parquet footer: its row groups'
    rows and what they take in memory once decoded (``total_byte_size``, the uncompressed size),
    known without reading a segment."""
    out = []
    for location in segment_files(data_dir, split):
        fs, path = pyarrow.fs.FileSystem.from_uri(location)
        with fs.open_input_file(path) as f:
            out.append((location, pq.ParquetFile(f).metadata))
    return out


def stored_shape(location: str, metadata: dict | None) -> tuple[int, int]:
    """``(channels, samples)`` of the segments of a store file from its Parquet ``metadata``;
    ``ValueError`` for a file of another format (an older store read directly)."""
    stored = json.loads(metadata[FORMAT_KEY]) if metadata and FORMAT_KEY in metadata else {"version": 1}
    if stored["version"] != STORE_VERSION:
        raise ValueError(f"{location}: segment store format {stored['version']}, this code reads {STORE_VERSION}: "
                         "prepare the data again")
    return tuple(stored["shape"])


def waveform_array(column: pa.ChunkedArray, shape: tuple[int, int]) -> np.ndarray:
    """A stored ``waveform`` column (fixed-size binary) as a ``(rows, *shape)`` int16 array viewing
    its bytes (a row group reads as one chunk; ``combine_chunks`` would copy it)."""
    raw = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    width = raw.type.byte_width
    samples = np.frombuffer(raw.buffers()[1], np.int16, len(raw) * width // 2, raw.offset * width)
    return samples.reshape(len(raw), *shape)


def waveform_tensor(column: pa.ChunkedArray, shape: tuple[int, int]) -> ArrowTensorArray:
    """A stored ``waveform`` column as an int16 tensor column of ``shape`` (Ray Data's), without
    copying its bytes (:func:`waveform_array`)."""
    return ArrowTensorArray.from_numpy(waveform_array(column, shape))


def read_segment_files(batch: dict) -> Iterator[pa.Table]:
    """Ray Data ``map_batches`` function: the segments of the files in ``batch["path"]``, one
    output block per row group (:data:`COLUMNS`, in stored order, ``waveform`` an int16 tensor
    column), plus a ``split`` column when the batch names each file's split."""
    for i, location in enumerate(batch["path"]):
        fs, path = pyarrow.fs.FileSystem.from_uri(str(location))
        with fs.open_input_file(path) as f:
            stored = pq.ParquetFile(f)
            shape = stored_shape(str(location), stored.schema_arrow.metadata)
            for group in range(stored.num_row_groups):
                table = stored.read_row_group(group, columns=COLUMNS)
                column = table.schema.get_field_index("waveform")
                table = table.set_column(column, "waveform", waveform_tensor(table.column(column), shape))
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
            samples, scale = quantize(batch["waveform"][rows])
            table = pa.table({
                "waveform": pa.FixedSizeBinaryArray.from_buffers(pa.binary(samples[0].nbytes), len(samples),
                                                                 [None, pa.py_buffer(samples)]),
                "scale": pa.array(scale),
                "clip_id": pa.array(batch["clip_id"][rows].astype(str)),
                "segment": pa.array(batch["segment"][rows]),
                "label": pa.array(batch["label"][rows]),
            }, metadata={FORMAT_KEY: json.dumps({"version": STORE_VERSION, "shape": samples.shape[1:]})})
            if split not in self.writers:
                fs, folder = pyarrow.fs.FileSystem.from_uri(split_path(self.data_dir, split))
                fs.create_dir(folder, recursive=True)
                # No dictionary for the waveform: every value is unique, and the first megabyte of a
                # column chunk dictionary-encoded reads some 20 times slower than plain. No
                # compression either: snappy finds nothing in PCM and costs CPU on every write
                # and every read (:data:`WAVEFORM_CODEC`).
                others = [c for c in COLUMNS if c != "waveform"]
                self.writers[split] = pq.ParquetWriter(
                    f"{folder}/{self.name}", table.schema, filesystem=fs, use_dictionary=others,
                    compression={"waveform": WAVEFORM_CODEC, **dict.fromkeys(others, "snappy")})
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
