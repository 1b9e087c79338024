"""The reader protocol and registry: one :class:`Reader` per on-disk dataset layout.

:func:`soundsweep.catalog.load_manifest` asks each registered reader, in registration order,
whether it recognises ``--data`` (:meth:`Reader.detect`), then calls the first one's
:meth:`Reader.read`. Dataset-specific readers are registered before the generic fallbacks
(folder per class, manifest CSV), so a known layout is never mistaken for a generic one.
"""
import abc
import itertools
import os
import re

import pandas as pd

from soundsweep.catalog._manifest import AUDIO_EXTENSIONS
from soundsweep.errors import UsageError

READERS: dict[str, "Reader"] = {}


def register_reader(reader: "Reader") -> "Reader":
    """Add ``reader`` to the registry under ``reader.name`` (its ``dataset=`` value)."""
    if reader.name in READERS:
        raise ValueError(f"reader {reader.name!r} is registered twice")
    READERS[reader.name] = reader
    return reader


def first_names(folder: str, limit: int = 20) -> list[str]:
    """Up to ``limit`` entry names of ``folder`` (none if it is not a folder): a cheap peek."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in itertools.islice(entries, limit)]
    except OSError:
        return []


def class_folder_clips(root: str, first_only: bool = False) -> list[dict]:
    """``{"path", "label"}`` for each audio file in ``root/<label>/`` (sorted); with
    ``first_only``, stop at the first one (a cheap existence check)."""
    rows = []
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(AUDIO_EXTENSIONS):
                rows.append({"path": os.path.join(folder, name), "label": label})
                if first_only:
                    return rows
    return rows


class Reader(abc.ABC):
    """One dataset layout: recognises a root and turns it into a manifest table.

    ``load_manifest`` calls :meth:`detect` on every candidate during format detection and
    :meth:`read` once on the chosen one, then completes the table with
    :func:`~soundsweep.catalog.complete_manifest`. The default :meth:`detect` looks for any of
    ``markers`` (paths relative to the root) or for audio files in ``audio_folder`` whose names
    follow ``audio_name``, so a partial layout (metadata or audio missing) is still recognised
    and :meth:`read` can say exactly what is missing.

    Attributes:
        name: registry key, the value of ``dataset=``.
        title: how messages name the dataset.
        layout: what ``--data`` should point at, for messages.
        markers: relative paths of which any one marks the layout.
        audio_folder: relative folder whose file names :attr:`audio_name` matches.
        audio_name: pattern of the layout's audio file names, or None.
    """

    name: str
    title: str
    layout: str
    markers: tuple[str, ...] = ()
    audio_folder: str = "audio"
    audio_name: re.Pattern | None = None

    def detect(self, root: str) -> bool:
        """Whether ``root`` looks like this layout; cheap: a few stats and one directory peek."""
        if not os.path.isdir(root):
            return False
        if any(os.path.exists(os.path.join(root, marker)) for marker in self.markers):
            return True
        names = first_names(os.path.join(root, self.audio_folder)) if self.audio_name else []
        return any(self.audio_name.match(name) for name in names)

    @abc.abstractmethod
    def read(self, root: str, **options) -> pd.DataFrame:
        """The dataset's table: ``path`` and ``label`` at least, plus what the dataset states
        (``split``, ``fold``, ``group``, ``clip_id``, extras). Keyword options are reader-specific."""

    def missing(self, root: str, what: str) -> UsageError:
        """The one-line error for a layout that lacks ``what``."""
        return UsageError(f"{self.title} root {root} lacks {what}: point --data at {self.layout}")

    def require(self, root: str, relpath: str, folder: bool = False) -> str:
        """The absolute path of ``relpath`` under ``root``; a one-line error if it is missing
        (or, with ``folder``, if it is not a folder or is empty)."""
        path = os.path.join(root, relpath)
        if folder and not os.path.isdir(path):
            raise self.missing(root, relpath.rstrip("/") + "/")
        if not os.path.exists(path):
            raise self.missing(root, relpath)
        if folder and not first_names(path, 1):
            raise UsageError(f"{self.title} root {root} has an empty {relpath}/: put the dataset's files there, "
                             f"or point --data at {self.layout}")
        return path

    def read_table(self, root: str, relpath: str, columns: tuple[str, ...], **read_csv) -> pd.DataFrame:
        """Read the metadata table ``relpath`` with ``pandas.read_csv(**read_csv)``; one-line
        errors when it is missing, unreadable or lacks any of ``columns``."""
        path = self.require(root, relpath)
        try:
            table = pd.read_csv(path, **read_csv)
        except Exception as exc:
            raise UsageError(f"{self.title} table {path} cannot be read ({str(exc).splitlines()[0]}): "
                             "restore it from the dataset archive") from exc
        lacking = [str(c) for c in columns if c not in table.columns]
        if lacking:
            raise UsageError(f"{self.title} table {path} lacks column(s) {', '.join(lacking)}: "
                             "restore it from the dataset archive")
        return table
