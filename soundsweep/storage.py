"""Where checkpoints and the decode cache live: a local folder, an NFS mount or a cloud URI.

``--storage-path`` is handed to Ray Tune, Ray Train and Ray Data, which all open it through
pyarrow's filesystem layer; every file SoundSweep writes there itself (the decode-cache summary,
the reference baseline, the reports, a quantized model's or a probe's weights) goes through the
same layer here, so ``s3://``, ``gs://`` and ``file://`` take one code path and only a plain
relative path is turned into an absolute one. Nothing under a storage path is written with
``open``, ``os.makedirs`` or ``torch.save(path)``: on a URI those would make a local folder
named ``s3:`` or ``file:``.
"""
import io
import json
import os
import posixpath
import tempfile
import uuid
from contextlib import contextmanager

import pyarrow.fs
import torch


def resolve(location: str) -> str:
    """An absolute local path for a plain path; a URI (``s3://``, ``gs://``, ``file://``) unchanged."""
    return location if "://" in location else os.path.abspath(location)


def join(location: str, *parts: str) -> str:
    """``location/part/...`` with ``/`` separators, for paths and URIs alike."""
    return "/".join([location.rstrip("/"), *parts])


def open_fs(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem behind ``location`` and the path inside it."""
    return pyarrow.fs.FileSystem.from_uri(resolve(location))


def as_uri(filesystem: pyarrow.fs.FileSystem | None, path: str) -> str:
    """A path inside ``filesystem`` as something :func:`open_fs` opens again: local paths stay
    paths, remote ones get their scheme back (``s3://bucket/key``)."""
    scheme = getattr(filesystem, "type_name", "local")
    return path if scheme == "local" else f"{scheme}://{path}"


def exists(location: str) -> bool:
    """Whether a file or folder is at ``location`` (a path or a URI)."""
    fs, path = open_fs(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def read_json(location: str) -> dict | None:
    """The JSON object at ``location`` (a path or a URI), or ``None`` if there is none."""
    fs, path = open_fs(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def write_json(location: str, content: dict) -> None:
    """Write ``content`` as JSON to ``location`` in one step (:func:`write_bytes`)."""
    write_bytes(location, json.dumps(content).encode())


def write_bytes(location: str, content: bytes) -> None:
    """Write ``content`` to the file ``location`` (a path or a URI), creating its folder, in one
    step: staged beside it, then moved there (one object, replaced whole), so a reader sees either
    nothing or all of it."""
    fs, path = open_fs(location)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    staged = f"{path}.{uuid.uuid4().hex[:12]}"
    with fs.open_output_stream(staged) as f:
        f.write(content)
    fs.move(staged, path)


def read_bytes(location: str) -> bytes:
    """The content of the file ``location`` (a path or a URI); ``FileNotFoundError`` if there is none."""
    fs, path = open_fs(location)
    with fs.open_input_stream(path) as f:
        return f.read()


def save_torch(location: str, content) -> None:
    """``torch.save`` of ``content`` to ``location`` (a path or a URI), through :func:`write_bytes`."""
    buffer = io.BytesIO()
    torch.save(content, buffer)
    write_bytes(location, buffer.getvalue())


def load_torch(location: str):
    """What :func:`save_torch` wrote at ``location``: tensors and plain containers only
    (``weights_only=True``), on the CPU."""
    return torch.load(io.BytesIO(read_bytes(location)), map_location="cpu", weights_only=True)


@contextmanager
def local_folder(location: str):
    """A local folder holding the files at ``location`` (a path or URI): the folder itself when it
    is local, else a temporary copy, removed on exit (for tools that read local files only)."""
    fs, path = open_fs(location)
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        yield path
        return
    with tempfile.TemporaryDirectory() as copy:
        pyarrow.fs.copy_files(path, copy, source_filesystem=fs)
        yield copy
