"""Decode, resample and segment every file once per (manifest, decode settings), with Ray Data.

The result is Parquet partitioned by split under ``<cache>/segments/<key>/<attempt>/`` where
the key hashes the manifest (paths, labels, splits, file sizes and times) and the
:class:`~trainables.audio.DecodeSpec`; every trial of every experiment with the same key streams
it instead of decoding again. Files that cannot be used land in the ``failed`` partition with
their reason and are listed in the run summary.

The cache may be a local folder or a cloud URI (see :mod:`soundsweep.storage`). Object stores
cannot rename a folder, so a preparation writes its own ``<attempt>`` folder and then publishes
it by writing ``<key>/_prepared.json`` last (one object, replaced whole): a reader sees either
no summary or a complete one, and two runs that prepare the same key at once each keep a
complete copy, the later summary winning.

The audio files of a manifest are only known to exist on the driver's node (a local ``--data``
folder, or the synthetic set generated there), so the decode tasks are pinned to that node;
what they write goes to the cache, which on a cluster is shared storage every trial reads.
"""
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.fs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from soundsweep import storage
from trainables.audio import DecodeSpec, decode_segments
from trainables.data import SPLITS

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
    cache_hit: bool = False
    seconds: float = 0.0

    def describe(self) -> str:
        counts = ", ".join(f"{s} {self.clips.get(s, 0)} clips / {self.segments.get(s, 0)} segments" for s in SPLITS)
        origin = "cache hit" if self.cache_hit else f"decoded in {self.seconds:.1f} s"
        return f"data: {len(self.classes)} classes; {counts}; {origin} ({self.path})"


def cache_key(manifest: pd.DataFrame, spec: DecodeSpec) -> str:
    h = hashlib.sha256(json.dumps(spec.as_dict(), sort_keys=True).encode())
    for row in manifest[["clip_id", "path", "label", "split"]].itertuples(index=False):
        try:
            st = os.stat(row.path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{row.clip_id}|{row.path}|{row.label}|{row.split}|{stamp}\n".encode())
    return h.hexdigest()[:20]


def prepare(manifest: pd.DataFrame, spec: DecodeSpec, cache_dir: str) -> PreparedData:
    """Return the prepared segments for ``manifest``, decoding only on a cache miss.

    ``cache_dir`` is a local path or a URI (``s3://``, ``gs://``, ``file://``).
    """
    root = storage.join(storage.resolve(cache_dir), "segments", cache_key(manifest, spec))
    fs, root_path = storage.open_fs(root)
    summary_path = storage.join(root_path, SUMMARY_FILE)
    if fs.get_file_info(summary_path).type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(summary_path) as f:
            return PreparedData(**{**json.loads(f.read()), "cache_hit": True, "seconds": 0.0})

    started = time.perf_counter()
    attempt = uuid.uuid4().hex[:12]
    out = storage.join(root, attempt)
    columns = manifest[["path", "clip_id", "label_index", "split"]].astype({"path": str, "clip_id": str, "split": str})
    blocks = max(1, min(len(columns) // 8, 64))
    on_this_node = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    try:
        (
            ray.data.from_items(columns.to_dict("records"), override_num_blocks=blocks)
            .map_batches(decode_segments, fn_kwargs={"spec": spec}, batch_size=4, batch_format="numpy",
                         scheduling_strategy=on_this_node)
            .write_parquet(out, partition_cols=["split"])
        )
        index = ray.data.read_parquet(out).select_columns(["clip_id", "split", "error"]).to_pandas()
    except BaseException:
        partial = storage.join(root_path, attempt)  # nothing points at it yet
        if fs.get_file_info(partial).type != pyarrow.fs.FileType.NotFound:
            fs.delete_dir(partial)
        raise
    failed = index[index["split"] == "failed"]
    paths = dict(zip(manifest["clip_id"].astype(str), manifest["path"].astype(str)))
    ok = index[index["split"] != "failed"]
    prepared = PreparedData(
        path=out,
        classes=sorted(manifest["label"].astype(str).unique()),
        spec=spec.as_dict(),
        segments={s: int((ok["split"] == s).sum()) for s in SPLITS},
        clips={s: int(ok.loc[ok["split"] == s, "clip_id"].nunique()) for s in SPLITS},
        failures=[{"clip_id": c, "path": paths.get(c, ""), "error": e} for c, e in zip(failed["clip_id"], failed["error"])],
        seconds=time.perf_counter() - started,
    )
    # Publish: write the summary beside the final name, then move it there in one step.
    staged = f"{summary_path}.{attempt}"
    with fs.open_output_stream(staged) as f:
        f.write(json.dumps({k: v for k, v in prepared.__dict__.items() if k not in ("cache_hit", "seconds")}).encode())
    fs.move(staged, summary_path)
    return prepared
