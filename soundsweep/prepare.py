"""Decode, resample and segment every file once per (manifest, decode settings), with Ray Data.

The result is Parquet partitioned by split under ``<cache>/segments/<key>/`` where the key
hashes the manifest (paths, labels, splits, file sizes and times) and the
:class:`~trainables.audio.DecodeSpec`; every trial of every experiment with the same key streams
it instead of decoding again. Files that cannot be used land in the ``failed`` partition with
their reason and are listed in the run summary.

Cross-validation decodes once too: the manifest's ``split`` column names each clip's fold
(``fold0``, ``fold1``, ...), and :func:`fold_view` presents one fold assignment as an ordinary
train/val/test dataset made of hard links to those partitions' files.
"""
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field

import pandas as pd
import ray

from trainables.audio import DecodeSpec, decode_segments
from trainables.data import SPLITS, split_path

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
        counts = ", ".join(f"{s} {self.clips.get(s, 0)} clips / {n} segments" for s, n in self.segments.items())
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
    """Return the prepared segments for ``manifest``, decoding only on a cache miss."""
    root = os.path.join(cache_dir, "segments", cache_key(manifest, spec))
    summary_path = os.path.join(root, SUMMARY_FILE)
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            return PreparedData(**{**json.load(f), "cache_hit": True, "seconds": 0.0})

    started = time.perf_counter()
    tmp = f"{root}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    columns = manifest[["path", "clip_id", "label_index", "split"]].astype({"path": str, "clip_id": str, "split": str})
    blocks = max(1, min(len(columns) // 8, 64))
    (
        ray.data.from_items(columns.to_dict("records"), override_num_blocks=blocks)
        .map_batches(decode_segments, fn_kwargs={"spec": spec}, batch_size=4, batch_format="numpy")
        .write_parquet(tmp, partition_cols=["split"])
    )
    index = ray.data.read_parquet(tmp).select_columns(["clip_id", "split", "error"]).to_pandas()
    failed = index[index["split"] == "failed"]
    paths = dict(zip(manifest["clip_id"].astype(str), manifest["path"].astype(str)))
    ok = index[index["split"] != "failed"]
    present = set(manifest["split"])
    partitions = [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))
    prepared = PreparedData(
        path=root,
        classes=sorted(manifest["label"].astype(str).unique()),
        spec=spec.as_dict(),
        segments={s: int((ok["split"] == s).sum()) for s in partitions},
        clips={s: int(ok.loc[ok["split"] == s, "clip_id"].nunique()) for s in partitions},
        failures=[{"clip_id": c, "path": paths.get(c, ""), "error": e} for c, e in zip(failed["clip_id"], failed["error"])],
        seconds=time.perf_counter() - started,
    )
    with open(os.path.join(tmp, SUMMARY_FILE), "w") as f:
        json.dump({k: v for k, v in prepared.__dict__.items() if k not in ("cache_hit", "seconds")}, f)
    try:
        os.rename(tmp, root)
    except OSError:  # prepared concurrently by another run: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return prepared


def fold_view(data: PreparedData, test: str, val: str) -> PreparedData:
    """``data`` (partitioned by fold) seen as one cross-validation split: partition ``test`` is
    the test split, ``val`` the val split and every other partition the train split.

    The view lives in ``<data>/folds/`` and holds hard links (a copy where the filesystem has
    none) to the partitions' Parquet files, so every trial streams it like any prepared data.
    """
    # No "=" in the folder name: Ray Data would read it as a hive partition.
    root = os.path.join(data.path, "folds", f"test-{test}.val-{val}")
    role = {part: "test" if part == test else "val" if part == val else "train" for part in data.segments}
    if not os.path.isdir(root):
        tmp = f"{root}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for part, split in role.items():
            source, target = split_path(data.path, part), split_path(tmp, split)
            os.makedirs(target, exist_ok=True)
            for name in os.listdir(source) if os.path.isdir(source) else ():
                try:
                    os.link(os.path.join(source, name), os.path.join(target, f"{part}-{name}"))
                except OSError:
                    shutil.copy2(os.path.join(source, name), os.path.join(target, f"{part}-{name}"))
        try:
            os.rename(tmp, root)
        except OSError:  # made concurrently by another run: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    totals = {split: {"segments": 0, "clips": 0} for split in SPLITS}
    for part, split in role.items():
        totals[split]["segments"] += data.segments[part]
        totals[split]["clips"] += data.clips[part]
    return PreparedData(path=root, classes=data.classes, spec=data.spec, failures=data.failures,
                        segments={s: t["segments"] for s, t in totals.items()},
                        clips={s: t["clips"] for s, t in totals.items()}, cache_hit=data.cache_hit, seconds=data.seconds)
