"""Shard sets: a manifest's encoded audio packed into shards, and read back as a dataset.

``soundsweep shard --data ROOT --out DIR`` calls :func:`pack`: every clip's file bytes,
unchanged, go into shards of about ``--shard-size-mb`` (format in :mod:`trainables.shards`),
next to two small files:

``shards.json``
    The shard manifest: ``format``, ``shard_size_mb``, ``clips``, ``bytes`` (audio), the
    source, and per shard its ``name``, ``clips`` and ``bytes``.
``index.parquet``
    One row per clip: the manifest's columns (without ``path``) and ``shard``, its shard's
    name, so a manifest is built without opening a shard.

``--data DIR`` (or a URI) with a ``shards.json`` is then a dataset like any other
(:class:`ShardSet`): its manifest's ``path`` is the clip's shard and ``shard_format`` tells the
decode step to stream shards, one Ray Data task each, instead of opening files.
"""
import json
import os
import time

import pandas as pd
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

from soundsweep.catalog._reader import Reader, register_reader
from soundsweep.errors import UsageError
from trainables.shards import WRITERS

SHARDS_FILE = "shards.json"
INDEX_FILE = "index.parquet"


def resolve(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem and inner path of a local path (made absolute) or a URI."""
    return pyarrow.fs.FileSystem.from_uri(location if "://" in location else os.path.abspath(location))


def join(location: str, name: str) -> str:
    return f"{location.rstrip('/')}/{name}"


def pack(manifest: pd.DataFrame, out: str, shard_size_mb: float = 64, fmt: str = "parquet") -> dict:
    """Write ``manifest``'s audio into shards under ``out`` (a folder or URI); return shards.json.

    Clips keep the manifest's order; a shard is closed once it holds ``shard_size_mb`` MiB of
    audio. A file that cannot be read is stored empty: the decode step then skips and lists
    it, as it would the loose file. Memory: one Parquet row group (or one clip for tar).
    """
    if "shard_format" in manifest:
        raise UsageError("--data is already a shard set; give the original dataset to pack it again")
    if fmt not in WRITERS:
        raise UsageError(f"--format {fmt}: choose {' or '.join(WRITERS)}")
    if shard_size_mb <= 0:
        raise UsageError(f"--shard-size-mb {shard_size_mb}: must be > 0")
    out = out if "://" in out else os.path.abspath(out)
    fs, root = resolve(out)
    try:
        fs.create_dir(root, recursive=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create it ({exc}); choose a folder or URI you can write") from exc
    meta = manifest.drop(columns=["path"]).reset_index(drop=True)
    meta = meta.astype(object).where(meta.notna(), None)  # plain values; NaN becomes null
    schema = pa.Schema.from_pandas(manifest.drop(columns=["path"]), preserve_index=False).remove_metadata()
    shards, index, writer, unreadable = [], [], None, 0
    for path, row in zip(manifest["path"].astype(str), meta.to_dict("records")):
        try:
            with open(path, "rb") as f:
                audio = f.read()
        except OSError:
            audio, unreadable = b"", unreadable + 1
        if writer is None:
            name = f"shard-{len(shards):06d}.{fmt}"
            writer = WRITERS[fmt](join(out, name), schema)
        writer.add(row, os.path.splitext(path)[1].lstrip(".").lower(), audio)
        index.append({**row, "shard": name})
        if writer.bytes >= shard_size_mb * 2**20:
            writer.close()
            shards.append({"name": name, "clips": writer.clips, "bytes": writer.bytes})
            writer = None
    if writer is not None:
        writer.close()
        shards.append({"name": name, "clips": writer.clips, "bytes": writer.bytes})
    table = pa.Table.from_pylist(index, schema=schema.append(pa.field("shard", pa.string())))
    pq.write_table(table, join(root, INDEX_FILE), filesystem=fs)
    summary = {
        "format": fmt, "shard_size_mb": shard_size_mb, "clips": len(index), "bytes": sum(s["bytes"] for s in shards),
        "unreadable": unreadable, "index": INDEX_FILE, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "shards": shards,
    }
    with fs.open_output_stream(join(root, SHARDS_FILE)) as f:
        f.write(json.dumps(summary, indent=1).encode())
    return summary


class ShardSet(Reader):
    """A folder or URI written by :func:`pack` (it holds ``shards.json``)."""

    name = "shards"
    title = "shard set"
    layout = "a folder written by 'soundsweep shard' (it holds shards.json)"

    def detect(self, root: str) -> bool:
        try:
            fs, path = resolve(root)
            return fs.get_file_info(join(path, SHARDS_FILE)).type == pyarrow.fs.FileType.File
        except (OSError, ValueError):
            return False

    def read(self, root: str) -> pd.DataFrame:
        fs, path = resolve(root)
        try:
            with fs.open_input_stream(join(path, SHARDS_FILE)) as f:
                shards = json.loads(f.read())
            manifest = pq.read_table(join(path, shards["index"]), filesystem=fs).to_pandas()
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"shard set {root} cannot be read ({str(exc).splitlines()[0]}): "
                             "write it again with 'soundsweep shard'") from exc
        manifest["path"] = [join(root, name) for name in manifest.pop("shard")]
        manifest["shard_format"] = shards["format"]
        return manifest


register_reader(ShardSet())
