"""Shards: the encoded audio of many clips packed into a few large files.

``soundsweep shard`` writes them (:data:`WRITERS`); the decode step streams them back
(:func:`iter_shard`), one Ray Data task per shard, and decodes the bytes exactly as it would
decode the original files. Two formats:

``parquet``
    One row per clip: the manifest's columns (``clip_id, label, split, fold, group, ...``),
    ``format`` (the file's extension: ``flac``, ``mp3``, ...) and ``audio`` (the file's bytes,
    unchanged). Row groups hold about :data:`ROW_GROUP_BYTES` of audio, so a reader holds one
    row group at a time, never the whole shard.
``tar``
    WebDataset style: per clip ``<key>.json`` (the same metadata) followed by
    ``<key>.<format>`` (the bytes). ``key`` is the clip id with ``.`` and ``/`` replaced by
    ``_``, since WebDataset cuts a member name at its first dot; the JSON keeps the exact id.

Paths are local paths or URIs (``s3://``, ``gs://``, ``file://``; pyarrow.fs).
"""
import io
import json
import tarfile
from typing import Iterator

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

ROW_GROUP_BYTES = 8 * 2**20


def tar_key(clip_id: str) -> str:
    """The WebDataset key of a clip: its id without the characters that split member names."""
    return clip_id.replace(".", "_").replace("/", "_")


class ShardWriter:
    """One shard file being written: :meth:`add` clips, then :meth:`close`.

    ``schema`` types the metadata columns (the manifest's, without ``path``); ``meta`` values
    must be plain Python values. ``clips`` and ``bytes`` (of audio) count what was added, so
    the packer knows when a shard is full.
    """

    def __init__(self, uri: str, schema: pa.Schema):
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        self.stream = fs.open_output_stream(path)
        self.clips = self.bytes = 0

    def add(self, meta: dict, fmt: str, audio: bytes) -> None:
        """Append one clip: its metadata, its format (file extension) and its encoded bytes."""
        self.clips += 1
        self.bytes += len(audio)

    def close(self) -> None:
        self.stream.close()


class ParquetShardWriter(ShardWriter):
    """Parquet shard: a row group per :data:`ROW_GROUP_BYTES` of audio."""

    def __init__(self, uri: str, schema: pa.Schema):
        super().__init__(uri, schema)
        self.schema = pa.schema([*schema, pa.field("format", pa.string()), pa.field("audio", pa.binary())])
        self.writer = pq.ParquetWriter(self.stream, self.schema)
        self.rows: list[dict] = []
        self.pending = 0

    def add(self, meta: dict, fmt: str, audio: bytes) -> None:
        super().add(meta, fmt, audio)
        self.rows.append({**meta, "format": fmt, "audio": audio})
        self.pending += len(audio)
        if self.pending >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows, self.pending = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
        super().close()


class TarShardWriter(ShardWriter):
    """WebDataset tar shard: ``<key>.json`` then ``<key>.<format>`` per clip."""

    def __init__(self, uri: str, schema: pa.Schema):
        super().__init__(uri, schema)
        self.tar = tarfile.open(fileobj=self.stream, mode="w|")

    def add(self, meta: dict, fmt: str, audio: bytes) -> None:
        super().add(meta, fmt, audio)
        key = tar_key(str(meta["clip_id"]))
        for name, data in ((f"{key}.json", json.dumps({**meta, "format": fmt}).encode()), (f"{key}.{fmt}", audio)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()
        super().close()


WRITERS = {"parquet": ParquetShardWriter, "tar": TarShardWriter}


def iter_shard(uri: str, fmt: str) -> Iterator[tuple[str, bytes]]:
    """``(clip_id, encoded audio)`` for each clip of a shard, streamed in stored order."""
    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    if fmt == "parquet":
        with fs.open_input_file(path) as f:
            for group in pq.ParquetFile(f).iter_batches(batch_size=64, columns=["clip_id", "audio"]):
                yield from zip(group.column("clip_id").to_pylist(), group.column("audio").to_pylist())
        return
    with fs.open_input_stream(path) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        meta = None
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else b""
            if member.name.endswith(".json"):
                meta = json.loads(data)
            elif meta is not None and tar_key(meta["clip_id"]) == member.name.split(".", 1)[0]:
                yield meta["clip_id"], data
                meta = None
