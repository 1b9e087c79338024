"""Decode, resample and segment every clip once per (manifest, decode settings), with Ray Data.

The result is the segment store of :mod:`trainables.segments` under
``<cache>/segments/<key>/<attempt>/`` where the key hashes the manifest (clip ids, paths, labels,
splits, file sizes and times) and the :class:`~trainables.audio.DecodeSpec`; every trial of every
experiment with the same key streams it instead of decoding again. Clips come from loose files or
from a shard set (``soundsweep shard``), and are decoded the same way. Files that cannot be used
are skipped and listed, with their reason, in the summary.

Memory stays bounded whatever the corpus size: the manifest is cut into parts (a shard each,
or :data:`CLIPS_PER_PART` loose files), each part is one Ray Data task that decodes and writes
a few clips at a time, and the driver only streams one small summary row per clip back. The
manifest itself (paths and labels, not audio) is the one thing held whole.

The cache may be a local folder or a cloud URI (see :mod:`soundsweep.storage`). Object stores
cannot rename a folder, so a preparation writes its own ``<attempt>`` folder and then publishes
it by writing ``<key>/_prepared.json`` last (one object, replaced whole): a reader sees either
no summary or a complete one, and two runs that prepare the same key at once each keep a
complete copy, the later summary winning.

The summary records the store's format (``store_version``,
:data:`~trainables.segments.STORE_VERSION`). A summary with another one (an older SoundSweep
wrote float32 waveforms and no version) is a miss: the data is decoded again into a new attempt,
whose summary replaces it, with one printed line saying so. The old attempt's files stay where
they are, so a run of the older code that still reads them is not broken.

Local audio files (a ``--data`` folder, a local shard set, the synthetic set) are only known to
exist on the driver's node, so their decode tasks are pinned to that node; shards on a URI
decode anywhere. What the tasks write goes to the cache, which on a cluster is shared storage
every trial reads.

Cross-validation decodes once too: the manifest's ``split`` column names each clip's fold
(``fold0``, ``fold1``, ...), and :func:`fold_view` presents one fold assignment as an ordinary
train/val/test dataset: a view that lists those partitions' files, so no segment is copied.
"""
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.fs
import ray

from soundsweep import storage
from soundsweep.progress import Progress
from trainables.audio import DecodeSpec
from trainables.segments import SPLITS, STORE_VERSION, VIEW_FILE, decode_part, segment_files

CLIPS_PER_PART = 64
"""Loose files per Ray Data task: enough parts to keep every CPU busy, few files per split, and
few tasks, since each costs Ray Data a start-up (half the tasks of the 32 it was; a 2,000-clip
corpus is still 32 parts)."""
SUMMARY_FILE = "_prepared.json"


@dataclass
class PreparedData:
    """What the trials need to know about the prepared segments."""

    path: str
    classes: list[str]
    spec: dict
    segments: dict[str, int]
    clips: dict[str, int]
    failures: list[dict] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # clip id -> recording device, where the manifest says
    cache_hit: bool = False
    seconds: float = 0.0

    def describe(self) -> str:
        counts = ", ".join(f"{s} {self.clips.get(s, 0)} clips / {n} segments" for s, n in self.segments.items())
        origin = "cache hit" if self.cache_hit else f"decoded in {self.seconds:.1f} s"
        return f"data: {len(self.classes)} classes; {counts}; {origin} ({self.path})"


def file_stamp(path: str) -> str:
    """``size:mtime_ns`` of a local file or URI (``missing`` if it cannot be seen): a changed
    or touched file changes the cache key."""
    try:
        if "://" in path:
            fs, inner = pyarrow.fs.FileSystem.from_uri(path)
            info = fs.get_file_info(inner)
            return f"{info.size}:{info.mtime_ns}" if info.type == pyarrow.fs.FileType.File else "missing"
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    except (OSError, ValueError):
        return "missing"


def cache_key(manifest: pd.DataFrame, spec: DecodeSpec) -> str:
    h = hashlib.sha256(json.dumps(spec.as_dict(), sort_keys=True).encode())
    stamps = {path: file_stamp(path) for path in manifest["path"].unique()}  # a shard holds many clips
    for row in manifest[["clip_id", "path", "label", "split"]].itertuples(index=False):
        h.update(f"{row.clip_id}|{row.path}|{row.label}|{row.split}|{stamps[row.path]}\n".encode())
    return h.hexdigest()[:20]


def parts(manifest: pd.DataFrame) -> list[dict]:
    """The manifest cut into units of work for :func:`trainables.segments.decode_part`: one per
    shard of a shard set (rows with ``shard_format``), else runs of :data:`CLIPS_PER_PART` files."""
    sharded = "shard_format" in manifest
    keys = manifest["path"] if sharded else np.arange(len(manifest)) // CLIPS_PER_PART
    return [{
        "part": i,
        "shard": str(group["path"].iloc[0]) if sharded else "",
        "shard_format": str(group["shard_format"].iloc[0]) if sharded else "",
        "path": [] if sharded else group["path"].astype(str).tolist(),
        "clip_id": group["clip_id"].astype(str).tolist(),
        "label_index": group["label_index"].astype(int).tolist(),
        "split": group["split"].astype(str).tolist(),
    } for i, (_, group) in enumerate(manifest.groupby(keys, sort=False))]


def prepare(manifest: pd.DataFrame, spec: DecodeSpec, cache_dir: str) -> PreparedData:
    """Return the prepared segments for ``manifest``, decoding only on a cache miss.

    ``cache_dir`` is a local path or a URI (``s3://``, ``gs://``, ``file://``).
    """
    root = storage.join(storage.resolve(cache_dir), "segments", cache_key(manifest, spec))
    fs, root_path = storage.open_fs(root)
    published = storage.read_json(storage.join(root, SUMMARY_FILE))
    if published is not None:
        version = published.pop("store_version", 1)
        if version == STORE_VERSION:
            return PreparedData(**{**published, "cache_hit": True, "seconds": 0.0})
        print(f"segment store {published['path']} has format version {version}, this SoundSweep reads "
              f"{STORE_VERSION}: decoding again", flush=True)

    started = time.perf_counter()
    attempt = uuid.uuid4().hex[:12]
    out = storage.join(root, attempt)
    work = parts(manifest)
    local = not manifest["path"].astype(str).str.contains("://").all()
    this_node = {"ray.io/node-id": ray.get_runtime_context().get_node_id()} if local else None
    summary = ray.data.from_items(work, override_num_blocks=len(work)).flat_map(
        decode_part, fn_kwargs={"spec": spec, "data_dir": out}, label_selector=this_node)
    # Partitions: train/val/test, or the folds of a cross-validation (fold0, fold1, ...).
    names = sorted(set(manifest["split"].astype(str)) - set(SPLITS), key=lambda n: (len(n), n)) or SPLITS
    segments, clips, failures = dict.fromkeys(names, 0), dict.fromkeys(names, 0), []
    paths = dict(zip(manifest["clip_id"].astype(str), manifest["path"].astype(str)))
    try:
        with Progress(len(manifest), "decoding", "clips") as bar:
            for batch in summary.iter_batches(batch_size=None):  # streamed: one small row per clip, a part at a time
                bar.update(len(batch["clip_id"]))
                for clip_id, split, error, count in zip(batch["clip_id"], batch["split"], batch["error"], batch["segments"]):
                    if error:
                        failures.append({"clip_id": str(clip_id), "path": paths.get(str(clip_id), ""),
                                         "error": str(error)})
                    else:
                        segments[split] += int(count)
                        clips[split] += 1
    except BaseException:
        partial = storage.join(root_path, attempt)  # nothing points at it yet
        if fs.get_file_info(partial).type != pyarrow.fs.FileType.NotFound:
            fs.delete_dir(partial)
        raise
    prepared = PreparedData(
        path=out,
        classes=sorted(manifest["label"].astype(str).unique()),
        spec=spec.as_dict(),
        segments=segments,
        clips=clips,
        failures=sorted(failures, key=lambda f: f["clip_id"]),
        devices=dict(zip(manifest["clip_id"].astype(str), manifest["device"].astype(str))) if "device" in manifest else {},
        seconds=time.perf_counter() - started,
    )
    storage.write_json(storage.join(root, SUMMARY_FILE),
                       {**{k: v for k, v in prepared.__dict__.items() if k not in ("cache_hit", "seconds")},
                        "store_version": STORE_VERSION})
    return prepared


def fold_view(data: PreparedData, test: str, val: str) -> PreparedData:
    """``data`` (partitioned by fold) seen as one cross-validation split: partition ``test`` is
    the test split, ``val`` the val split and every other partition the train split.

    The view is the folder ``<data>/folds/test-<test>.val-<val>/`` with one file,
    :data:`~trainables.segments.VIEW_FILE`, listing the partitions' files each split reads, so
    every trial streams it like any prepared data and no segment is copied. It is written once
    (:func:`~soundsweep.storage.write_json`); runs that write it at once write the same list.
    """
    root = storage.join(data.path, "folds", f"test-{test}.val-{val}")
    role = {part: "test" if part == test else "val" if part == val else "train" for part in data.segments}
    view_path = storage.join(root, VIEW_FILE)
    if not storage.exists(view_path):
        fs, root_path = storage.open_fs(root)
        fs.create_dir(root_path, recursive=True)
        storage.write_json(view_path, {split: [f for part, r in role.items() if r == split
                                               for f in segment_files(data.path, part)] for split in SPLITS})
    totals = {split: {"segments": 0, "clips": 0} for split in SPLITS}
    for part, split in role.items():
        totals[split]["segments"] += data.segments[part]
        totals[split]["clips"] += data.clips[part]
    return PreparedData(path=root, classes=data.classes, spec=data.spec, failures=data.failures, devices=data.devices,
                        segments={s: t["segments"] for s, t in totals.items()},
                        clips={s: t["clips"] for s, t in totals.items()}, cache_hit=data.cache_hit, seconds=data.seconds)
